"""``/metrics``: Prometheus text rendered from :class:`Stats`, the hub, the
sessions, the source and the bus.

A custom collector reads everything at scrape time, so the hot paths pay for
integer additions only. Label sets are bounded: channel *kinds*, error codes,
known close codes, HTTP statuses, the source and bus names; never a symbol,
a channel or a user id. The catalogue (names, types, meaning) is in
docs/operations.md.

What is read from other components, at scrape time:

* ``source.health()``, a :class:`~tickwire.health.SourceHealth`: ``live``,
  ``connections``, ``reconnects``, ``stale_streams``, ``rest_calls``,
  ``rest_limited`` and the ``backfill_*`` counters (a source without a
  counter leaves it at 0).
* ``bus.health()``, a :class:`~tickwire.bus.BusHealth`: ``connected`` and
  ``reconnects``; the label is ``bus.name``.
* each session's ``queued`` (frames in its outbox), for the outbox-depth
  histogram; a gauge histogram, since it is a snapshot of all clients now.
* ``books()``: the levels of every order book the ingest holds, for the
  books-held gauge and the levels-per-book gauge histogram (no symbol label).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .. import logs
from ..bus import BusHealth
from ..channels import Kind
from ..errors import CloseCode, ErrorCode
from ..health import SourceHealth
from ..hub import Hub
from ..resume import Reason
from ..stats import LATENCY_BUCKETS_MS, Stats


__all__ = ["BOOK_LEVEL_BUCKETS", "CONTENT_TYPE", "OUTBOX_BUCKETS", "Metrics"]

logger = logging.getLogger("tickwire.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

OUTBOX_BUCKETS: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Upper bounds (frames) of the outbox-depth histogram."""

BOOK_LEVEL_BUCKETS: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
"""Upper bounds (levels, both sides) of the levels-per-book histogram."""

_KNOWN_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1006, 1007, 1011, *CloseCode})
_KINDS = tuple(k.value for k in Kind)
# series exported at 0 from the start, so rate() and increase() see the first event
_INITIAL_CLOSE_CODES = (1000, 1001, 1006, *CloseCode)
_INITIAL_REJECTIONS = {"origin": 0, "total": 0, "per_ip": 0}


class _Queued(Protocol):
    @property
    def queued(self) -> int: ...


class _BusView(Protocol):
    name: str

    def health(self) -> BusHealth: ...


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _by(family: GaugeMetricFamily | CounterMetricFamily, rows: Iterable[tuple[str, float]]) -> Metric:
    for label, value in rows:
        family.add_metric([label], value)
    return family


