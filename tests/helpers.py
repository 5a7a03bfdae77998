"""Shared test helpers: poll with a deadline, free ports, WebSocket frames, a fake
transport, and a real gateway on port 0 to talk to over real sockets.

Every wait scales with one factor, ``TICKWIRE_TESTS_TIMEOUT_FACTOR`` (default 1),
so a slow machine can stretch them all at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from tickwire.bus import Bus
from tickwire.channels import Channel
from tickwire.config import Settings, replace
from tickwire.events import Kline
from tickwire.marketdata import MarketDataUnavailable, SymbolInfo
from tickwire.protocol import encode_publication
from tickwire.publications import ChannelStatus, Publication
from tickwire.server import Gateway
from tickwire.sources.base import Source, SourceHealth, SourceKind, SourceSink


__all__ = [
    "FACTOR",
    "TIMEOUT",
    "Client",
    "FakeSource",
    "FakeTransport",
    "HubRecorder",
    "Running",
    "decode_frames",
    "eventually",
    "eventually_sync",
    "frame_payloads",
    "free_port",
    "health",
    "publish_now",
    "running_gateway",
    "site_port",
]

FACTOR = float(os.environ.get("TICKWIRE_TESTS_TIMEOUT_FACTOR", "1"))
"""Every timeout of the tests is multiplied by this (a slow machine sets it above 1)."""

TIMEOUT = 5.0 * FACTOR
"""Default wait for one expected message or condition."""


# -- waiting -------------------------------------------------------------------


async def eventually(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "the condition", interval: float = 0.01
) -> Any:
    """Poll ``predicate()`` until it returns something true, and return that.

    ``predicate`` may be a plain function or return an awaitable (an async
    check, such as an HTTP request). ``timeout`` is in seconds before the
    factor; on expiry the test fails naming ``what``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout * FACTOR
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout * FACTOR:.1f} s waiting for {what}")
        await asyncio.sleep(interval)


def eventually_sync(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "the condition", interval: float = 0.05
) -> Any:
    """:func:`eventually` for code that cannot await: waiting for a child process or
    a server outside the event loop (it blocks the thread; in a test coroutine, run it
    with ``asyncio.to_thread``)."""
    deadline = time.monotonic() + timeout * FACTOR
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout * FACTOR:.1f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago (for subprocesses
    that must be told their port; in-process servers bind port 0 instead)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- WebSocket frames, as the server writes them ----------------------------------


def frame_payloads(data: bytes) -> list[bytes]:
    """Split unmasked server text frames (RFC 6455 section 5.2) into their payloads.

    Reads the 7-bit, 16-bit (126) and 64-bit (127) payload lengths; fails on
    anything else a server text frame must not be (masked, fragmented, cut).
    """
    out: list[bytes] = []
    i = 0
    while i < len(data):
        assert data[i] == 0x81, f"not a final text frame at byte {i}: {data[i]:#x}"
        assert not data[i + 1] & 0x80, "a server frame is never masked"
        n, i = data[i + 1], i + 2
        if n == 126:
            n, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        assert i + n <= len(data), f"a frame of {n} bytes is cut at {len(data) - i}"
        out.append(data[i : i + n])
        i += n
    return out


def decode_frames(data: bytes) -> list[dict[str, Any]]:
    """The JSON messages of the server text frames in ``data``."""
    messages = [json.loads(payload) for payload in frame_payloads(data)]
    assert all(isinstance(m, dict) for m in messages)
    return messages


class FakeTransport:
    """A session's transport in memory (``session.Transport``), with a client the test plays.

    It buffers like an asyncio transport: ``write`` adds to the buffer and
    only the client (the test) empties it with :meth:`read_all`, so a test
    that does not read is a client that does not read. ``stalled=True``
    reports a full buffer from the start; :meth:`release` makes the client
    read everything, then keep up with every write.
    """

    FULL = 1 << 30
    """The buffer size a stalled transport reports."""

    def __init__(self, *, stalled: bool = False) -> None:
        self.writes: list[bytes] = []  # write calls since the last read_all
        self.written = bytearray()  # every byte ever written
        self.buffered = 0
        self.max_buffered = 0
        self.stalled = stalled
        self.keeping_up = False
        self.high = 64 * 1024  # asyncio's default high-water mark
        self.closed: tuple[int, str] | None = None
        self._read = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.written += data
        if not self.keeping_up:
            self.buffered += len(data)
            self.max_buffered = max(self.max_buffered, self.buffered)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        self.write(b"".join(chunks))

    def get_write_buffer_size(self) -> int:
        return self.FULL if self.stalled else self.buffered

    @property
    def socket(self) -> FakeTransport:
        return self  # the fake is its own byte stream

    def is_closing(self) -> bool:
        return self.closed is not None

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None:
            self.high = high

    async def drain(self) -> None:
        while self.stalled or self.buffered:
            self._read.clear()
            await self._read.wait()

    def stall(self) -> None:
        """The client stops reading: the buffer reports full until :meth:`release`."""
        self.stalled = True
        self.keeping_up = False

    def release(self) -> None:
        """The client reads what waits, and from now on every write at once."""
        self.stalled = False
        self.keeping_up = True
        self.buffered = 0
        self._read.set()

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def read_all(self) -> list[dict[str, Any]]:
        """The client reads everything written since its last read, as messages."""
        data = b"".join(self.writes)
        self.writes.clear()
        self.buffered = 0
        self._read.set()
        return decode_frames(data)

    def messages(self) -> list[dict[str, Any]]:
        """Every message ever written, read or not."""
        return decode_frames(bytes(self.written))


