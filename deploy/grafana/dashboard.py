"""Generate tickwire.json, the Grafana dashboard of a tickwire deployment.

Run ``python deploy/grafana/dashboard.py`` after changing a panel; a test
checks that tickwire.json is what this script writes, and that every query
names only metrics a live gateway exports. Standard library only.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any


__all__ = ["build", "main"]

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'
RI = "$__rate_interval"


class _Layout:
    """Places panels left to right in a 24-column grid, rows top to bottom."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "id": len(self.panels) + 1,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: dict[str, Any], w: int = 8, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0


def _targets(*queries: tuple[str, str], fmt: str = "time_series") -> list[dict[str, Any]]:
    return [
        {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i), "format": fmt}
        for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(title: str, *queries: tuple[str, str], unit: str = "short", desc: str = "") -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": _targets(*queries),
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"fillOpacity": 10}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
    }


def stat(title: str, expr: str, legend: str, *, desc: str = "", mapping: bool = True) -> dict[str, Any]:
    up_down = {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}
    mappings = [{"type": "value", "options": up_down}]
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": _targets((expr, legend)),
        "fieldConfig": {
            "defaults": {
                "mappings": mappings if mapping else [],
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
                },
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        },
    }


def heatmap(title: str, expr: str, *, unit: str, desc: str = "") -> dict[str, Any]:
    return {
        "type": "heatmap",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": _targets((expr, "{{le}}"), fmt="heatmap"),
        "options": {
            "calculate": False,
            "yAxis": {"unit": unit},
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "tooltip": {"show": True, "yHistogram": True},
        },
    }


def _connections(g: _Layout) -> None:
    g.row("Connections")
    g.add(
        timeseries(
            "Connections",
            (f"sum by (instance) (tickwire_connections{{{SEL}}})", "{{instance}}"),
            (f"sum by (instance) (tickwire_connections_limit{{{SEL}}})", "cap {{instance}}"),
            desc="Client WebSocket connections open now, and each node's --max-connections.",
        )
    )
    g.add(
        timeseries(
            "Connects and disconnects /s",
            (f"sum(rate(tickwire_connections_opened_total{{{SEL}}}[{RI}]))", "opened"),
            (f"sum by (code) (rate(tickwire_connections_closed_total{{{SEL}}}[{RI}]))", "closed {{code}}"),
            (
                f"sum by (reason) (rate(tickwire_connections_rejected_total{{{SEL}}}[{RI}]))",
                "refused {{reason}}",
            ),
            unit="ops",
            desc="Closes by close code (1001 restart, 4008 slow, 4029 per-IP cap, 1006 lost) and refusals.",
        )
    )
    g.add(
        timeseries(
            "Subscriptions by channel kind",
            (f"sum by (kind) (tickwire_subscriptions{{{SEL}}})", "{{kind}}"),
            (f"sum(tickwire_channels{{{SEL}}})", "channels"),
        )
    )


def _throughput(g: _Layout) -> None:
    g.row("Throughput")
    g.add(
        timeseries(
            "Channel messages in /s",
            (f"sum by (kind) (rate(tickwire_messages_in_total{{{SEL}}}[{RI}]))", "{{kind}}"),
            unit="ops",
            desc="Messages this node received for its subscribers (one per publication).",
        )
    )
    g.add(
        timeseries(
            "Deliveries out /s",
            (f"sum by (kind) (rate(tickwire_messages_out_total{{{SEL}}}[{RI}]))", "{{kind}}"),
            unit="ops",
            desc="Messages queued to clients: one per subscriber per publication.",
        )
    )
    g.add(
        timeseries(
            "Bytes out /s, client frames in /s",
            (f"sum by (instance) (rate(tickwire_bytes_out_total{{{SEL}}}[{RI}]))", "out {{instance}}"),
            (
                f"sum by (instance) (rate(tickwire_client_frames_in_total{{{SEL}}}[{RI}]))",
                "frames in {{instance}}",
            ),
            unit="Bps",
        )
    )
    g.add(
        timeseries(
            "Error frames /s by code",
            (f"sum by (code) (rate(tickwire_errors_total{{{SEL}}}[{RI}])) > 0", "{{code}}"),
            unit="ops",
        ),
        w=24,
        h=6,
    )