class _GatewayCollector(Collector):
    def __init__(
        self,
        stats: Stats,
        hub: Hub,
        upstream: Callable[[], SourceHealth],
        bus: _BusView | None,
        sessions: Callable[[], Iterable[_Queued]] | None,
        connection_limit: int,
        info: Mapping[str, str],
        books: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        self._books = books
        self._stats = stats
        self._hub = hub
        self._upstream = upstream
        self._bus = bus
        self._sessions = sessions
        self._connection_limit = connection_limit
        self._info = dict(info)

    def collect(self) -> Iterator[Metric]:
        yield from self._connections()
        yield from self._channels()
        if self._books is not None:
            yield from self._book_metrics(list(self._books()))
        yield from self._traffic()
        yield from self._slow_clients()
        yield self._latency()
        yield from self._upstream_metrics()
        yield from self._bus_metrics()
        yield from self._publish()
        yield from self._resumes()
        yield _counter(
            "tickwire_log_lines_suppressed",
            "Log lines dropped by the log rate limiter (a flood of similar lines).",
            logs.suppressed_total(),
        )

    def _connections(self) -> Iterator[Metric]:
        s = self._stats
        info = GaugeMetricFamily(
            "tickwire_info", "Build and role of this node (always 1).", labels=list(self._info)
        )
        info.add_metric(list(self._info.values()), 1.0)
        yield info
        yield GaugeMetricFamily(
            "tickwire_connections", "Client WebSocket connections open now.", s.connections_current
        )
        yield GaugeMetricFamily(
            "tickwire_connections_limit",
            "Configured cap on client connections of this node (0: no cap).",
            self._connection_limit,
        )
        yield _counter("tickwire_connections_opened", "Client connections accepted.", s.connections_opened)
        closed: dict[str, int] = {str(code): 0 for code in _INITIAL_CLOSE_CODES}
        for code, n in s.connections_closed.items():
            label = str(code) if code in _KNOWN_CLOSE_CODES else "other"
            closed[label] = closed.get(label, 0) + n
        yield _by(
            CounterMetricFamily(
                "tickwire_connections_closed", "Client connections closed, by close code.", labels=["code"]
            ),
            sorted(closed.items()),
        )
        yield _by(
            CounterMetricFamily(
                "tickwire_connections_rejected",
                "Connections refused by a limit, by reason.",
                labels=["reason"],
            ),
            sorted(({**_INITIAL_REJECTIONS, **s.rejected_connections}).items()),
        )

    def _channels(self) -> Iterator[Metric]:
        per_kind: dict[str, list[int]] = {k: [0, 0] for k in _KINDS}
        for name in self._hub.channels():
            counts = per_kind.get(name.partition(":")[0])
            if counts is not None:
                counts[0] += self._hub.subscriber_count(name)
                counts[1] += 1
        yield _by(
            GaugeMetricFamily(
                "tickwire_subscriptions", "Client subscriptions, by channel kind.", labels=["kind"]
            ),
            ((kind, n) for kind, (n, _) in per_kind.items()),
        )
        yield _by(
            GaugeMetricFamily(
                "tickwire_channels", "Channels with local subscribers, by kind.", labels=["kind"]
            ),
            ((kind, n) for kind, (_, n) in per_kind.items()),
        )
        yield GaugeMetricFamily(
            "tickwire_stale_channels",
            "Channels with local subscribers whose upstream is down or stalled.",
            len(self._hub.stale_channels()),
        )

    @staticmethod
    def _book_metrics(levels: list[int]) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "tickwire_books_held",
            "Order books the ingest holds (one per symbol with a book channel).",
            len(levels),
        )
        counts = [0] * (len(BOOK_LEVEL_BUCKETS) + 1)
        for n in levels:
            counts[bisect_left(BOOK_LEVEL_BUCKETS, n)] += 1
        family = GaugeHistogramMetricFamily(
            "tickwire_book_levels", "Levels (both sides) of each order book held, now (one sample per book)."
        )
        family.add_metric([], _cumulative(BOOK_LEVEL_BUCKETS, counts, str), sum(levels))
        yield family

    def _traffic(self) -> Iterator[Metric]:
        s = self._stats
        yield _counter("tickwire_client_frames_in", "Frames received from clients.", s.messages_in)
        yield _by(
            CounterMetricFamily(
                "tickwire_messages_in",
                "Channel messages this node received for its subscribers, by channel kind.",
                labels=["kind"],
            ),
            ((kind, s.publications_by_kind.get(kind, 0)) for kind in _KINDS),
        )
        yield _by(
            CounterMetricFamily(
                "tickwire_messages_out",
                "Channel messages queued to clients (one per subscriber), by channel kind.",
                labels=["kind"],
            ),
            ((kind, s.messages_out_by_kind.get(kind, 0)) for kind in _KINDS),
        )
        yield _counter("tickwire_bytes_out", "Bytes written to client sockets.", s.bytes_out)
        yield _by(
            CounterMetricFamily("tickwire_errors", "Error frames sent to clients, by code.", labels=["code"]),
            ((code.value, s.errors.get(code.value, 0)) for code in ErrorCode),
        )

    def _slow_clients(self) -> Iterator[Metric]:
        s = self._stats
        yield _counter(
            "tickwire_conflated_messages",
            "Latest-value messages replaced before a slow client read them.",
            s.conflated,
        )
        yield _by(
            CounterMetricFamily(
                "tickwire_throttled_messages",
                "Frames of throttled subscriptions superseded before their due time, by channel kind.",
                labels=["kind"],
            ),
            ((kind, s.throttled.get(kind, 0)) for kind in _KINDS),
        )
        yield _counter(
            "tickwire_dropped_messages", "Frames discarded unsent because their client was closed.", s.dropped
        )
        yield _counter(
            "tickwire_slow_consumer_disconnects",
            "Clients closed with 4008 (outbox full).",
            s.slow_disconnects,
        )
        yield _counter(
            "tickwire_book_snapshots_instead_of_diffs",
            "Book snapshots queued in place of a slow client's pending diffs (the state class).",
            s.book_snapshots,
        )
        if self._sessions is not None:
            yield self._outbox()

    def _outbox(self) -> Metric:
        assert self._sessions is not None
        counts = [0] * (len(OUTBOX_BUCKETS) + 1)
        total = 0
        for session in self._sessions():
            depth = session.queued
            total += depth
            counts[_bucket_index(depth)] += 1
        family = GaugeHistogramMetricFamily(
            "tickwire_client_outbox_depth",
            "Frames waiting in each client's outbox, now (one sample per client).",
        )
        family.add_metric([], _cumulative(OUTBOX_BUCKETS, counts, str), total)
        return family

    def _latency(self) -> Metric:
        s = self._stats
        family = HistogramMetricFamily(
            "tickwire_delivery_latency_seconds",
            "Upstream event time to fan-out, once per channel message, by channel kind.",
            labels=["kind"],
        )
        for kind, counts in s.latency_buckets.items():
            buckets = _cumulative(LATENCY_BUCKETS_MS, counts, lambda ms: repr(ms / 1000))
            family.add_metric([kind], buckets, s.latency_sum_ms.get(kind, 0) / 1000)
        return family

    def _upstream_metrics(self) -> Iterator[Metric]:
        try:
            health = self._upstream()
        except Exception:  # a scrape must not fail because a source did
            logger.exception("source health() failed during a scrape")
            health = SourceHealth(source="unknown", live=False)
        label = [health.source]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["source"])
            family.add_metric(label, value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=["source"])
            family.add_metric(label, value)
            return family

        yield gauge("tickwire_upstream_up", "1 when the upstream feed is live.", 1.0 if health.live else 0.0)
        yield gauge("tickwire_upstream_connections", "Upstream connections open now.", health.connections)
        yield counter(
            "tickwire_upstream_reconnects",
            "Upstream reconnects (not planned rotations).",
            health.reconnects,
        )
        yield gauge(
            "tickwire_upstream_stale_streams",
            "Upstream streams the watchdog considers stalled now.",
            len(health.stale_streams),
        )
        yield counter("tickwire_upstream_rest_requests", "REST requests to the upstream.", health.rest_calls)
        yield counter(
            "tickwire_upstream_rest_rate_limited",
            "REST answers 429/418 (rate limited) from the upstream.",
            health.rest_limited,
        )
        yield from _book_metrics(health, gauge, counter)
        yield from _backfill_metrics(health, counter)

    def _bus_metrics(self) -> Iterator[Metric]:
        if self._bus is None:
            return
        try:
            health = self._bus.health()
        except Exception:
            logger.exception("bus health() failed during a scrape")
            health = BusHealth(kind=self._bus.name, connected=False)
        up = GaugeMetricFamily(
            "tickwire_bus_up", "1 when the bus (memory or Redis) is connected.", labels=["bus"]
        )
        up.add_metric([self._bus.name], 1.0 if health.connected else 0.0)
        yield up
        reconnects = CounterMetricFamily(
            "tickwire_bus_reconnects", "Bus reconnects since start.", labels=["bus"]
        )
        reconnects.add_metric([self._bus.name], health.reconnects)
        yield reconnects

    def _publish(self) -> Iterator[Metric]:
        s = self._stats
        statuses = dict.fromkeys((200, 400, 401, 413, 503), 0)  # always present, so rate() has a start
        for status, n in s.publish_requests.items():
            label = status if 100 <= status <= 599 else 0
            statuses[label] = statuses.get(label, 0) + n
        yield _by(
            CounterMetricFamily(
                "tickwire_publish_requests", "Publish API requests, by HTTP status.", labels=["status"]
            ),
            ((str(status), n) for status, n in sorted(statuses.items())),
        )
        yield _counter(
            "tickwire_publish_messages", "Channel messages accepted by the publish API.", s.publish_messages
        )

    def _resumes(self) -> Iterator[Metric]:
        results = dict.fromkeys(("recovered", *(r.value for r in Reason)), 0) | dict(self._stats.resumes)
        yield _by(
            CounterMetricFamily(
                "tickwire_resumes",
                "Channels subscribed with since: recovered, or the reason they were not.",
                labels=["result"],
            ),
            sorted(results.items()),
        )
        history = self._hub.history
        yield GaugeMetricFamily("tickwire_history_bytes", "Bytes history rings hold.", history.held_bytes)
        yield GaugeMetricFamily("tickwire_history_entries", "Frames in history rings.", history.held_entries)