# -- a source the test drives ------------------------------------------------------


class FakeSource:
    """A :class:`~tickwire.sources.base.Source` that sends nothing by itself and records demand.

    The test sends events and statuses through :attr:`sink` (the ingest) and
    reads what the ingest opened and closed. Every symbol is accepted.
    """

    kind = SourceKind.SIMULATED

    def __init__(self, name: str = "simulated") -> None:
        self.name = name
        self.sink: SourceSink | None = None
        self.opened: list[str] = []  # every open, in order
        self.closed: list[str] = []  # every close, in order
        self.live = True

    @property
    def open_now(self) -> list[str]:
        still = list(self.opened)
        for name in self.closed:
            still.remove(name)
        return sorted(still)

    def attach(self, sink: SourceSink) -> None:
        self.sink = sink

    async def run(self) -> None:
        await asyncio.Event().wait()  # until cancelled

    async def validate(self, channel: Channel) -> None:
        return None

    def open(self, channel: Channel) -> None:
        self.opened.append(channel.name)

    def close(self, channel: Channel) -> None:
        self.closed.append(channel.name)

    def streams(self) -> list[str]:
        return self.open_now

    def known_symbols(self) -> list[str] | None:
        return None

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        raise MarketDataUnavailable("a test source keeps no history")

    async def symbols(self) -> list[SymbolInfo]:
        raise MarketDataUnavailable("a test source lists no symbols")

    def health(self) -> SourceHealth:
        return SourceHealth(source=self.name, live=self.live, streams=len(self.open_now))


class HubRecorder:
    """The hub's side of a bus (``BusListener``): records what reaches it, in order."""

    def __init__(self) -> None:
        self.pubs: list[Publication] = []
        self.statuses: list[ChannelStatus] = []
        self.epochs: list[tuple[str, str]] = []

    def on_publication(self, pub: Publication) -> None:
        self.pubs.append(pub)

    def on_status(self, status: ChannelStatus) -> None:
        self.statuses.append(status)

    def on_epoch(self, channel: str, epoch: str) -> None:
        self.epochs.append((channel, epoch))

    def seqs(self, channel: str) -> list[int]:
        return [p.seq for p in self.pubs if p.channel == channel]


# -- a real gateway ----------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    """A gateway listening on 127.0.0.1, with its addresses."""

    gateway: Gateway
    url: str
    """Base URL, ``http://127.0.0.1:<port>``."""
    ws_url: str
    """The WebSocket endpoint, ``ws://127.0.0.1:<port>/ws``."""
    port: int


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings | None = None,
    *,
    source: Source | None = None,
    bus: Bus | None = None,
    port: int = 0,
    **changes: Any,
) -> AsyncIterator[Running]:
    """A gateway serving on 127.0.0.1: on a free port, or on ``port`` (a restart on the same one)."""
    settings = replace(settings or Settings(), host="127.0.0.1", port=port, **changes)
    gateway = Gateway(settings, source=source, bus=bus)
    runner = web.AppRunner(gateway.app, handle_signals=False, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    bound = site_port(site)
    try:
        yield Running(gateway, f"http://127.0.0.1:{bound}", f"ws://127.0.0.1:{bound}/ws", bound)
    finally:
        await runner.cleanup()


def site_port(site: web.TCPSite) -> int:
    """The port a started site listens on (it was asked for port 0)."""
    server = site._server
    assert isinstance(server, asyncio.Server)
    port: int = server.sockets[0].getsockname()[1]
    return port


async def health(running: Running) -> tuple[int, dict[str, Any]]:
    """The gateway's ``/health``: its HTTP status and body."""
    async with aiohttp.ClientSession() as http, http.get(running.url + "/health") as resp:
        body = await resp.json()
        assert isinstance(body, dict)
        return resp.status, body


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
    """A minimal protocol client written from docs/protocol.md, for tests."""

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
