"""An upgraded connection keeps only what a WebSocket needs, and still works in full.

The gateway drops aiohttp's HTTP/1 parser, its empty request queue and the
101's headers after the upgrade, shares two writer objects no server
WebSocket uses, pings from one sweep instead of a timer per connection, and
keeps its close hook in a slot (docs/fanout.md, "Memory"). These
reach into aiohttp's internals, so this test pins both the memory effect and
that reading, heartbeats, errors and the close handshake still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

from tickwire import outbox
from tickwire.server.ws import _NO_MASK, _NO_TASKS, SWEEP, WebSocket, WsTransport

from .helpers import Client, eventually, running_gateway


async def test_upgraded_connections_drop_the_http_parser_and_keep_working() -> None:
    async with running_gateway(ping_interval=0.3) as running, Client.connect(running.ws_url) as client:
        await eventually(lambda: len(running.gateway.sessions) == 1, what="the session")
        session = next(iter(running.gateway.sessions))
        transport = session._transport
        assert isinstance(transport, WsTransport)
        protocol = transport._request.protocol
        assert protocol._parser is None and len(protocol._messages) == 0
        ws = transport._ws
        assert isinstance(ws, WebSocket) and "on_too_big" not in vars(ws)  # a slot, not a dict key
        assert len(ws.headers) == 0  # the 101's headers, sent
        writer = ws._writer  # its two per-connection objects no server WebSocket uses are shared
        assert (
            writer is not None
            and writer._background_tasks is _NO_TASKS
            and writer.get_random_bits is _NO_MASK
        )
        if SWEEP:
            assert ws._heartbeat_cb is None  # the gateway's one sweep pings instead
        # the connection still reads client frames, answers, streams data and survives heartbeats
        answers = await client.subscribe("price:BTCUSDT")
        assert answers[0]["type"] == "subscribed"
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.0  # three heartbeat periods; the client pongs while it reads
        prices = 0
        while loop.time() < until:
            msg = await client.recv()
            prices += msg["type"] == "price"
        assert prices > 0
        await client.send({"type": "ping", "id": 7})
        pong = await client.recv_until(lambda m: m["type"] == "pong")
        assert pong["id"] == 7
        await client.send("{not json")
        error = await client.recv_until(lambda m: m["type"] == "error")
        assert error["code"] == "INVALID_MESSAGE"
        await client.ws.close()
        assert client.ws.close_code == 1000
    await eventually(lambda: not running.gateway.sessions, what="the session's cleanup")


async def test_an_oversize_frame_still_gets_its_error_and_1009() -> None:
    async with running_gateway(max_message_size=1024) as running, Client.connect(running.ws_url) as client:
        await client.send(json.dumps({"type": "ping", "pad": "x" * 4000}))
        error = await client.recv()
        assert error["code"] == "MESSAGE_TOO_LARGE"
        msg = await client.ws.receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert client.ws.close_code == 1009


def _our_frames(coro: Any) -> list[str]:
    """The coroutines of tickwire's own code on an awaiting chain, outermost first."""
    names = []
    while coro is not None:
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is not None and "tickwire" in code.co_filename:
            names.append(code.co_name)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return names


async def test_an_idle_connection_waits_in_one_coroutine_of_ours_and_shares_its_channel() -> None:
    """Each coroutine frame is 0.25-0.45 KB per idle connection (docs/fanout.md, "Memory
    per connection"): while a client is idle only the handler itself waits in our code.
    Sessions on the same channel share one parsed Channel, and an outbox that never held
    two frames at once (here: only ``connected``) has no lists or dicts of its own."""
    async with running_gateway() as running, contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client.connect(running.ws_url)) for _ in range(3)]
        for client in clients[:2]:
            answers = await client.subscribe("price:BTCUSDT")
            assert answers[0]["type"] == "subscribed"
        await eventually(lambda: len(running.gateway.sessions) == 3, what="the sessions")
        await asyncio.sleep(0.2)
        chains = [
            _our_frames(task.get_coro())
            for task in asyncio.all_tasks()
            if "handle_ws" in _our_frames(task.get_coro())
        ]
        assert chains == [["handle_ws"]] * 3
        first, second = [s for s in running.gateway.sessions if s.subscriptions]
        assert first.subscriptions["price:BTCUSDT"] is second.subscriptions["price:BTCUSDT"]
        [idle] = [s for s in running.gateway.sessions if not s.subscriptions]
        box = idle._outbox
        assert box._frames is outbox._NO_FRAMES and box._latest is outbox._NO_INDEX
