"""A tiny gateway that speaks docs/protocol.md for ``book:`` channels only, with fault injection.

The real gateway's book projection and hub views live on other branches; the
faces (client ``Book``, the dashboard's JS book, ``tickwire watch book:...``)
are tested here against this stand-in, written from the protocol text:
``connected``; per subscribe, ``subscribed`` then a snapshot at the channel's
current seq (a subscribe to a channel already held re-sends the snapshot);
diffs to every subscriber, each with the checksum v1 of the book after it.
It also serves the dashboard's static files and the HTTP routes the page
polls, so a browser can load it.

The checksum here is the tests' own (:func:`tests.books.checksum_v1`), apart from
``tickwire.client.book`` and ``tickwire.orderbook`` on purpose: they must agree on
docs/protocol.md's test vectors, not on shared code.

Faults: :meth:`FakeBook.drop_next` (the next diff is not sent to anyone:
a seq gap) and :meth:`FakeBook.corrupt_next` (the next diff carries a wrong
checksum).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import itertools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from tickwire.channels import parse_channel

from .books import checksum_v1
from .helpers import site_port


__all__ = ["BookState", "FakeBook", "doc_vectors", "fake_book_server"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
WEB = importlib.resources.files("tickwire") / "web"


def doc_vectors() -> dict[str, Any]:
    """docs/protocol.md's book example frames and checksum test vectors, read from the doc itself."""
    text = DOC.read_text()
    section = text[text.index("## Order book channel") :]
    frames = re.findall(r"```json\n(.*?)```", section, re.S)[:2]
    strings = re.search(r"gives the string `(\d+)` and\s+(\d+); after the diff, `(\d+)` and\s+(\d+)", section)
    assert strings, "docs/protocol.md lost the book checksum test vectors"
    return {
        "snapshot": json.loads(frames[0]),
        "diff": json.loads(frames[1]),
        "strings": [strings[1], strings[3]],
        "checksums": [int(strings[2]), int(strings[4])],
    }


