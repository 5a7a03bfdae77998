"""The book engine through the real Binance connector against the fake Binance, with faults.

Checked at the event level (the ingest's projection is tested elsewhere): a
recording sink gets every BookUpdate and status the source emits, and keeps
a book built only from those updates, compared with the fake's true book at
the same update id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from tickwire.channels import parse_channel
from tickwire.config import Settings
from tickwire.events import BookUpdate, Event
from tickwire.sources.binance import BinanceSource
from tickwire.sources.binance.book import AWAITING, RESYNC
from tickwire.sources.replay import ReplaySource, read_capture
from tickwire.tools.record import record

from .fake_binance import FakeBinance, fast_source
from .helpers import eventually


class Sink:
    """Everything the source emits, in order, and a book per symbol built from the updates."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal], int]] = {}

    def on_event(self, event: Event) -> None:
        assert isinstance(event, BookUpdate)
        self.log.append(("event", event))
        bids, asks, _ = self.books.get(event.symbol, ({}, {}, 0))
        if event.snapshot:
            bids, asks = {}, {}
        for side, levels in ((bids, event.bids), (asks, event.asks)):
            for p, q in levels:
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        self.books[event.symbol] = (bids, asks, event.update_id)

    def on_status(
        self, channel: str, live: bool, reason: str | None, gap: tuple[int, int] | None = None
    ) -> None:
        self.log.append(("status", channel, live, reason))

    def of(self, symbol: str, since: int = 0) -> list[tuple[Any, ...]]:
        return [
            e
            for e in self.log[since:]
            if (e[0] == "event" and e[1].symbol == symbol) or (e[0] == "status" and f":{symbol}:" in e[1])
        ]

    def events(self, symbol: str, since: int = 0) -> list[BookUpdate]:
        return [e[1] for e in self.of(symbol, since) if e[0] == "event"]

    def shape(self, symbol: str, since: int = 0) -> list[Any]:
        """Statuses and snapshots (diffs as "diff"), for checking sequences."""
        out: list[Any] = []
        for e in self.of(symbol, since):
            if e[0] == "status":
                out.append((e[2], e[3]))
            elif e[1].snapshot:
                out.append("reset" if e[1].reset else "snapshot")
            else:
                out.append("diff")
        return out


def top(side: dict[Decimal, Decimal], n: int, *, bids: bool) -> list[tuple[Decimal, Decimal]]:
    return sorted(side.items(), reverse=bids)[:n]


def matches_venue(sink: Sink, fake: FakeBinance, symbol: str, n: int = 200) -> bool:
    """The sink's book equals the fake's true book at the sink's update id (top ``n`` levels)."""
    if symbol not in sink.books:
        return False
    bids, asks, update_id = sink.books[symbol]
    truth = fake.book(symbol).states.get(update_id)
    assert truth is not None, f"{symbol} at {update_id}: no such state of the venue"
    assert top(bids, n, bids=True) == top(truth[0], n, bids=True)
    assert top(asks, n, bids=False) == top(truth[1], n, bids=False)
    return True


@contextlib.asynccontextmanager
async def book_source(**changes: Any) -> AsyncIterator[tuple[BinanceSource, Sink, FakeBinance]]:
    async with FakeBinance() as fake:
        source = fast_source(fake, book_backoff_initial=0.2, **changes)
        sink = Sink()
        source.attach(sink)
        task = asyncio.get_running_loop().create_task(source.run())
        try:
            yield source, sink, fake
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def diffs_after_live(sink: Sink, symbol: str, n: int) -> bool:
    shape = sink.shape(symbol)
    return (True, None) in shape and shape[shape.index((True, None)) :].count("diff") >= n


def depth_requests(fake: FakeBinance) -> list[tuple[float, str, dict[str, str], int]]:
    return [r for r in fake.rest_log if r[1] == "/api/v3/depth"]