_RESYNC_REASONS = ("gap", "crossed", "bridge", "disconnect")  # exported at 0 from the start


def _book_metrics(
    health: SourceHealth,
    gauge: Callable[[str, str, float], GaugeMetricFamily],
    counter: Callable[[str, str, float], CounterMetricFamily],
) -> Iterator[Metric]:
    """The source's order book engine and REST weight (sources/binance/books.py, budget.py)."""
    resyncs = CounterMetricFamily(
        "tickwire_book_resyncs",
        "Order book resyncs (the book dropped and rebuilt from a snapshot), by reason.",
        labels=["source", "reason"],
    )
    for reason, n in sorted({**dict.fromkeys(_RESYNC_REASONS, 0), **health.book_resyncs}.items()):
        resyncs.add_metric([health.source, reason], n)
    yield resyncs
    yield gauge(
        "tickwire_upstream_rest_weight_used",
        "REST request weight used in the current minute, per the upstream's last answer.",
        health.rest_weight_used,
    )
    yield counter(
        "tickwire_book_snapshot_weight",
        "REST request weight spent on order book snapshots.",
        health.snapshot_weight,
    )


def _backfill_metrics(
    health: SourceHealth, counter: Callable[[str, str, float], CounterMetricFamily]
) -> Iterator[Metric]:
    """The source's upstream backfill (sources/binance/backfill.py); 0 for a source without one."""
    yield counter("tickwire_backfill_runs", "Upstream gaps backfilled over REST.", health.backfill_runs)
    messages = CounterMetricFamily(
        "tickwire_backfill_messages",
        "Backfilled events: published from REST (filled), or live copies dropped (duplicate).",
        labels=["source", "result"],
    )
    messages.add_metric([health.source, "filled"], health.backfill_filled)
    messages.add_metric([health.source, "duplicate"], health.backfill_duplicates)
    yield messages
    yield counter(
        "tickwire_backfill_gaps_lost",
        "Backfills that could not fill their whole gap (the live status reports the rest).",
        health.backfill_lost,
    )


