"""W7 (issue 14): a load balancer restarts, and every client reconnects at once with ``since``.

Each configuration starts its own processes on 127.0.0.1 (the simulated
market): ``memory`` is one ``tickwire serve`` node (memory bus, the ring in
its hub); ``redis-same`` and ``redis-other`` are a ``redis-server``, one
``--role ingest`` and two ``--role gateway`` nodes, the clients spread over
the gateways. Each client subscribes to ``trades:S`` (resumed by replay) and
``price:S`` (resumed by snapshot), S one of four symbols, and keeps its
positions (:class:`bench.listeners.Client`). After a few seconds of live data
every socket is closed at once (the load balancer goes away), and after the
outage every client reconnects at once, unpaced, with ``since``: to the same
gateway (``memory``, ``redis-same``) or to the other one (``redis-other``,
where a resume needs the cluster's history). The two Redis storms run on the
same processes, one after the other.

Measured from the moment the reconnects start: when each client had all its
channels acked again, and when it received its first live message (a seq past
its ack's); the gateways' CPU over that time (and at rest before, for
comparison); each channel's outcome (recovered, or the reason it was not),
frames replayed, and any seq gap or repeat on the trades channels; and how
many connections the kernel dropped meanwhile because a listen queue was full
(a system-wide counter: such a connection waits for a retransmission, 1 s
then doubling).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .loadgen import Workers
from .procs import Node, processes, start_node, start_redis


__all__ = ["CONFIGS", "w7"]

CONFIGS = ("memory", "redis-same", "redis-other")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
_LIVE_DEADLINE = 30.0  # seconds: clients not live by then are counted as such


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (all sockets)."""
    rows = [
        line.split()
        for line in Path("/proc/net/netstat").read_text().splitlines()
        if line.startswith("TcpExt:")
    ]
    return int(dict(zip(rows[0], rows[1], strict=True)).get("ListenOverflows", 0))


def _cpu(nodes: list[Node]) -> float:
    return sum(node.cpu() for node in nodes)


def _wait_live(workers: Workers, n: int, t0: float) -> dict[str, list[float]]:
    """Poll the clients until all are live again (or the deadline); their acked and live times."""
    deadline = time.monotonic() + _LIVE_DEADLINE
    while True:
        parts = workers.each({"op": "progress", "t0": t0})
        acked = [t for p in parts for t in p["acked"]]
        live = [t for p in parts for t in p["live"]]
        if len(live) >= n or time.monotonic() > deadline:
            return {"acked": acked, "live": live}
        time.sleep(0.05)


def _storm(
    workers: Workers, gateways: list[Node], ingest: Node | None, n: int, scale: Any, swap: bool
) -> dict[str, Any]:
    """One storm: positions move on, every socket closes, everyone comes back with ``since``."""
    time.sleep(scale.w7_warm / 2)  # positions move on with live data; then the CPU at rest
    rest0, r0 = _cpu(gateways), time.monotonic()
    time.sleep(scale.w7_warm / 2)
    rest = (_cpu(gateways) - rest0) / (time.monotonic() - r0)
    workers.each({"op": "drop"})
    time.sleep(scale.w7_outage)
    urls = [g.url for g in gateways]
    moves = dict(zip(urls, urls[1:] + urls[:1], strict=True)) if swap else {}
    overflows0 = listen_overflows()
    cpu0, ingest0, t0 = _cpu(gateways), ingest.cpu() if ingest else 0.0, time.time()
    back = sum(workers.each({"op": "resume", "swap": moves}))
    times = _wait_live(workers, n, t0)
    window = time.time() - t0
    cpu = _cpu(gateways) - cpu0
    ingest_cpu = ingest.cpu() - ingest0 if ingest else None
    overflows = listen_overflows() - overflows0
    parts = workers.each({"op": "outcomes"})
    outcomes: Counter[str] = Counter()
    for p in parts:
        outcomes.update(p["outcomes"])
    acked, live = times["acked"], times["live"]
    return {
        "clients": n, "reconnected": back, "acked": len(acked), "live": len(live), "gateways": len(gateways),
        "all_acked_ms": max(acked) * 1000 if len(acked) >= n else None,
        "acked_p50_ms": _ms(pct(acked, 0.5)), "acked_p99_ms": _ms(pct(acked, 0.99)),
        "all_live_ms": max(live) * 1000 if len(live) >= n else None,
        "live_p50_ms": _ms(pct(live, 0.5)), "live_p99_ms": _ms(pct(live, 0.99)),
        "cpu_s": cpu, "window_s": window, "cpu_rest_per_s": rest,
        "cpu_ms_per_client": cpu * 1000 / max(1, back), "ingest_cpu_s": ingest_cpu,
        "outcomes": dict(outcomes), "recovered": sum(v for k, v in outcomes.items() if k.endswith(":recovered")),
        "not_recovered": sum(v for k, v in outcomes.items() if not k.endswith(":recovered")),
        "replayed": sum(p["replayed"] for p in parts), "gaps": sum(p["gaps"] for p in parts),
        "repeats": sum(p["repeats"] for p in parts), "closed": sum(p["closed"] for p in parts),
        "listen_overflows": overflows,
    }  # fmt: skip


def _setup(workers: Workers, scale: Any, cluster: bool) -> dict[str, dict[str, Any]]:
    """Start the processes, connect the clients, run the storms of this setup; stop everything."""
    k = 2 if cluster else 1
    # client i goes to gateway i % k: every gateway holds every symbol, as behind a load balancer
    symbols = (SYMBOLS[i // k % len(SYMBOLS)] for i in range(scale.w7_clients))
    specs = [[f"trades:{s}", f"price:{s}"] for s in symbols]
    with tempfile.TemporaryDirectory() as directory, processes() as procs:
        ingest: Node | None = None
        if cluster:
            redis_url = start_redis(procs, directory)
            ingest = start_node(procs, "ingest", redis_url)
            gateways = [start_node(procs, "gateway", redis_url) for _ in range(2)]
        else:
            gateways = [start_node(procs)]
        try:
            n = sum(
                workers.connect(g.url, specs[k :: len(gateways)], sample_every=0, listener="resume")
                for k, g in enumerate(gateways)
            )
            if not cluster:
                return {"memory": _storm(workers, gateways, ingest, n, scale, swap=False)}
            # the same cluster twice: back to the gateway each client had, then each to the other one
            same = _storm(workers, gateways, ingest, n, scale, swap=False)
            return {"redis-same": same, "redis-other": _storm(workers, gateways, ingest, n, scale, swap=True)}
        finally:
            workers.close()


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000


def w7(kind: str, workers: Workers, scale: Any) -> dict[str, Any]:
    """1,000 clients reconnect at once with since (a load balancer restart), with and without Redis."""
    out: dict[str, Any] = {**_setup(workers, scale, cluster=False), **_setup(workers, scale, cluster=True)}
    for config, r in out.items():
        live = "-" if r["all_live_ms"] is None else f"{r['all_live_ms']:,.0f} ms"
        log(
            f"    {config:11s} {r['reconnected']}/{r['clients']} back, all live in {live} (p50 {r['live_p50_ms'] or 0:,.0f}), "
            f"gateway CPU {r['cpu_s'] * 1000:,.0f} ms; recovered {r['recovered']}, not {r['not_recovered']} "
            f"{r['outcomes']}; replayed {r['replayed']}, gaps {r['gaps']}, repeats {r['repeats']}"
        )
    return out


def log(text: str) -> None:
    print(text, flush=True)
