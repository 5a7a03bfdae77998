"""One ping sweep for the whole gateway, instead of a heartbeat timer per connection.

docs/protocol.md "Heartbeat": the server pings a connection it has heard
nothing from for ``interval`` seconds and drops one that does not answer
within half of it. aiohttp does that with two timers per connection
(re-armed whenever data arrives); with 10,000 idle clients those are
10,000 timer handles, about 0.6 KB each (docs/fanout.md, "Memory per
connection"). Here one timer walks the connections instead.

Theory of operation:

* The connections are dealt round-robin into ``slots`` buckets; the sweep
  ticks every ``interval / slots`` seconds and visits one bucket per tick,
  so each connection is visited once per ``interval`` and the pings of
  10,000 clients are spread evenly, not sent in one loop iteration.
* A connection sets its :attr:`Pulse.heard` flag whenever bytes arrive
  (one attribute store per read, from the protocol's data callback).
* Ping visit: heard since the last visit -> clear the flag, no ping (the
  client is talking); otherwise send a ping frame and await its answer.
* Half an interval later (the bucket ``slots / 2`` ticks back), the answer
  visit: a connection awaiting a pong that has been heard since is fine;
  one that has not is lost (:meth:`Pulse.lost`: closed as 1006, as aiohttp
  does).
* A new connection counts as heard (its handshake just arrived), so a
  silent client gets its first ping one to two intervals after it
  connected, then one every interval. The timer runs only while there are
  connections.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


__all__ = ["Heartbeat", "Pulse"]


class Pulse(Protocol):
    """What the sweep needs of a connection (:class:`~.ws.WsTransport`)."""

    heard: bool
    """Set by the connection when bytes arrive; cleared by the sweep."""
    awaiting: bool
    """A ping was sent and no bytes have arrived since."""
    slot: int
    """The sweep's bucket of this connection."""

    def ping(self) -> bool:
        """Send a ping frame; False when the connection is closing (no answer to await)."""

    def lost(self) -> None:
        """No answer within the timeout: drop the connection."""


class Heartbeat:
    """Pings the idle connections of a gateway and drops those that stopped answering.

    Args:
        interval: seconds of silence before a ping; no answer within half of it drops the connection.
        slots: buckets the connections are spread over (an even number): the sweep
            ticks ``slots`` times per interval and visits one bucket per tick.
    """

    __slots__ = ("_buckets", "_handle", "_next", "_period", "_ticks", "count")

    def __init__(self, interval: float, *, slots: int = 16) -> None:
        if slots < 2 or slots % 2:
            raise ValueError("slots must be an even number >= 2")
        self._period = interval / slots
        self._buckets: list[set[Pulse]] = [set() for _ in range(slots)]
        self._next = 0  # the bucket of the next connection
        self._ticks = 0
        self._handle: asyncio.TimerHandle | None = None
        self.count = 0  # connections watched

    def add(self, conn: Pulse) -> None:
        """Watch ``conn`` from now on (right after its handshake)."""
        conn.heard, conn.awaiting = True, False
        conn.slot = self._next
        self._next = (self._next + 1) % len(self._buckets)
        self._buckets[conn.slot].add(conn)
        self.count += 1
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._period, self._tick)

    def discard(self, conn: Pulse) -> None:
        """Stop watching ``conn`` (it closed); idempotent."""
        bucket = self._buckets[conn.slot]
        if conn in bucket:
            bucket.remove(conn)
            self.count -= 1
        if not self.count and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self._handle = None
        slots = len(self._buckets)
        self._ticks += 1
        self._answers(self._buckets[(self._ticks - slots // 2) % slots])
        self._pings(self._buckets[self._ticks % slots])
        if self.count:
            self._handle = asyncio.get_running_loop().call_later(self._period, self._tick)

    def _answers(self, bucket: set[Pulse]) -> None:
        """Half an interval after their ping: heard since, or lost."""
        for conn in [c for c in bucket if c.awaiting]:
            if conn.heard:
                conn.heard = conn.awaiting = False  # the pong (or any data) answered
            else:
                self.discard(conn)
                conn.lost()

    def _pings(self, bucket: set[Pulse]) -> None:
        """One interval after the last visit: ping those not heard from since."""
        for conn in list(bucket):
            if conn.heard:
                conn.heard = False
            elif not conn.awaiting:
                conn.awaiting = conn.ping()

    def close(self) -> None:
        """Stop the sweep (gateway shutdown)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
