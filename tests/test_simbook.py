"""The simulated market's book (tickwire.sources.simbook) and the simulated source's
``book:`` channels: a full, never crossed book around the price, a snapshot on the
first depth, diffs that rebuild it exactly."""

from __future__ import annotations

import random
from decimal import Decimal

from tickwire.channels import parse_channel
from tickwire.events import BookUpdate, Event
from tickwire.orderbook import Book
from tickwire.sources.market import SYMBOLS, Market
from tickwire.sources.simbook import SimBook
from tickwire.sources.simulated import SimulatedSource


NOW_MS = 1_700_000_000_000
SPECS = {spec.symbol: spec for spec in SYMBOLS}


def test_the_snapshot_is_a_full_sorted_book_around_the_price() -> None:
    book = SimBook(SPECS["BTCUSDT"], 97_500.0, random.Random(1), update_id=7)
    snap = book.snapshot(NOW_MS)
    assert snap.snapshot and snap.precision == (2, 5) and snap.update_id == 7 and snap.event_time == NOW_MS
    assert len(snap.bids) == 1000 and len(snap.asks) == 1000
    assert snap.bids[0][0] == Decimal("97499.99") and snap.asks[0][0] == Decimal("97500.01")  # the touch
    assert [p for p, _ in snap.bids] == sorted((p for p, _ in snap.bids), reverse=True)
    assert [p for p, _ in snap.asks] == sorted(p for p, _ in snap.asks)
    assert all(q > 0 and q.as_tuple().exponent == -5 for _, q in (*snap.bids, *snap.asks))
    assert all(p.as_tuple().exponent == -2 for p, _ in (*snap.bids, *snap.asks))
    # a plausible span: about 1% of the price on each side, not 1,000 ticks
    assert Decimal(96_000) < snap.bids[-1][0] < Decimal(97_000)


def test_diffs_rebuild_the_book_and_it_never_crosses() -> None:
    rng = random.Random(3)
    spec = SPECS["ETHUSDT"]
    sim = SimBook(spec, 3650.0, random.Random(2), update_id=1)
    book = Book((spec.tick, spec.lot))
    snap = sim.snapshot(NOW_MS)
    book.replace(snap.bids, snap.asks)
    price, last_id, diffs = 3650.0, snap.update_id, 0
    for i in range(300):
        price *= 1 + rng.gauss(0, 0.0004)
        update = sim.step(price, NOW_MS + i)
        if update is None:
            continue
        diffs += 1
        assert not update.snapshot and update.update_id > last_id
        last_id = update.update_id
        book.bids.apply(update.bids)
        book.asks.apply(update.asks)
        assert not book.crossed()
        assert len(book.bids) == 1000 and len(book.asks) == 1000
        last = Decimal(f"{price:.2f}")
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None and ask is not None and bid[0] < last < ask[0]
    assert diffs > 250  # a few levels are re-sized every step
    now = sim.snapshot(NOW_MS)
    assert book.bids.top(1000) == list(now.bids) and book.asks.top(1000) == list(now.asks)


def test_a_small_price_keeps_its_levels_positive() -> None:
    spec = SPECS["DOGEUSDT"]
    sim = SimBook(spec, 0.00050, random.Random(1), update_id=1)  # 50 ticks: most of the grid is under 0
    snap = sim.snapshot(NOW_MS)
    assert all(p > 0 for p, _ in snap.bids) and len(snap.bids) < 1000
    for i in range(50):
        update = sim.step(0.00050 + (i % 3) * 0.00001, NOW_MS + i)
        assert update is None or all(p > 0 for p, _ in update.bids)


def test_the_same_seed_gives_the_same_book() -> None:
    def run(seed: int) -> list[BookUpdate]:
        sim = SimBook(SPECS["SOLUSDT"], 235.0, random.Random(seed), update_id=1)
        out = [sim.snapshot(NOW_MS)]
        out += [u for i in range(20) if (u := sim.step(235.0 + i * 0.05, NOW_MS + i)) is not None]
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


# -- the simulated source --------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_status(self, channel: str, live: bool, reason: str | None) -> None:
        raise AssertionError("the simulated book is never stale")

    def books(self) -> list[BookUpdate]:
        return [e for e in self.events if isinstance(e, BookUpdate)]


def test_the_source_sends_a_snapshot_on_the_first_depth_then_diffs() -> None:
    now = [NOW_MS]
    source = SimulatedSource(seed=1, clock_ms=lambda: now[0])
    sink = Sink()
    source.attach(sink)
    source.open(parse_channel("book:BTCUSDT:20"))
    [snap] = sink.books()
    assert snap.snapshot and snap.symbol == "BTCUSDT" and snap.precision == (2, 5)
    last = Decimal(f"{source.market.last_price('BTCUSDT'):.2f}")
    assert snap.bids[0][0] < last < snap.asks[0][0]
    source.open(parse_channel("book:BTCUSDT:1000"))  # a second depth: the ingest has the book already
    assert len(sink.books()) == 1
    for _ in range(10):
        now[0] += 100
        source.step()
    diffs = sink.books()[1:]
    assert len(diffs) >= 8 and not any(d.snapshot for d in diffs)
    assert all(d.event_time > NOW_MS for d in diffs)
    assert source.streams() == ["book:BTCUSDT:1000", "book:BTCUSDT:20"]


def test_the_book_goes_with_its_last_depth_and_comes_back_whole() -> None:
    source = SimulatedSource(seed=1, clock_ms=lambda: NOW_MS)
    sink = Sink()
    source.attach(sink)
    source.open(parse_channel("book:ETHUSDT:10"))
    source.open(parse_channel("book:ETHUSDT:50"))
    source.open(parse_channel("price:ETHUSDT"))
    source.close(parse_channel("book:ETHUSDT:10"))
    assert "ETHUSDT" in source.books
    source.close(parse_channel("book:ETHUSDT:50"))
    assert source.books == {}
    source.open(parse_channel("book:ETHUSDT:10"))
    snapshots = [b for b in sink.books() if b.snapshot]
    assert len(snapshots) == 2 and len(snapshots[1].bids) == 1000


def test_a_market_without_book_channels_keeps_no_book() -> None:
    source = SimulatedSource(seed=1, clock_ms=lambda: NOW_MS)
    sink = Sink()
    source.attach(sink)
    source.open(parse_channel("depth:BTCUSDT"))
    source.step()
    assert source.books == {} and sink.books() == []
    assert Market(random.Random(1), NOW_MS).last_price("XRPUSDT") > 0