def _latency(g: _Layout) -> None:
    g.row("Latency (upstream event time to fan-out)")
    g.add(
        heatmap(
            "Latency heatmap",
            f"sum by (le) (increase(tickwire_delivery_latency_seconds_bucket{{{SEL}}}[{RI}]))",
            unit="s",
            desc="Observed once per channel message, not per subscriber.",
        ),
        w=12,
    )
    g.add(
        timeseries(
            "p50 / p99 by kind",
            (
                "histogram_quantile(0.5, sum by (kind, le) "
                f"(rate(tickwire_delivery_latency_seconds_bucket{{{SEL}}}[{RI}])))",
                "p50 {{kind}}",
            ),
            (
                "histogram_quantile(0.99, sum by (kind, le) "
                f"(rate(tickwire_delivery_latency_seconds_bucket{{{SEL}}}[{RI}])))",
                "p99 {{kind}}",
            ),
            unit="s",
        ),
        w=12,
    )


def _slow(g: _Layout) -> None:
    g.row("Slow consumers")
    g.add(
        timeseries(
            "Slow-consumer disconnects /s (4008)",
            (
                f"sum by (instance) (rate(tickwire_slow_consumer_disconnects_total{{{SEL}}}[{RI}]))",
                "{{instance}}",
            ),
            unit="ops",
        )
    )
    g.add(
        timeseries(
            "Conflated and dropped /s",
            (f"sum(rate(tickwire_conflated_messages_total{{{SEL}}}[{RI}]))", "conflated"),
            (f"sum(rate(tickwire_dropped_messages_total{{{SEL}}}[{RI}]))", "dropped"),
            unit="ops",
            desc="Conflated: an older latest value replaced for a client that fell behind. Dropped: frames "
            "discarded with a closed client.",
        )
    )
    g.add(
        heatmap(
            "Outbox depth (clients per depth bucket)",
            f"sum by (le) (tickwire_client_outbox_depth_bucket{{{SEL}}})",
            unit="short",
            desc="Frames waiting per client at scrape time; a healthy node keeps nearly all clients at 0.",
        )
    )


def _upstream(g: _Layout) -> None:
    g.row("Upstream")
    g.add(stat("Upstream", f"min by (source) (tickwire_upstream_up{{{SEL}}})", "{{source}}"), w=4)
    g.add(
        timeseries(
            "Upstream connections",
            (
                f"sum by (instance, source) (tickwire_upstream_connections{{{SEL}}})",
                "{{instance}} {{source}}",
            ),
        ),
        w=6,
    )
    g.add(
        timeseries(
            "Reconnects (per 5 min)",
            (f"sum by (source) (increase(tickwire_upstream_reconnects_total{{{SEL}}}[5m]))", "{{source}}"),
        ),
        w=7,
    )
    g.add(
        timeseries(
            "Stale streams and channels",
            (f"sum by (source) (tickwire_upstream_stale_streams{{{SEL}}})", "streams {{source}}"),
            (f"sum by (instance) (tickwire_stale_channels{{{SEL}}})", "channels {{instance}}"),
        ),
        w=7,
    )
    g.add(
        timeseries(
            "REST calls and rate limits /s",
            (
                f"sum by (source) (rate(tickwire_upstream_rest_requests_total{{{SEL}}}[{RI}]))",
                "calls {{source}}",
            ),
            (
                f"sum by (source) (rate(tickwire_upstream_rest_rate_limited_total{{{SEL}}}[{RI}]))",
                "429/418 {{source}}",
            ),
            unit="ops",
        ),
        w=24,
        h=6,
    )


def _bus(g: _Layout) -> None:
    g.row("Bus and publish API")
    g.add(stat("Bus", f"min by (bus) (tickwire_bus_up{{{SEL}}})", "{{bus}}"), w=4)
    g.add(
        timeseries(
            "Bus reconnects (per 5 min)",
            (f"sum by (instance) (increase(tickwire_bus_reconnects_total{{{SEL}}}[5m]))", "{{instance}}"),
        ),
        w=8,
    )
    g.add(
        timeseries(
            "Publish API requests /s by status",
            (f"sum by (status) (rate(tickwire_publish_requests_total{{{SEL}}}[{RI}]))", "{{status}}"),
            (f"sum(rate(tickwire_publish_messages_total{{{SEL}}}[{RI}]))", "messages"),
            unit="reqps",
        ),
        w=12,
    )


