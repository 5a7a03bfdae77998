"""Servers under test, one process each: ``python -m bench.servers tickwire|floor|websockets``.

Control protocol (the Node peer speaks it too): the process prints one JSON
line ``{"port": N}`` once it listens on 127.0.0.1, then answers each JSON
line on stdin with one JSON line on stdout:

* ``{"cmd": "feed", "rate": R, "channels": C, "kind": "trade"|"price", "spread": false}``
* ``{"cmd": "burst", "n": 1000, "ms": 10, "kind": "price"}`` -> ``{"start_us": T}``
* ``{"cmd": "stats"}`` -> counters (``published`` always)
* ``{"cmd": "quit"}``
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from tickwire.events import Ticker, Trade

from .feed import Feed, symbol


__all__ = ["main"]

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

_PRICE = Decimal("97523.45000000")
_QTY = Decimal("0.01500000")


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def trade_json(channel_index: int, seq: int, us: int) -> dict[str, Any]:
    sym = symbol(channel_index)
    return {
        "type": "trade", "channel": f"trades:{sym}", "symbol": sym, "seq": seq,
        "data": {"id": us, "price": 97523.45, "quantity": 0.015, "side": "buy", "timestamp": us // 1000},
    }  # fmt: skip


def price_json(channel_index: int, seq: int, us: int) -> dict[str, Any]:
    sym = symbol(channel_index)
    return {
        "type": "price", "channel": f"price:{sym}", "symbol": sym, "seq": seq,
        "data": {"price": 97523.45, "change24h": 2345.67, "changePercent24h": 2.47, "high24h": 98000.0,
                 "low24h": 95000.0, "volume24h": 12345.678, "timestamp": us // 1000},
    }  # fmt: skip


def make_event(kind: str, index: int, us: int) -> Trade | Ticker:
    """The event of channel ``index`` due at ``us``: a trade or a ticker (``price:`` channels)."""
    sym = symbol(index)
    if kind == "trade":
        return Trade(symbol=sym, id=us, price=_PRICE, quantity=_QTY, buyer_taker=True, event_time=us // 1000)
    return Ticker(
        symbol=sym, price=_PRICE, open=_PRICE, high=_PRICE, low=_PRICE, change=_QTY, change_percent=_QTY,
        volume=_QTY, quote_volume=_QTY, trades=1, bid=_PRICE, bid_qty=_QTY, ask=_PRICE, ask_qty=_QTY,
        event_time=us // 1000,
    )  # fmt: skip


async def control(feed: Feed, port: int, extra: Callable[[], dict[str, Any]], kind: list[str]) -> None:
    """Answer the harness on stdin/stdout until ``quit`` or EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"port": port}), flush=True)
    feeder = loop.create_task(feed.run())
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            reply: dict[str, Any] = {"ok": True}
            match cmd["cmd"]:
                case "feed":
                    kind[0] = cmd.get("kind", "trade")
                    feed.set(rate=cmd["rate"], channels=cmd["channels"], spread=cmd.get("spread", False))
                case "burst":
                    kind[0] = cmd.get("kind", "price")
                    feed.set(rate=0, channels=cmd.get("channels", 1))
                    reply["start_us"] = await feed.burst(cmd["n"], cmd["ms"])
                case "stats":
                    reply.update(published=feed.published, **extra())
                case "quit":
                    print(json.dumps(reply), flush=True)
                    os._exit(0)  # no graceful shutdown needed: the harness measured already
            print(json.dumps(reply), flush=True)
    finally:
        feeder.cancel()


# -- tickwire --------------------------------------------------------------------


async def serve_tickwire() -> None:
    from aiohttp import web

    from tickwire.config import Settings
    from tickwire.server import Gateway

    from .source import BenchSource

    kind = ["trade"]
    source = BenchSource(lambda index, us: make_event(kind[0], index, us))
    # BENCH_WRITE_DELAY_MS: the write-delay trade-off docs/fanout.md reports
    delay = float(os.environ.get("BENCH_WRITE_DELAY_MS", "0"))
    settings = Settings(host="127.0.0.1", port=0, ping_interval=60.0, write_delay_ms=delay)
    gateway = Gateway(settings, source=source)
    runner = web.AppRunner(gateway.app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def extra() -> dict[str, Any]:
        s = gateway.stats
        return {
            "connections": len(gateway.sessions),
            "slow": s.slow_disconnects,
            "conflated": s.conflated,
            "messages_out": s.messages_out,
        }

    try:
        await control(source.feed, port, extra, kind)
    finally:
        await runner.cleanup()


# -- websockets peer ---------------------------------------------------------------


async def serve_websockets() -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

    subs: dict[str, set[ServerConnection]] = {}
    seqs: dict[int, int] = {}
    kind = ["trade"]

    async def handler(ws: ServerConnection) -> None:
        mine: list[str] = []
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "subscribe":
                    for channel in msg["channels"]:
                        subs.setdefault(channel, set()).add(ws)
                        mine.append(channel)
                        await ws.send(
                            json.dumps({"type": "subscribed", "channel": channel}, separators=(",", ":"))
                        )
        except ConnectionClosed:
            pass
        finally:
            for channel in mine:
                subs[channel].discard(ws)

    def emit(index: int, us: int) -> None:
        seq = seqs[index] = seqs.get(index, 0) + 1
        if kind[0] == "trade":
            msg = trade_json(index, seq, us)
        else:
            msg = price_json(index, seq, us)
        targets = subs.get(msg["channel"])
        if targets:
            broadcast(targets, json.dumps(msg, separators=(",", ":")))  # encoded once

    feed = Feed(emit)
    async with serve(handler, "127.0.0.1", 0, compression=None, backlog=4096, ping_interval=60) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        await control(feed, port, lambda: {"connections": sum(1 for _ in server.connections)}, kind)


def main() -> None:
    raise_fd_limit()
    logging.basicConfig(level=logging.WARNING)
    import uvloop

    which = sys.argv[1]
    if which == "floor":
        from .floor import serve_floor

        uvloop.run(serve_floor())
    else:
        uvloop.run(serve_tickwire() if which == "tickwire" else serve_websockets())


if __name__ == "__main__":
    main()
