"""The Binance Spot source: WebSocket streams and REST, one module per concern.

``source`` (the :class:`~..base.Source`: demand, status), ``health`` (when it
is live, and why not), ``pool``
(which stream rides on which connection, make-before-break replacement),
``connection`` (one combined-stream connection), ``watchdog`` (per-stream
stall thresholds), ``symbols`` (exchangeInfo with backoff), ``snapshots``
(held values and REST snapshots), ``rest`` (REST calls), ``budget`` (the one
REST weight budget), ``books``/``book``/``ladder``/``bookparse`` (the order
book engine of ``book:`` channels), ``parse`` (frames to events).

Venue limits this connector is built to (Binance Spot, "WebSocket Streams",
https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md,
and rest-api.md of the same repository):

* combined streams ``/stream?streams=a/b/c``; frames are ``{"stream": name, "data": payload}``;
  stream names use the lower-case symbol, payloads the upper-case one;
* at most 1024 streams per connection: streams are sharded over connections;
* at most 5 incoming messages per second per connection, pings, pongs and
  ``SUBSCRIBE``/``UNSUBSCRIBE`` included; beyond that the server closes with
  1008 "Too many requests" (and repeat offenders get their IP banned). Control
  messages are batched and paced evenly (one per ``control_interval``, 0.3 s),
  counting the pongs we send, and reconnects put their streams in the URL;
* 300 connection attempts per 5 minutes per IP: capped, jittered backoff and a
  sliding connect budget;
* the server pings every 20 s and drops a connection that has not answered
  within a minute; pongs are sent at once, echoing the payload;
* a connection lives at most 24 h, and ``serverShutdown`` announces an early
  cut: connections are replaced make-before-break (``rotate_after``, 23 h),
  de-duplicated by trade id, update id and event time;
* a ``SUBSCRIBE`` to a symbol that does not exist is acknowledged and then
  silent: symbols are checked against ``/api/v3/exchangeInfo`` first;
* REST: 6000 request weight per minute per IP; 429 and 418 carry
  ``Retry-After`` (seconds), which is honoured for every later request.
"""

from __future__ import annotations

from .health import BinanceHealth
from .source import BinanceSource


__all__ = ["BinanceHealth", "BinanceSource"]
