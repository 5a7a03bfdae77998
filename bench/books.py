"""W6 (issue 13): order-book channels fed from a real Binance capture, next to ``depth:``.

A ``tickwire serve --source replay`` node plays the hftbacktest BTCUSDT
capture at real speed (its diff depth stream and REST snapshot go through the
Binance book engine, as live), with the partial depth stream a ``depth:``
channel needs derived from the same book (:mod:`bench.capture`). Each run
connects its clients, lets the book settle, then counts for a fixed window:
the data frames each channel's clients received, their payload bytes, the
snapshots among them (a slow client's queued diffs are replaced by one), and
the node's CPU per delivered message.

Runs: ``book`` (the issue's workload: 1,000 clients on ``book:BTCUSDT:20``,
100 on ``book:BTCUSDT:1000``); ``depth`` (as many clients on
``depth:BTCUSDT``, the 10-level partial book); ``book10`` (as many on
``book:BTCUSDT:10``, the same 10 levels as diffs). Every run gets a new
node, so the capture plays from its start in each.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .capture import with_partial_depth
from .loadgen import Workers
from .procs import processes, start_node


__all__ = ["plan", "w6"]


def plan(clients: int, deep: int) -> dict[str, list[tuple[str, int]]]:
    """The runs: name -> (channel, clients) groups; every run has ``clients + deep`` clients."""
    total = clients + deep
    return {
        "book": [("book:BTCUSDT:20", clients), ("book:BTCUSDT:1000", deep)],
        "depth": [("depth:BTCUSDT", total)],
        "book10": [("book:BTCUSDT:10", total)],
    }


def _specs(groups: list[tuple[str, int]]) -> list[list[str]]:
    """One single-channel client per spec, the groups interleaved (spread over the workers alike)."""
    specs: list[list[str]] = []
    left = dict(groups)
    while any(left.values()):
        for channel, n in left.items():
            if n:
                specs.append([channel])
                left[channel] = n - 1
    return specs


def _merge(parts: list[dict[str, dict[str, int]]]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for part in parts:
        for channel, tally in part.items():
            out.setdefault(channel, Counter()).update(tally)
    return out


def _channel_row(t: Counter[str], seconds: float) -> dict[str, Any]:
    frames, clients = t["frames"], max(1, t["clients"])
    diffs = frames - t["snapshots"]
    return {
        "clients": t["clients"],
        "delivered": frames,
        "delivered_rate": frames / seconds,
        "per_client_rate": frames / clients / seconds,
        "bytes_per_msg": t["bytes"] / frames if frames else None,
        "bytes_per_client_s": t["bytes"] / clients / seconds,
        "snapshots": t["snapshots"],
        "bytes_per_diff": (t["bytes"] - t["snapshot_bytes"]) / diffs if diffs else None,
        "bytes_per_snapshot": t["snapshot_bytes"] / t["snapshots"] if t["snapshots"] else None,
        # seqs the clients' windows spanned: fewer frames than that = diffs a snapshot replaced
        "seq_span": t["span"],
        "closed": t["closed"],
    }


def _run(
    workers: Workers, capture: Path, groups: list[tuple[str, int]], warmup: float, seconds: float
) -> dict[str, Any]:
    with processes() as procs:
        node = start_node(procs, extra=["--source", "replay", "--replay-file", str(capture)])
        try:
            t0 = time.monotonic()
            n = workers.connect(node.url, _specs(groups), sample_every=0, listener="tally")
            connect_s = time.monotonic() - t0
            time.sleep(warmup)  # the first snapshot comes after a few frames; subscribe snapshots pass
            workers.each({"op": "tally", "zero": True})
            cpu0, t0 = node.cpu(), time.monotonic()
            time.sleep(seconds)
            parts = workers.each({"op": "tally", "zero": True})
            cpu1, elapsed = node.cpu(), time.monotonic() - t0
        finally:
            workers.close()
    tallies = _merge(parts)
    delivered = sum(t["frames"] for t in tallies.values())
    return {
        "clients": n,
        "connect_s": connect_s,
        "seconds": elapsed,
        "delivered": delivered,
        "cpu_s": cpu1 - cpu0,
        "cpu_us_per_msg": (cpu1 - cpu0) * 1e6 / delivered if delivered else None,
        "channels": {ch: _channel_row(t, elapsed) for ch, t in sorted(tallies.items())},
    }


def w6(kind: str, workers: Workers, scale: Any) -> dict[str, Any]:
    """Book channels from the hftbacktest capture at real speed: CPU and bytes per message, next to depth:."""
    out: dict[str, Any] = {"runs": {}}
    with tempfile.TemporaryDirectory() as directory:
        capture = Path(directory) / "btcusdt_with_depth10.jsonl"
        out["capture"] = with_partial_depth(capture)
        for name, groups in plan(scale.w6_clients, scale.w6_deep).items():
            run = out["runs"][name] = _run(workers, capture, groups, scale.warmup * 4, scale.w6_seconds)
            chans = "  ".join(
                f"{ch} {r['per_client_rate']:.1f}/s/client {r['bytes_per_msg'] or 0:,.0f} B/msg {r['snapshots']} snap"
                for ch, r in run["channels"].items()
            )
            cpu = run["cpu_us_per_msg"]
            log(f"    {name:7s} {run['clients']} clients  cpu {cpu or 0:.2f} us/msg  {chans}")
    return out


def log(text: str) -> None:
    print(text, flush=True)
