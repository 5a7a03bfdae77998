"""The floor peer: the least work a Python fan-out server can do per delivery.

aiohttp does the handshake (as in tickwire) and reads the clients' frames;
for each upstream message the peer encodes the JSON once (tickwire's own
encoder, so the bytes on the wire are tickwire's), frames it once
(:func:`tickwire.frames.text_frame`) and calls ``transport.write(frame)``
once per subscriber. Nothing else: no queue, no writer task, no
backpressure, no conflation, no coalescing (one frame per write). A stalled
client's frames pile up in its transport's buffer without bound.

Whatever tickwire spends per delivery above this floor is the price of its
policies (bounded queues, slow-client handling, coalescing machinery).
Run by the harness as ``python -m bench.servers floor``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from tickwire.clock import wall_ms
from tickwire.frames import text_frame
from tickwire.protocol import encode_event, encode_subscribed

from .feed import Feed
from .servers import control, make_event


__all__ = ["serve_floor"]


class Floor:
    """Subscriptions by channel, and the fan-out of one message: one write per subscriber."""

    def __init__(self) -> None:
        # a dict as an ordered set: O(1) removal when a client leaves
        self.subs: dict[str, dict[asyncio.Transport, None]] = {}
        self.seqs: dict[str, int] = {}
        self.kind = ["trade"]
        self.connections = 0

    def emit(self, index: int, us: int) -> None:
        event = make_event(self.kind[0], index, us)
        channel = f"trades:{event.symbol}" if self.kind[0] == "trade" else f"price:{event.symbol}"
        seq = self.seqs[channel] = self.seqs.get(channel, 0) + 1
        targets = self.subs.get(channel)
        if targets:
            frame = text_frame(encode_event(channel, seq, event))  # built once
            for transport in targets:
                transport.write(frame)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None  # uvloop's transport is not an asyncio.Transport subclass
        mine: list[str] = []
        self.connections += 1
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("type") != "subscribe":
                    continue
                for channel in data["channels"]:
                    self.subs.setdefault(channel, {})[transport] = None
                    mine.append(channel)
                    transport.write(text_frame(encode_subscribed(channel, wall_ms())))
        finally:
            self.connections -= 1
            for channel in mine:
                self.subs[channel].pop(transport, None)
        return ws


async def serve_floor() -> None:
    floor = Floor()
    app = web.Application()
    app.router.add_get("/ws", floor.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def extra() -> dict[str, Any]:
        return {"connections": floor.connections}

    try:
        await control(Feed(floor.emit), port, extra, floor.kind)
    finally:
        await runner.cleanup()
