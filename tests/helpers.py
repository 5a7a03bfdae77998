"""Shared test helpers: run a real gateway on port 0, talk to it over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from tickwire.channels import Channel
from tickwire.config import Settings, replace
from tickwire.protocol import encode_publication
from tickwire.publications import Publication
from tickwire.server import Gateway
from tickwire.sources.base import Source


__all__ = ["TIMEOUT", "Client", "FakeTransport", "decode_frames", "publish_now", "running_gateway"]

TIMEOUT = 5.0 * float(os.environ.get("TICKWIRE_TESTS_TIMEOUT_FACTOR", "1"))
"""Default wait for one expected message; scale with TICKWIRE_TESTS_TIMEOUT_FACTOR."""


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings | None = None, *, source: Source | None = None, **changes: Any
) -> AsyncIterator[Gateway]:
    """A gateway listening on 127.0.0.1 on a free port; ``gateway.url`` is its base URL."""
    settings = replace(settings or Settings(), host="127.0.0.1", port=0, **changes)
    gateway = Gateway(settings, source=source)
    runner = web.AppRunner(gateway.app, handle_signals=False, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    gateway.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    gateway.ws_url = f"ws://127.0.0.1:{port}/ws"  # type: ignore[attr-defined]
    try:
        yield gateway
    finally:
        await runner.cleanup()


def publish_now(gateway: Gateway, channel: Channel, data: msgspec.Raw) -> int:
    """Publish like the publish API, synchronously and with the ingest's own seq counter.

    For single-node tests that steer seqs exactly (``gateway.ingest.next_seq`` makes a gap);
    production code publishes through ``await gateway.ingest.publish(...)``.
    """
    seq = gateway.ingest.next_seq(channel.name)
    payload = encode_publication(channel.message_type, channel.name, seq, data, symbol=channel.symbol)
    gateway.bus.publish(Publication(channel.name, seq, payload, True, time.time_ns() // 1_000_000))
    return seq


class Client:
    """A minimal protocol client written from PROTOCOL.md, for tests."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> None:
        self.ws = ws
        self._session = session
        self.welcome: dict[str, Any] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, **kwargs: Any) -> AsyncIterator[Client]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, **kwargs) as ws:
                client = cls(ws, session)
                client.welcome = await client.recv()
                yield client

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        if isinstance(msg, dict):
            await self.ws.send_str(json.dumps(msg))
        elif isinstance(msg, bytes):
            await self.ws.send_bytes(msg)
        else:
            await self.ws.send_str(msg)

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"expected a text frame, got {msg.type!r} {msg.data!r} {msg.extra!r}")
        data = json.loads(msg.data)
        assert isinstance(data, dict)
        return data

    async def recv_until(self, predicate: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Skip messages until one matches ``predicate``; fail after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no matching message")
            msg = await self.recv(remaining)
            if predicate(msg):
                return msg

    async def subscribe(self, *channels: str, **extra: Any) -> list[dict[str, Any]]:
        """Subscribe and return the direct answers (one per channel: subscribed or error)."""
        await self.send({"type": "subscribe", "channels": list(channels), **extra})
        answers: list[dict[str, Any]] = []
        while len(answers) < len(channels):
            msg = await self.recv()
            if msg["type"] in ("subscribed", "error"):
                answers.append(msg)
        return answers

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str]:
        """Wait for the server to close; returns (close code, reason). Skips data frames."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.ws.receive(timeout=max(0.01, deadline - loop.time()))
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code, str(msg.extra or "")


class FakeTransport:
    """A session's transport in memory, for Session tests without sockets.

    It keeps every byte written; :meth:`messages` decodes them. After
    :meth:`stall` it reports a full buffer, like a client that stopped
    reading, so the session's writer waits in ``drain`` until :meth:`release`
    and frames stay in the outbox.
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0
        self.closed: tuple[int, str] | None = None
        self._full = False
        self._room = asyncio.Event()
        self._room.set()

    def write(self, data: bytes) -> None:
        self.data += data
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return 1 << 30 if self._full else 0

    async def drain(self) -> None:
        await self._room.wait()

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def stall(self) -> None:
        self._full = True
        self._room.clear()

    def release(self) -> None:
        self._full = False
        self._room.set()

    def messages(self) -> list[dict[str, Any]]:
        """Everything written since the last call, decoded."""
        data, self.data = bytes(self.data), bytearray()
        return decode_frames(data)


def decode_frames(data: bytes) -> list[dict[str, Any]]:
    """Split unmasked server text frames (the shapes ``frames.text_frame`` builds)."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(data):
        assert data[i] == 0x81, data[i:]
        n, i = data[i + 1], i + 2
        if n == 126:
            n, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        out.append(json.loads(data[i : i + n]))
        i += n
    return out
