"""``/metrics``: Prometheus text rendered from :class:`Stats`, the hub and the source.

A custom collector reads the counters at scrape time, so the hot paths pay
for integer additions only. Label sets are bounded: channel *kinds*, error
codes and close codes, never a symbol or a user id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .channels import Kind
from .hub import Hub
from .stats import Stats


__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _GatewayCollector(Collector):
    def __init__(self, stats: Stats, hub: Hub, upstream: Callable[[], dict[str, object]]) -> None:
        self._stats = stats
        self._hub = hub
        self._upstream = upstream

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._stats
        yield GaugeMetricFamily(
            "tickwire_connections", "Client WebSocket connections open now.", s.connections_current
        )
        opened = CounterMetricFamily("tickwire_connections_opened", "Client connections accepted.")
        opened.add_metric([], s.connections_opened)
        yield opened
        closed = CounterMetricFamily(
            "tickwire_connections_closed", "Client connections closed, by close code.", labels=["code"]
        )
        for code, n in sorted(s.connections_closed.items()):
            closed.add_metric([str(code)], n)
        yield closed
        subs = GaugeMetricFamily(
            "tickwire_subscriptions", "Client subscriptions, by channel kind.", labels=["kind"]
        )
        channels = GaugeMetricFamily(
            "tickwire_channels", "Channels with local subscribers, by kind.", labels=["kind"]
        )
        per_kind: dict[str, list[int]] = {k.value: [0, 0] for k in Kind}
        for name in self._hub.channels():
            counts = per_kind[name.partition(":")[0]]
            counts[0] += self._hub.subscriber_count(name)
            counts[1] += 1
        for kind, (n_subs, n_channels) in per_kind.items():
            subs.add_metric([kind], n_subs)
            channels.add_metric([kind], n_channels)
        yield subs
        yield channels
        msg_in = CounterMetricFamily("tickwire_messages_in", "Client frames received.")
        msg_in.add_metric([], s.messages_in)
        yield msg_in
        out = CounterMetricFamily(
            "tickwire_messages_out", "Data messages queued to clients, by channel kind.", labels=["kind"]
        )
        pubs = CounterMetricFamily(
            "tickwire_publications", "Channel messages received from the bus, by kind.", labels=["kind"]
        )
        for kind in per_kind:
            out.add_metric([kind], s.messages_out_by_kind.get(kind, 0))
            pubs.add_metric([kind], s.publications_by_kind.get(kind, 0))
        yield out
        yield pubs
        errors = CounterMetricFamily(
            "tickwire_errors", "Error frames sent to clients, by code.", labels=["code"]
        )
        for error_code, n in sorted(s.errors.items()):
            errors.add_metric([error_code], n)
        yield errors
        conflated = CounterMetricFamily(
            "tickwire_conflated_messages", "Latest-value messages replaced before a slow client read them."
        )
        conflated.add_metric([], s.conflated)
        yield conflated
        slow = CounterMetricFamily(
            "tickwire_slow_consumer_disconnects", "Clients closed with 4008 (outbox full)."
        )
        slow.add_metric([], s.slow_disconnects)
        yield slow
        rejected = CounterMetricFamily(
            "tickwire_connections_rejected", "Connections refused by a limit, by reason.", labels=["reason"]
        )
        for reason, n in sorted(s.rejected_connections.items()):
            rejected.add_metric([reason], n)
        yield rejected
        upstream = self._upstream()
        source = str(upstream.get("source", "unknown"))
        up = GaugeMetricFamily("tickwire_upstream_up", "1 when the upstream feed is live.", labels=["source"])
        up.add_metric([source], 1.0 if upstream.get("live") else 0.0)
        yield up
        stale = GaugeMetricFamily("tickwire_stale_channels", "Channels whose upstream is down or stalled.")
        stale.add_metric([], len(self._hub.stale_channels()))
        yield stale


class Metrics:
    """Owns the registry; :meth:`render` is what ``GET /metrics`` returns."""

    def __init__(self, stats: Stats, hub: Hub, upstream: Callable[[], dict[str, object]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_GatewayCollector(stats, hub, upstream))

    def render(self) -> bytes:
        return generate_latest(self.registry)