def _bucket_index(depth: int) -> int:
    if depth <= 0:
        return 0
    # OUTBOX_BUCKETS[i] = 2**(i-1) for i >= 1: bucket i holds 2**(i-2) < depth <= 2**(i-1)
    return min((depth - 1).bit_length() + 1, len(OUTBOX_BUCKETS))


def _cumulative(
    bounds: tuple[int, ...], counts: list[int], label: Callable[[int], str]
) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(bounds, counts, strict=False):
        running += n
        buckets.append((label(bound), running))
    buckets.append(("+Inf", running + counts[len(bounds)]))
    return buckets


class Metrics:
    """Owns the registry; :meth:`render` is what ``GET /metrics`` returns.

    Args:
        stats: the node's counters.
        hub: for subscriptions, channels and stale channels.
        upstream: the source's ``health()``.
        bus: the bus (its ``name`` and ``health()``).
        sessions: returns the open sessions (for the outbox-depth histogram).
        connection_limit: the configured cap on connections (0: none).
        info: labels of ``tickwire_info`` (version, source, bus, role).
        books: returns the levels of every order book the ingest holds.
        process: also export ``process_*`` (CPU, memory, open and max fds).
    """

    def __init__(
        self,
        stats: Stats,
        hub: Hub,
        upstream: Callable[[], SourceHealth],
        *,
        bus: _BusView | None = None,
        sessions: Callable[[], Iterable[_Queued]] | None = None,
        connection_limit: int = 0,
        info: Mapping[str, str] | None = None,
        books: Callable[[], Iterable[int]] | None = None,
        process: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            _GatewayCollector(stats, hub, upstream, bus, sessions, connection_limit, info or {}, books)
        )
        if process:
            ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