async def test_a_book_channel_syncs_and_follows_the_venue() -> None:
    async with book_source() as (source, sink, fake):
        source.open(parse_channel("book:BTCUSDT:10"))
        await eventually(lambda: diffs_after_live(sink, "BTCUSDT", 20), what="20 diffs after live")
        shape = sink.shape("BTCUSDT")
        assert shape[:3] == [(False, AWAITING), "snapshot", (True, None)]
        assert set(shape[3:]) == {"diff"}
        first = sink.events("BTCUSDT")[0]
        assert first.precision == (2, 2) and len(first.bids) == 1000  # limit=1000 for depth <= 100
        assert matches_venue(sink, fake, "BTCUSDT")
        assert "btcusdt@depth@100ms" in fake.subscriptions()
        (request,) = depth_requests(fake)
        assert request[2] == {"symbol": "BTCUSDT", "limit": "1000"}
        health = source.health()
        assert health.snapshot_weight == 50 and health.rest_weight_used == fake.weight_used > 0
        source.open(parse_channel("book:BTCUSDT:20"))  # another depth: the same upstream book
        source.close(parse_channel("book:BTCUSDT:10"))
        assert len(depth_requests(fake)) == 1 and source.streams() == ["btcusdt@depth@100ms"]


async def through_a_fault(sink: Sink, fake: FakeBinance, symbol: str, **fault: int) -> int:
    """Set ``fault`` on the venue's ``symbol`` book (``drop=1``: one diff lost, ``cross=1``: a
    crossed diff) and wait until the source said live again; returns where the log stood before."""
    mark = len(sink.log)
    book = fake.book(symbol)
    for name, value in fault.items():
        setattr(book, name, value)
    await eventually(lambda: (True, None) in sink.shape(symbol, mark), what=f"{symbol} live again")
    return mark


async def test_a_dropped_diff_gives_exactly_stale_reset_snapshot_live() -> None:
    async with book_source() as (source, sink, fake):
        source.open(parse_channel("book:BTCUSDT:10"))
        await eventually(lambda: diffs_after_live(sink, "BTCUSDT", 5), what="live")
        mark = await through_a_fault(sink, fake, "BTCUSDT", drop=1)
        await eventually(lambda: sink.shape("BTCUSDT", mark)[-1] == "diff", what="a diff after")
        shape = [s for s in sink.shape("BTCUSDT", mark)]
        stale = shape.index((False, RESYNC))
        assert set(shape[:stale]) <= {"diff"}  # diffs before the gap was seen
        assert shape[stale : stale + 3] == [(False, RESYNC), "reset", (True, None)]  # nothing in between
        assert set(shape[stale + 3 :]) == {"diff"}
        assert matches_venue(sink, fake, "BTCUSDT")
        assert source.health().book_resyncs == {"gap": 1}


async def test_a_crossed_book_resyncs() -> None:
    async with book_source() as (source, sink, fake):
        source.open(parse_channel("book:BTCUSDT:10"))
        await eventually(lambda: diffs_after_live(sink, "BTCUSDT", 3), what="live")
        mark = await through_a_fault(sink, fake, "BTCUSDT", cross=1)
        shape = sink.shape("BTCUSDT", mark)
        stale = shape.index((False, RESYNC))
        assert shape[stale : stale + 3] == [(False, RESYNC), "reset", (True, None)]
        assert source.health().book_resyncs == {"crossed": 1}
        await eventually(lambda: diffs_after_live(sink, "BTCUSDT", 3), what="diffs again")
        assert matches_venue(sink, fake, "BTCUSDT")


async def test_a_snapshot_older_than_the_buffered_diffs_is_fetched_again() -> None:
    async with book_source() as (source, sink, fake):
        fake.book("BTCUSDT").old_snapshots = 1
        source.open(parse_channel("book:BTCUSDT:10"))
        await eventually(lambda: diffs_after_live(sink, "BTCUSDT", 3), what="live")
        assert len(depth_requests(fake)) == 2
        assert sink.shape("BTCUSDT")[:3] == [(False, AWAITING), "snapshot", (True, None)]  # no resync shown
        assert source.books.syncs["BTCUSDT"].refetches == 1
        assert matches_venue(sink, fake, "BTCUSDT")