def _books(g: _Layout) -> None:
    g.row("Order books")
    held = (f"sum by (instance) (tickwire_books_held{{{SEL}}})", "{{instance}}")
    g.add(timeseries("Books held", held), w=6)
    g.add(
        timeseries(
            "Levels per book (p50 / max)",
            (f"histogram_quantile(0.5, sum by (le) (tickwire_book_levels_bucket{{{SEL}}}))", "p50"),
            (f"max(tickwire_book_levels_gsum{{{SEL}}} / tickwire_book_levels_gcount{{{SEL}}})", "mean"),
        ),
        w=6,
    )
    g.add(
        timeseries(
            "Book resyncs (per 5 min) by reason",
            (f"sum by (reason) (increase(tickwire_book_resyncs_total{{{SEL}}}[5m]))", "{{reason}}"),
            desc="A gap, a crossed book or a failed bridge: the symbol's channels were stale until a reset.",
        ),
        w=6,
    )
    g.add(
        timeseries(
            "Snapshots instead of queued diffs /s",
            (f"sum(rate(tickwire_book_snapshots_instead_of_diffs_total{{{SEL}}}[{RI}]))", "snapshots"),
            unit="ops",
            desc="Slow clients whose backlog of book diffs was replaced by one snapshot (the state class).",
        ),
        w=6,
    )
    g.add(
        timeseries(
            "REST weight",
            (f"max by (source) (tickwire_upstream_rest_weight_used{{{SEL}}})", "used/min {{source}}"),
            (
                f"sum by (source) (rate(tickwire_book_snapshot_weight_total{{{SEL}}}[{RI}])) * 60",
                "book snapshots/min {{source}}",
            ),
            desc="X-MBX-USED-WEIGHT-1M as the venue last reported it, and what book snapshots spend.",
        ),
        w=24,
        h=6,
    )


def _resume(g: _Layout) -> None:
    g.row("Resume, history, throttle, backfill")
    g.add(
        timeseries(
            "Resumes (per 5 min) by result",
            (f"sum by (result) (increase(tickwire_resumes_total{{{SEL}}}[5m]))", "{{result}}"),
        ),
        w=6,
    )
    g.add(
        timeseries(
            "History held",
            (f"sum by (instance) (tickwire_history_bytes{{{SEL}}})", "bytes {{instance}}"),
            (f"sum by (instance) (tickwire_history_entries{{{SEL}}})", "frames {{instance}}"),
        ),
        w=6,
    )
    g.add(
        timeseries(
            "Throttled frames superseded /s",
            (f"sum by (kind) (rate(tickwire_throttled_messages_total{{{SEL}}}[{RI}]))", "{{kind}}"),
            unit="ops",
        ),
        w=6,
    )
    g.add(
        timeseries(
            "Upstream backfill (per 5 min)",
            (f"sum by (source) (increase(tickwire_backfill_runs_total{{{SEL}}}[5m]))", "runs {{source}}"),
            (
                f"sum by (result) (increase(tickwire_backfill_messages_total{{{SEL}}}[5m]))",
                "messages {{result}}",
            ),
            (f"sum by (source) (increase(tickwire_backfill_gaps_lost_total{{{SEL}}}[5m]))", "gaps lost"),
        ),
        w=6,
    )


def _process(g: _Layout) -> None:
    g.row("Process")
    g.add(
        timeseries(
            "CPU (cores)",
            (f"sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}[{RI}]))", "{{instance}}"),
        ),
        w=6,
    )
    g.add(
        timeseries(
            "Resident memory",
            (f"sum by (instance) (process_resident_memory_bytes{{{SEL}}})", "{{instance}}"),
            unit="bytes",
        ),
        w=6,
    )
    g.add(
        timeseries(
            "File descriptors",
            (f"sum by (instance) (process_open_fds{{{SEL}}})", "open {{instance}}"),
            (f"sum by (instance) (process_max_fds{{{SEL}}})", "max {{instance}}"),
        ),
        w=6,
    )
    g.add(
        timeseries(
            "Log lines suppressed /s",
            (f"sum by (instance) (rate(tickwire_log_lines_suppressed_total{{{SEL}}}[{RI}]))", "{{instance}}"),
            unit="ops",
            desc="Lines the log rate limiter dropped (--log-rate): a flood of similar events.",
        ),
        w=6,
    )


def _variables() -> list[dict[str, Any]]:
    def query(name: str, expr: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": name,
            "type": "query",
            "datasource": DS,
            "query": {"query": expr, "refId": name},
            "definition": expr,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        }

    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "refresh": 1,
        },
        query("job", "label_values(tickwire_info, job)"),
        query("instance", 'label_values(tickwire_info{job=~"$job"}, instance)'),
    ]


def build() -> dict[str, Any]:
    """The dashboard as a dict (Grafana 10+ JSON model)."""
    g = _Layout()
    for section in (_connections, _throughput, _latency, _slow, _upstream, _books, _resume, _bus, _process):
        section(g)
    return {
        "uid": "tickwire",
        "title": "tickwire",
        "description": "tickwire gateways: connections, throughput, latency, slow consumers, upstream, bus.",
        "tags": ["tickwire", "websocket", "market-data"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "",
        "templating": {"list": _variables()},
        "annotations": {"list": []},
        "panels": g.panels,
        "version": 1,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    target = pathlib.Path(__file__).with_name("tickwire.json")
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
