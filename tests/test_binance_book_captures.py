"""Three real Binance captures (tests/data/binance/captures/SOURCES.md) through the replay source and
the book engine: after every update the engine emits, the book built from its updates equals an
independent rebuild from the raw capture files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tickwire.channels import parse_channel
from tickwire.events import BookUpdate, Event
from tickwire.sources.replay import ReplaySource, read_capture

from .helpers import eventually


CAPTURES = Path(__file__).parent / "data" / "binance" / "captures"
NAMES = ["hftbacktest_spot_btcusdt_20240808", "cryptofeed_binance_20211012", "cryptofeed_binance_20210417"]
Book = dict[Decimal, Decimal]


def rebuild(name: str, symbol: str) -> Iterator[tuple[int, Book, Book]]:
    """The book of ``symbol`` after each raw diff, from its first REST snapshot on (written plainly,
    from the files, without the engine or the replay reader)."""
    bodies = (CAPTURES / f"{name}.rest_depth.jsonl").read_text().splitlines()
    meta = (CAPTURES / f"{name}.rest_depth.meta.tsv").read_text().splitlines()[1:]
    urls = [row.split("\t")[2] for row in meta]
    body = next(b for b, url in zip(bodies, urls, strict=True) if f"symbol={symbol}&" in url)
    snap = json.loads(body, parse_float=Decimal)
    bids = {Decimal(p): Decimal(q) for p, q in snap["bids"] if Decimal(q)}
    asks = {Decimal(p): Decimal(q) for p, q in snap["asks"] if Decimal(q)}
    last = snap["lastUpdateId"]
    yield last, bids, asks
    for line in (CAPTURES / f"{name}.ws.jsonl").read_text().splitlines():
        frame = json.loads(line)
        data = frame["data"]
        if not frame["stream"].endswith("@depth@100ms") or data["s"] != symbol or data["u"] <= last:
            continue
        assert data["U"] <= last + 1, "the capture's chain is gapless"
        for side, levels in ((bids, data["b"]), (asks, data["a"])):
            for p, q in levels:
                if Decimal(q):
                    side[Decimal(p)] = Decimal(q)
                else:
                    side.pop(Decimal(p), None)
        last = data["u"]
        yield last, bids, asks


class Checker:
    """The sink: a book per symbol from the engine's updates, checked against the rebuild at each one."""

    def __init__(self, name: str, symbols: list[str]) -> None:
        self.rebuilds = {s: rebuild(name, s) for s in symbols}
        self.books: dict[str, tuple[Book, Book]] = {}
        self.checked: dict[str, int] = dict.fromkeys(symbols, 0)
        self.last: dict[str, int] = {}
        self.statuses: list[tuple[str, bool, str | None]] = []

    def on_event(self, event: Event) -> None:
        if not isinstance(event, BookUpdate):
            return  # the captures' klines
        bids, asks = self.books.get(event.symbol, ({}, {}))
        if event.snapshot:
            assert not event.reset and event.symbol not in self.books  # gapless: one sync, no resync
            bids, asks = {}, {}
        for side, levels in ((bids, event.bids), (asks, event.asks)):
            for p, q in levels:
                if q:
                    side[p] = q
                else:
                    side.pop(p, None)
        self.books[event.symbol] = (bids, asks)
        for update_id, want_bids, want_asks in self.rebuilds[event.symbol]:
            if update_id == event.update_id:
                assert bids == want_bids and asks == want_asks, f"{event.symbol} at {update_id}"
                break
            assert update_id < event.update_id, "the engine skipped past the rebuild"
        else:
            raise AssertionError(f"{event.symbol}: update id {event.update_id} is not in the capture")
        self.checked[event.symbol] += 1
        self.last[event.symbol] = event.update_id

    def on_status(
        self, channel: str, live: bool, reason: str | None, gap: tuple[int, int] | None = None
    ) -> None:
        self.statuses.append((channel, live, reason))


def depth_symbols(name: str) -> dict[str, int]:
    """Symbol -> last ``u`` of its diff chain, for every symbol with a REST snapshot."""
    urls = (CAPTURES / f"{name}.rest_depth.meta.tsv").read_text().splitlines()[1:]
    symbols = [row.split("symbol=")[1].split("&")[0] for row in urls]
    last: dict[str, int] = {}
    for line in (CAPTURES / f"{name}.ws.jsonl").read_text().splitlines():
        data: dict[str, Any] = json.loads(line)["data"]
        if data.get("e") == "depthUpdate":
            last[data["s"]] = data["u"]
    return {s: last[s] for s in symbols}


@pytest.mark.parametrize("name", NAMES)
async def test_each_capture_through_the_engine_equals_a_rebuild_after_every_update(name: str) -> None:
    symbols = depth_symbols(name)
    records = read_capture(CAPTURES / f"{name}.ws.jsonl")
    checker = Checker(name, list(symbols))
    source = ReplaySource(records, speed=300.0, start_delay=0.0)
    source.attach(checker)
    for symbol in symbols:
        source.open(parse_channel(f"book:{symbol}:100"))
    source.open(parse_channel(f"book:{next(iter(symbols))}:10"))  # a second depth shares the book
    task = asyncio.get_running_loop().create_task(source.run())
    try:
        await eventually(lambda: source.finished, timeout=30.0, what="the end of the replay")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert checker.last == symbols  # every book followed its chain to the end
    assert all(n >= 1 for n in checker.checked.values())
    assert sum(checker.checked.values()) > len(symbols) * 2
    assert {reason for _, live, reason in checker.statuses if not live} == {"awaiting snapshot"}
    assert source.books.resyncs() == {} and source.bad_frames == 0
    assert source.skipped_frames > 0  # bookTicker and aggTrade frames: not ours
    if name.startswith("hftbacktest"):
        assert checker.checked["BTCUSDT"] > 800  # nearly every one of its 896 diffs, one by one


def test_the_capture_reader_interleaves_snapshots_where_they_were_received() -> None:
    records = read_capture(CAPTURES / "hftbacktest_spot_btcusdt_20240808.ws.jsonl")
    assert len(records) == 9592 + 1
    rest = [i for i, r in enumerate(records) if r.rest is not None]
    assert rest == [7] and records[7].rest == "btcusdt@depth@100ms"
    assert json.loads(records[7].body or "")["lastUpdateId"] == 50093239218
    assert records[0].ws is not None and records[0].ws.startswith('{"stream":"btcusdt@depth@100ms"')
    assert records[1].t - records[0].t >= 0  # ms from the ns sidecar
    older = read_capture(CAPTURES / "cryptofeed_binance_20210417.ws.jsonl")
    assert [i for i, r in enumerate(older) if r.rest is not None][:2] == [1, 5]  # after 1, then 4 frames