@dataclass
class BookState:
    """The book of one channel as the gateway holds it, and its seq."""

    channel: str
    precision: tuple[int, int] = (2, 5)
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    seq: int = 0
    update_id: int = 1000

    def checksum(self) -> int:
        """Checksum v1 of the book: top 10 asks ascending, then top 10 bids descending."""
        return checksum_v1(list(self.bids.items()), list(self.asks.items()), self.precision)

    def snapshot(self, *, reset: bool = False) -> dict[str, Any]:
        _, symbol, depth = self.channel.split(":")
        msg: dict[str, Any] = {"type": "book", "channel": self.channel, "symbol": symbol, "depth": int(depth)}
        msg |= {"seq": self.seq, "snapshot": True} | ({"reset": True} if reset else {})
        msg["data"] = {
            "bids": _levels(sorted(self.bids.items(), reverse=True)),
            "asks": _levels(sorted(self.asks.items())),
            "precision": {"price": self.precision[0], "qty": self.precision[1]},
            "checksum": self.checksum(),
            "updateId": self.update_id,
            "timestamp": 1723161255208 + self.seq,
        }
        return msg

    def change(self, bids: dict[str, str], asks: dict[str, str]) -> dict[str, Any]:
        """Apply a diff (decimal strings; "0" removes) and return its message, next seq."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, qty in levels.items():
                if Decimal(qty):
                    side[Decimal(price)] = Decimal(qty)
                else:
                    side.pop(Decimal(price), None)
        self.seq += 1
        self.update_id += 7
        data = {
            "bids": _levels((Decimal(p), Decimal(q)) for p, q in bids.items()),
            "asks": _levels((Decimal(p), Decimal(q)) for p, q in asks.items()),
            "checksum": self.checksum(),
            "updateId": self.update_id,
            "timestamp": 1723161255208 + self.seq,
        }
        symbol = self.channel.split(":")[1]
        return {"type": "book", "channel": self.channel, "symbol": symbol, "seq": self.seq, "data": data}


def _levels(levels: Any) -> list[list[float]]:
    # JSON numbers as the gateway writes them (97523.4, never 9.75234E+4); float() keeps the digits here
    return [[float(p), float(q)] for p, q in levels]


def _text(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


class FakeBook:
    """The protocol side: sockets, subscriptions, and the books by channel."""

    def __init__(self) -> None:
        self.books: dict[str, BookState] = {}
        self.sockets: dict[web.WebSocketResponse, set[str]] = {}
        self.received: list[dict[str, Any]] = []
        """Every client message, in order (tests check the resubscribes)."""
        self.refusing = False
        """While True, WebSocket handshakes are answered 503 (a gateway restarting)."""
        self._drop = 0
        self._corrupt = 0
        self._ids = itertools.count(1)

    def book(
        self, channel: str, *, bids: dict[str, str], asks: dict[str, str], precision: tuple[int, int] = (2, 5)
    ) -> BookState:
        """Set the book ``channel`` starts from (before anyone subscribes)."""
        state = BookState(channel, precision)
        state.change(bids, asks)
        self.books[channel] = state
        return state

    def subscribes(self, channel: str) -> int:
        return sum(channel in m.get("channels", ()) for m in self.received if m.get("type") == "subscribe")

    def drop_next(self, n: int = 1) -> None:
        self._drop += n

    def corrupt_next(self, n: int = 1) -> None:
        self._corrupt += n

    async def change(
        self, channel: str, bids: dict[str, str] | None = None, asks: dict[str, str] | None = None
    ) -> int:
        """One diff on ``channel`` to its subscribers (unless a fault is armed); returns its seq."""
        msg = self.books[channel].change(bids or {}, asks or {})
        if self._drop:
            self._drop -= 1
            return int(msg["seq"])
        if self._corrupt:
            self._corrupt -= 1
            msg["data"]["checksum"] ^= 0x5A5A
        await self._send_all(channel, msg)
        return int(msg["seq"])

    async def status(self, channel: str, status: str, reason: str | None = None) -> None:
        await self._send_all(
            channel,
            {"type": "status", "channel": channel, "status": status}
            | ({"reason": reason} if reason else {})
            | {"timestamp": _NOW},
        )

    async def reset(self, channel: str, bids: dict[str, str], asks: dict[str, str]) -> None:
        """A resync: stale "book resync", then a reset snapshot at the next seq, then live."""
        await self.status(channel, "stale", "book resync")
        state = self.books[channel]
        state.bids, state.asks = {}, {}
        state.change(bids, asks)
        await self._send_all(channel, state.snapshot(reset=True))
        await self.status(channel, "live")

    async def _send_all(self, channel: str, msg: dict[str, Any]) -> None:
        text = _text(msg)
        for ws, held in list(self.sockets.items()):
            if channel in held and not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.send_str(text)

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        if self.refusing:
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets[ws] = set()
        await ws.send_str(
            _text(
                {
                    "type": "connected",
                    "clientId": f"ws_fake_{next(self._ids)}",
                    "authenticated": False,
                    "timestamp": _NOW,
                }
            )
        )
        try:
            async for frame in ws:
                if frame.type.name == "TEXT":
                    await self._answer(ws, json.loads(frame.data))
        finally:
            self.sockets.pop(ws, None)
        return ws

    async def _answer(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        self.received.append(msg)
        ref = {"id": msg["id"]} if "id" in msg else {}
        if msg["type"] == "subscribe":
            for name in msg["channels"]:
                await self._subscribe(ws, name, ref)
        elif msg["type"] == "unsubscribe":
            for name in msg["channels"]:
                self.sockets[ws].discard(name)
                await ws.send_str(_text({"type": "unsubscribed", "channel": name, "timestamp": _NOW} | ref))
        elif msg["type"] == "ping":
            await ws.send_str(_text({"type": "pong", "timestamp": 1} | ref))

    async def _subscribe(self, ws: web.WebSocketResponse, name: str, ref: dict[str, Any]) -> None:
        channel = parse_channel(name).name
        state = self.books.get(channel)
        if state is None:
            error = {"type": "error", "code": "UNKNOWN_SYMBOL", "message": f"not served here: {name}"}
            await ws.send_str(_text(error | {"channel": name, "timestamp": _NOW} | ref))
            return
        self.sockets[ws].add(channel)
        ack = {"type": "subscribed", "channel": channel, "epoch": "fakeEpch", "seq": state.seq}
        await ws.send_str(_text(ack | {"recoverable": True, "timestamp": _NOW} | ref))
        await ws.send_str(_text(state.snapshot()))

    # -- what the dashboard polls ---------------------------------------------

    async def handle_index(self, request: web.Request) -> web.Response:
        return web.Response(body=(WEB / "index.html").read_bytes(), content_type="text/html")

    async def handle_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "upstream": {"source": "fake-book"}, "uptimeSeconds": 1})

    async def handle_symbols(self, request: web.Request) -> web.Response:
        symbols = sorted({c.split(":")[1] for c in self.books})
        data = [
            {
                "symbol": s,
                "base": s[:-4],
                "quote": "USDT",
                "status": "TRADING",
                "precision": {"price": 2, "qty": 5},
            }
            for s in symbols
        ]
        return web.json_response({"success": True, "data": data})

    async def handle_klines(self, request: web.Request) -> web.Response:
        return web.json_response({"success": True, "data": []})

    async def handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"success": True, "data": {"connectedClients": len(self.sockets)}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.handle_index)
        app.router.add_get("/ws", self.handle_ws)
        app.router.add_get("/health", self.handle_health)
        app.router.add_get("/api/v1/symbols", self.handle_symbols)
        app.router.add_get("/api/v1/klines", self.handle_klines)
        app.router.add_get("/api/v1/ws/stats", self.handle_stats)
        app.router.add_static("/static", str(WEB))
        return app


_NOW = "2024-12-06T12:00:00.000Z"


@dataclass(frozen=True)
class Served:
    fake: FakeBook
    url: str
    ws_url: str


@contextlib.asynccontextmanager
async def fake_book_server(fake: FakeBook | None = None) -> AsyncIterator[Served]:
    """``fake`` listening on 127.0.0.1, port 0."""
    fake = fake or FakeBook()
    runner = web.AppRunner(fake.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site_port(site)
    try:
        yield Served(fake, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws")
    finally:
        for ws in list(fake.sockets):
            await ws.close()
        await runner.cleanup()
