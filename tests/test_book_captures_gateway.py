"""The three real Binance captures (tests/data/binance/captures/SOURCES.md) end to end: played by
the replay source (``--replay-file``) through a real gateway to clients on real sockets, one per
depth (10, 20, 100, 1000) of every captured symbol. After every message, the book each channel's
client holds, built only from the messages it received (tests/bookcheck.py), verifies its checksum
and equals an independent rebuild from the raw capture files at the message's update id (top
DEPTH); at the end it equals the rebuild at the end of the chain (no change of its window was left
unpublished)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from bisect import bisect_left, insort
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tickwire.config import Settings
from tickwire.sources.replay import ReplaySource

from .bookcheck import ClientBook
from .helpers import Client, Running, eventually, running_gateway


CAPTURES = Path(__file__).parent / "data" / "binance" / "captures"
NAMES = ["hftbacktest_spot_btcusdt_20240808", "cryptofeed_binance_20211012", "cryptofeed_binance_20210417"]
DEPTHS = (10, 20, 100, 1000)
# the longest capture (90 s) plays in 6 s; faster, a busy machine turns most diffs into snapshots
SPEED = 15.0


class Side:
    """One side of the rebuild: quantity by price, prices kept sorted (ascending). Floats, as the
    client holds them: a raw "61809.65000000" and the gateway's 61809.65 are the same double."""

    def __init__(self, levels: list[list[str]]) -> None:
        self.qty = {float(p): float(q) for p, q in levels if float(q)}
        self.prices = sorted(self.qty)

    def set(self, price: float, qty: float) -> None:
        if qty:
            if price not in self.qty:
                insort(self.prices, price)
            self.qty[price] = qty
        elif self.qty.pop(price, None) is not None:
            del self.prices[bisect_left(self.prices, price)]

    def top(self, n: int, *, highest: bool) -> list[tuple[float, float]]:
        prices = self.prices[: -n - 1 : -1] if highest else self.prices[:n]
        qty = self.qty
        return [(p, qty[p]) for p in prices]


class Rebuild:
    """A symbol's book from the raw files alone: its first REST snapshot, then every
    ``depthUpdate`` past it (the capture's chains are gapless), stepped to an update id."""

    def __init__(self, name: str, symbol: str) -> None:
        bodies = (CAPTURES / f"{name}.rest_depth.jsonl").read_text().splitlines()
        urls = [
            row.split("\t")[2]
            for row in (CAPTURES / f"{name}.rest_depth.meta.tsv").read_text().splitlines()[1:]
        ]
        snap = json.loads(next(b for b, url in zip(bodies, urls, strict=True) if f"symbol={symbol}&" in url))
        self.last: int = snap["lastUpdateId"]
        self.bids, self.asks = Side(snap["bids"]), Side(snap["asks"])
        self.diffs = [d for d in diffs_of(name) if d["s"] == symbol and d["u"] > self.last]
        self.end = self.diffs[-1]["u"]
        self._next = 0

    def at(self, update_id: int) -> None:
        """Apply the raw diffs up to ``update_id``, which must be the end of one of them."""
        while self.last < update_id:
            diff = self.diffs[self._next]
            self._next += 1
            assert diff["U"] <= self.last + 1, "the capture's chain is gapless"
            for side, levels in ((self.bids, diff["b"]), (self.asks, diff["a"])):
                for p, q in levels:
                    side.set(float(p), float(q))
            self.last = diff["u"]
        assert self.last == update_id, f"update id {update_id} is not the end of a raw diff"

    def top(self, depth: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        return self.bids.top(depth, highest=True), self.asks.top(depth, highest=False)


_DIFFS: dict[str, list[dict[str, Any]]] = {}


def diffs_of(name: str) -> list[dict[str, Any]]:
    """The capture's raw ``depthUpdate`` payloads, in order (parsed once per capture)."""
    if name not in _DIFFS:
        frames = (json.loads(line) for line in (CAPTURES / f"{name}.ws.jsonl").read_text().splitlines())
        _DIFFS[name] = [f["data"] for f in frames if f["data"].get("e") == "depthUpdate"]
    return _DIFFS[name]


def symbols_of(name: str) -> list[str]:
    """Every symbol with a REST snapshot in the capture."""
    rows = (CAPTURES / f"{name}.rest_depth.meta.tsv").read_text().splitlines()[1:]
    return [row.split("symbol=")[1].split("&")[0] for row in rows]


class Follower:
    """One client on one depth of every symbol: applies, verifies and compares every message."""

    def __init__(self, client: Client, name: str, depth: int, symbols: list[str]) -> None:
        self.client = client
        self.depth = depth
        self.channels = [f"book:{s}:{depth}" for s in symbols]
        self.books = {c: ClientBook() for c in self.channels}
        self.rebuilds = {c: Rebuild(name, s) for c, s in zip(self.channels, symbols, strict=True)}
        self.stale: set[str | None] = set()
        self.resets = 0
        self.task: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # set by followers()

    def raise_failure(self) -> None:
        if self.task.done() and not self.task.cancelled() and self.task.exception() is not None:
            raise AssertionError(f"the depth {self.depth} client failed") from self.task.exception()

    async def run(self) -> None:
        while True:
            msg = await self.client.recv(timeout=60)
            if msg["type"] == "status" and msg["status"] == "stale":
                self.stale.add(msg.get("reason"))
            if msg["type"] != "book":
                continue
            channel = msg["channel"]
            book, rebuild = self.books[channel], self.rebuilds[channel]
            book.verify(msg)  # dense seq after a snapshot; the checksum of this client's own top 10
            self.resets += bool(msg.get("reset"))
            rebuild.at(msg["data"]["updateId"])
            self.check(channel, f"at update id {rebuild.last}")

    def check(self, channel: str, where: str) -> None:
        book, rebuild = self.books[channel], self.rebuilds[channel]
        # the client never trims: asking it for more than DEPTH shows a level it should not hold
        mine = book.top_bids(self.depth + 1), book.top_asks(self.depth + 1)
        assert mine == rebuild.top(self.depth), f"{channel} {where}"


@contextlib.asynccontextmanager
async def followers(running: Running, name: str, symbols: list[str]) -> AsyncIterator[list[Follower]]:
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client.connect(running.ws_url)) for _ in DEPTHS]
        out = [Follower(c, name, d, symbols) for c, d in zip(clients, DEPTHS, strict=True)]
        # all subscribed at once: the replay starts half a second after the first channel opens
        acks = await asyncio.gather(*(f.client.subscribe(*f.channels) for f in out))
        assert all(a["type"] == "subscribed" for answers in acks for a in answers)
        for follower in out:
            follower.task = asyncio.ensure_future(follower.run())
        try:
            yield out
        finally:
            for follower in out:
                follower.task.cancel()
            for follower in out:
                with contextlib.suppress(asyncio.CancelledError):
                    await follower.task


