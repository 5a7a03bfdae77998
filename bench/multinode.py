"""1 vs 2 gateway processes through Redis: deliveries per second on the same workload.

Self-contained and bounded: starts its own ``redis-server`` on a free
loopback port, one ``--role ingest`` and K ``--role gateway`` processes
(simulated market), opens ``--clients`` WebSocket clients spread evenly over
the gateways, each subscribed to every depth, price and trade channel of
``--symbols`` symbols, and counts data messages received for ``--seconds``.
Every process it starts is killed at the end. Run:

    python -m bench.multinode --clients 200 --seconds 10

The load generator is one asyncio process, so on a small machine it can be
the bottleneck; the ratio is meaningful only while the gateways, not the
clients, saturate (watch ``top``). Results are printed as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time

from .procs import processes, start_node, start_redis


__all__ = ["main"]

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "LTCUSDT"]


async def _client(url: str, channels: list[str], counts: list[int], stop: asyncio.Event) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_str(json.dumps({"type": "subscribe", "channels": channels}))
        while not stop.is_set():
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            if '"seq"' in msg.data[:120]:
                counts[0] += 1


async def _measure(gateways: list[str], clients: int, channels: list[str], seconds: float) -> float:
    counts = [0]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_client(f"ws://{gateways[i % len(gateways)]}/ws", channels, counts, stop))
        for i in range(clients)
    ]
    await asyncio.sleep(2.0)  # connect, subscribe, snapshots
    start, before = time.monotonic(), counts[0]
    await asyncio.sleep(seconds)
    rate = (counts[0] - before) / (time.monotonic() - start)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate


def run_once(gateway_count: int, clients: int, symbols: int, seconds: float) -> float:
    channels = [f"{kind}:{s}" for s in SYMBOLS[:symbols] for kind in ("depth", "price", "trades")]
    with tempfile.TemporaryDirectory() as directory, processes() as procs:
        redis_url = start_redis(procs, directory)
        start_node(procs, "ingest", redis_url)
        gateways = [start_node(procs, "gateway", redis_url).address for _ in range(gateway_count)]
        return asyncio.run(_measure(gateways, clients, channels, seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--symbols", type=int, default=4, help="1 to 8")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    one = run_once(1, args.clients, args.symbols, args.seconds)
    two = run_once(2, args.clients, args.symbols, args.seconds)
    result = {
        "clients": args.clients,
        "channelsPerClient": 3 * args.symbols,
        "seconds": args.seconds,
        "deliveriesPerSecond1": round(one),
        "deliveriesPerSecond2": round(two),
        "ratio": round(two / one, 2) if one else None,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