async def test_a_429_on_the_snapshot_waits_retry_after_with_no_request_in_between() -> None:
    async with book_source() as (source, sink, fake):
        fake.depth_fail = [(429, 0.6)]
        source.open(parse_channel("book:BTCUSDT:10"))
        await eventually(lambda: diffs_after_live(sink, "BTCUSDT", 1), what="live")
        refused = next(r for r in fake.rest_log if r[3] == 429)
        later = [r for r in fake.rest_log if r[0] > refused[0]]
        assert later and later[0][1] == "/api/v3/depth" and later[0][3] == 200
        assert later[0][0] - refused[0] >= 0.6 - 0.02  # the 429's Retry-After, for every caller
        assert source.rest_limited == 1


async def test_one_symbol_gapping_leaves_the_other_book_untouched() -> None:
    async with book_source() as (source, sink, fake):
        source.open(parse_channel("book:BTCUSDT:10"))
        source.open(parse_channel("book:ETHUSDT:20"))
        await eventually(
            lambda: diffs_after_live(sink, "BTCUSDT", 3) and diffs_after_live(sink, "ETHUSDT", 3), what="live"
        )
        mark = await through_a_fault(sink, fake, "ETHUSDT", drop=1)
        assert "reset" in sink.shape("ETHUSDT", mark)
        assert set(sink.shape("BTCUSDT", mark)) == {"diff"}  # no status, no snapshot: only its normal diffs
        ids = [e.update_id for e in sink.events("BTCUSDT", mark)]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert matches_venue(sink, fake, "BTCUSDT") and matches_venue(sink, fake, "ETHUSDT")
        assert source.health().book_resyncs == {"gap": 1}


async def test_a_refresh_while_diffs_flow_shows_no_reset() -> None:
    async with book_source() as (source, sink, fake):
        source.open(parse_channel("book:BTCUSDT:100"))
        await eventually(lambda: diffs_after_live(sink, "BTCUSDT", 3), what="live")
        assert len(sink.books["BTCUSDT"][0]) < 1100  # the venue has 1200: limit=1000 for depth 100
        mark = len(sink.log)
        source.open(parse_channel("book:BTCUSDT:500"))  # deeper: limit=5000, a refresh
        await eventually(lambda: source.books.syncs["BTCUSDT"].refreshes == 1, what="the refresh")
        await eventually(lambda: sink.shape("BTCUSDT", mark).count("diff") > 5, what="diffs after it")
        assert set(sink.shape("BTCUSDT", mark)) == {"diff"}  # no reset, no status: clients see no seam
        assert [r[2]["limit"] for r in depth_requests(fake)] == ["1000", "5000"]
        assert matches_venue(sink, fake, "BTCUSDT", n=1200)  # the levels below the old snapshot arrived
        assert source.health().snapshot_weight == 50 + 250


async def test_record_captures_the_snapshots_and_replay_plays_them_through_the_engine(tmp_path: Path) -> None:
    async with FakeBinance() as fake:
        out = tmp_path / "book.jsonl.gz"
        settings = replace(Settings(), source="binance")
        await record(settings, ["book:BTCUSDT:20"], out, duration=1.5, source=fast_source(fake))
    records = read_capture(out)
    snapshots = [r for r in records if r.rest is not None]
    assert [r.rest for r in snapshots] == ["btcusdt@depth@100ms"]
    assert json.loads(snapshots[0].body or "")["lastUpdateId"] in fake.book("BTCUSDT").states
    replay = ReplaySource(records, speed=20.0, start_delay=0.0)
    sink = Sink()
    replay.attach(sink)
    replay.open(parse_channel("book:BTCUSDT:20"))
    task = asyncio.get_running_loop().create_task(replay.run())
    try:
        await eventually(lambda: replay.finished, what="the end of the replay")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    shape = sink.shape("BTCUSDT")
    assert shape[:3] == [(False, AWAITING), "snapshot", (True, None)] and set(shape[3:]) == {"diff"}
    assert matches_venue(sink, fake, "BTCUSDT")
    diffs = [json.loads(r.ws)["data"] for r in records if r.ws is not None]
    assert sink.books["BTCUSDT"][2] == diffs[-1]["u"]  # followed to the recording's end