@pytest.mark.parametrize("name", NAMES)
async def test_each_capture_through_a_gateway_gives_every_depth_the_rebuilt_book(name: str) -> None:
    symbols = symbols_of(name)
    settings = Settings(source="replay", replay_file=str(CAPTURES / f"{name}.ws.jsonl"), replay_speed=SPEED)
    async with running_gateway(settings, max_subscriptions=50) as running:
        source = running.gateway.source
        assert isinstance(source, ReplaySource)
        hub = running.gateway.hub
        async with followers(running, name, symbols) as clients:

            def caught_up() -> bool:
                for follower in clients:
                    follower.raise_failure()  # a mismatch stops its reader: show it, do not time out
                    for channel, book in follower.books.items():
                        view = hub.book_view(channel)
                        if view is None or not view.ready or book.seq != view.seq:
                            return False
                return True

            def played() -> bool:
                for follower in clients:
                    follower.raise_failure()
                return source.finished

            await eventually(played, timeout=60.0, what="the end of the replay")
            await eventually(caught_up, timeout=30.0, what="every client at its channel's last seq")
        assert source.books.resyncs() == {} and source.bad_frames == 0
        for follower in clients:
            assert follower.stale <= {"awaiting snapshot"} and follower.resets == 0
            for channel, rebuild in follower.rebuilds.items():
                rebuild.at(rebuild.end)  # every raw diff applied: the window the chain ends with
                follower.check(channel, "at the end of the capture")
                assert follower.books[channel].messages >= 1
        # diffs were checked, not only snapshots (how many depends on the machine's load: a client
        # that falls behind gets the state class's snapshots instead, which are checked too)
        assert sum(b.messages - b.snapshots for f in clients for b in f.books.values()) > 0
        if name.startswith("hftbacktest"):
            deepest = clients[-1].books["book:BTCUSDT:1000"]
            assert len(deepest.bids) == 1000  # a full window, equal to the rebuild's (checked above)


def test_the_replay_books_take_the_most_decimals_the_capture_has() -> None:
    """The hftbacktest snapshot has 5 quantity decimals, a later diff 6 (an ask of 25.426189 at
    200000): the book's precision must be 6, or the wire would say 25.42619."""
    from tickwire.sources.replay import read_capture

    records = read_capture(CAPTURES / "hftbacktest_spot_btcusdt_20240808.ws.jsonl")
    source = ReplaySource(records)
    assert source._precision("BTCUSDT") == (2, 6)
    assert any('["200000.00000000","25.42618900"]' in (r.ws or "") for r in records)
