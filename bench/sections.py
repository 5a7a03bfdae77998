"""The RESULTS.md sections of W6 (order books, :mod:`bench.books`) and W7 (resume storm, :mod:`bench.storm`)."""

from __future__ import annotations

from typing import Any


__all__ = ["w6_section", "w7_section"]


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def w6_section(result: dict[str, Any]) -> list[str]:
    runs: dict[str, Any] = result.get("runs", {})
    cap = result.get("capture", {})
    lines = ["## W6: order books from a real Binance capture (issue 13)", "",
             "`tickwire serve --source replay` plays the hftbacktest BTCUSDT capture (2024-08-08, ~90 s) at real",
             "speed; its diff depth stream and REST snapshot go through the Binance book engine as live. The capture",
             "has no partial depth stream, so the `depth:` run gets one derived from the same book",
             f"(`bench/capture.py`: top 10 after each diff, {cap.get('partials', '?')} frames), as Binance builds it. Each",
             "run is its own node and counts one window after the clients settled. CPU = the node's user+sys over",
             "the window / data frames delivered (book or depth; acks and status frames not counted). Bytes = the",
             "JSON payload of a frame (the WebSocket header adds 2-4 bytes).", "",
             "| run | clients | delivered/s | CPU us/msg | CPU vs depth: |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    depth_cpu = runs.get("depth", {}).get("cpu_us_per_msg")
    for name, run in runs.items():
        cpu = run["cpu_us_per_msg"]
        vs = f"{cpu / depth_cpu:.2f}x" if cpu and depth_cpu and name != "depth" else ""
        rate = run["delivered"] / run["seconds"] if run["seconds"] else 0.0
        lines.append(f"| {name} | {run['clients']:,} | {rate:,.0f} | {_f(cpu, 2)} | {vs} |")
    lines += ["", "| run | channel | clients | msg/s per client | bytes/msg | bytes/diff | snapshots in window "
              "| bytes/snapshot | KB/s per client | delivered / seqs spanned |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, run in runs.items():
        for channel, r in run["channels"].items():
            span = f"{r['delivered'] / r['seq_span']:.0%}" if r["seq_span"] else "-"
            lines.append(
                f"| {name} | `{channel}` | {r['clients']:,} | {r['per_client_rate']:.1f} | {_f(r['bytes_per_msg'], 0)} "
                f"| {_f(r['bytes_per_diff'], 0)} | {r['snapshots']:,} | {_f(r['bytes_per_snapshot'], 0)} "
                f"| {r['bytes_per_client_s'] / 1000:.2f} | {span} |"
            )
    return [*lines, ""]


def w7_section(result: dict[str, Any]) -> list[str]:
    lines = ["## W7: reconnect storm with `since` (issue 14)", "",
             "Every client (`trades:S` + `price:S`, four symbols, simulated market) loses its socket at once and,",
             "after the outage, reconnects at once with `since`. `memory`: one node. `redis-same` / `redis-other`:",
             "redis-server, one ingest and two gateways; each client reconnects to the gateway it had, or to the other",
             "one. Times from the start of the reconnects: all channels acked again; the first live message (seq past",
             "the ack's). Gateway CPU over that window (all gateways), beside its rate at rest. Outcomes per channel",
             "subscription; gaps and repeats: seq checks on the trades channels (a recovered resume must show none).",
             "Listen queue drops: connections the kernel dropped meanwhile, its accept queue full (system-wide).", "",
             "| config | clients back | all acked ms | acked p50 / p99 ms | all live ms | live p50 / p99 ms "
             "| gateway CPU ms (at rest ms/s) | CPU ms / client | ingest CPU ms | recovered | not recovered | replayed | gaps / repeats | listen queue drops |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]  # fmt: skip
    for config, r in result.items():
        nots = ", ".join(
            f"{k} {v:,}" for k, v in sorted(r["outcomes"].items()) if not k.endswith(":recovered")
        )
        ingest = _f(r["ingest_cpu_s"] * 1000, 0) if r["ingest_cpu_s"] is not None else "-"
        # clients still not live at the deadline are named, not hidden behind a dash
        live = _f(r["all_live_ms"], 0) if r["all_live_ms"] is not None else f"- ({r['live']:,} live)"
        lines.append(
            f"| {config} | {r['reconnected']:,}/{r['clients']:,} | {_f(r['all_acked_ms'], 0)} "
            f"| {_f(r['acked_p50_ms'], 0)} / {_f(r['acked_p99_ms'], 0)} | {live} "
            f"| {_f(r['live_p50_ms'], 0)} / {_f(r['live_p99_ms'], 0)} "
            f"| {r['cpu_s'] * 1000:,.0f} ({r['cpu_rest_per_s'] * 1000:,.0f}) | {r['cpu_ms_per_client']:.2f} | {ingest} "
            f"| {r['recovered']:,} | {r['not_recovered']:,}{f' ({nots})' if nots else ''} | {r['replayed']:,} "
            f"| {r['gaps']} / {r['repeats']} | {r.get('listen_overflows', '-')} |"
        )
    return [*lines, ""]
