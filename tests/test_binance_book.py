"""The Binance book engine (sources/binance/book.py) with synthetic events: bridging, resyncs, refresh."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tickwire.channels import parse_channel
from tickwire.events import BookUpdate
from tickwire.sources.binance.book import AWAITING, RESYNC, BookSync, Fetch, snapshot_limit
from tickwire.sources.binance.bookparse import (
    DiffEvent,
    RestBook,
    depth_weight,
    digits_of,
    parse_diff,
    parse_rest_book,
)
from tickwire.sources.binance.books import BookFeed
from tickwire.sources.binance.ladder import Ladder


D = Decimal
Levels = tuple[tuple[Decimal, Decimal], ...]


def lv(*pairs: tuple[str, str]) -> Levels:
    return tuple((D(p), D(q)) for p, q in pairs)


def diff(first: int, last: int, bids: Levels = (), asks: Levels = (), t: int = 0) -> DiffEvent:
    return DiffEvent("BTCUSDT", first, last, bids, asks, t or last)


def snap(last: int, bids: Levels, asks: Levels) -> RestBook:
    return RestBook(last, bids, asks)


BIDS = lv(("100.00", "1"), ("99.99", "2"), ("99.98", "3"))
ASKS = lv(("100.01", "1"), ("100.02", "2"), ("100.03", "3"))


class Owner:
    """Records everything the engine tells its owner, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def book_event(self, update: BookUpdate) -> None:
        self.log.append(("event", update))

    def book_status(self, symbol: str, live: bool, reason: str | None) -> None:
        self.log.append(("status", live, reason))

    def book_fetch(self, symbol: str, why: Fetch, limit: int, delay: float) -> None:
        self.log.append(("fetch", why, limit, delay))

    def take(self) -> list[tuple[Any, ...]]:
        out, self.log = self.log, []
        return out

    def events(self) -> list[BookUpdate]:
        return [entry[1] for entry in self.log if entry[0] == "event"]


class Model:
    """A client-side book built only from the engine's BookUpdates."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, u: BookUpdate) -> None:
        if u.snapshot:
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, u.bids), (self.asks, u.asks)):
            for p, q in levels:
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q


def state(sync: BookSync) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    assert sync.book is not None
    return dict(sync.book.bids.qty), dict(sync.book.asks.qty)


def synced(owner: Owner, depth: int = 10) -> BookSync:
    """A book synced on BIDS/ASKS at update id 100, its log cleared."""
    sync = BookSync("BTCUSDT", owner, precision=(2, 8))
    sync.want_depth(depth)
    sync.on_diff(diff(95, 101, bids=lv(("99.97", "4"))))
    sync.on_snapshot(snap(100, BIDS, ASKS), 5)
    owner.take()
    return sync


def test_first_sync_buffers_fetches_once_bridges_the_straddle_and_goes_live() -> None:
    owner = Owner()
    sync = BookSync("BTCUSDT", owner, precision=(2, 8))
    sync.want_depth(20)
    assert sync.reason == AWAITING and owner.take() == []  # nothing is fetched before a diff is buffered
    sync.on_diff(diff(90, 95, bids=lv(("99.00", "1"))))
    sync.on_diff(diff(96, 103, bids=lv(("99.99", "5")), asks=lv(("100.01", "0"))))
    sync.on_diff(diff(104, 104, asks=lv(("100.04", "7"))))
    assert owner.take() == [("fetch", Fetch.FIRST, 1000, 0.0)]  # once, at the first buffered diff
    sync.on_snapshot(snap(100, BIDS, ASKS), 12345)  # u=95 dropped, 96..103 straddles 101
    log = owner.take()
    assert [e[0] for e in log] == ["event", "status"] and log[1] == ("status", True, None)
    first = log[0][1]
    assert first.snapshot and not first.reset and first.precision == (2, 8) and first.update_id == 104
    assert first.bids == lv(("100.00", "1"), ("99.99", "5"), ("99.98", "3"))  # best first
    assert first.asks == lv(("100.02", "2"), ("100.03", "3"), ("100.04", "7"))
    assert first.event_time == 104  # the last event folded in
    sync.on_diff(diff(105, 106, bids=lv(("99.98", "3"), ("99.97", "1")), asks=lv(("100.05", "0"))))
    (update,) = owner.events()
    # only what changed: 99.98 kept its qty, 100.05 was never there
    assert update.bids == lv(("99.97", "1")) and update.asks == () and update.update_id == 106
    assert not update.snapshot


def test_duplicates_and_no_op_events_publish_nothing() -> None:
    owner = Owner()
    sync = synced(owner)
    sync.on_diff(diff(99, 101))  # u <= last
    sync.on_diff(diff(102, 102, bids=lv(("100.00", "1"))))  # same qty
    assert owner.take() == [] and sync.book is not None and sync.book.update_id == 102


def test_a_gap_resyncs_this_book_with_stale_then_reset_snapshot_then_live() -> None:
    owner = Owner()
    sync = synced(owner)
    sync.on_diff(diff(103, 104, bids=lv(("99.96", "1"))))  # 102 missing: a gap
    assert owner.take() == [("status", False, RESYNC), ("fetch", Fetch.RESYNC, 1000, 1.0)]
    sync.on_diff(diff(105, 106, asks=lv(("100.01", "9"))))
    assert owner.take() == []  # buffered, nothing published while the book is wrong
    sync.on_snapshot(snap(104, BIDS, ASKS), 7)  # bridged by the kept gap event's successor
    log = owner.take()
    assert [e[0] for e in log] == ["event", "status"] and log[1] == ("status", True, None)
    reset = log[0][1]
    assert reset.snapshot and reset.reset and reset.update_id == 106
    assert dict(reset.asks)[D("100.01")] == D("9")
    assert sync.resyncs == {"gap": 1}


def test_the_gap_event_is_kept_as_the_sync_point() -> None:
    owner = Owner()
    sync = synced(owner)
    sync.on_diff(diff(103, 104, bids=lv(("99.96", "1"))))
    owner.take()
    sync.on_snapshot(snap(103, BIDS, ASKS), 7)  # the gap event straddles 104
    (reset,) = owner.events()
    assert reset.update_id == 104 and dict(reset.bids)[D("99.96")] == D("1")


def test_a_crossed_book_resyncs() -> None:
    owner = Owner()
    sync = synced(owner)
    sync.on_diff(diff(101, 102, bids=lv(("100.01", "1"))))  # bid at the best ask
    assert owner.take() == [("status", False, RESYNC)]  # no diff of the crossed book goes out
    assert sync.book is None and sync.resyncs == {"crossed": 1}
    sync.on_diff(diff(103, 103))
    assert owner.take() == [("fetch", Fetch.RESYNC, 1000, 1.0)]


def test_a_snapshot_older_than_the_buffer_is_fetched_again_with_a_growing_delay() -> None:
    owner = Owner()
    sync = BookSync("BTCUSDT", owner, precision=(2, 8))
    sync.want_depth(10)
    sync.on_diff(diff(200, 201))
    owner.take()
    delays = []
    for _ in range(8):
        sync.on_snapshot(snap(150, BIDS, ASKS), 1)  # 151 < 200: older than the stream
        (fetch,) = owner.take()
        delays.append(fetch[3])
        assert fetch[:3] == ("fetch", Fetch.FIRST, 1000)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert sync.refetches == 8
    sync.on_snapshot(snap(199, BIDS, ASKS), 1)  # 200 == 199 + 1: bridges
    assert [e[0] for e in owner.take()] == ["event", "status"]
    sync.on_diff(diff(205, 206))  # a gap: the backoff starts over after a good sync
    assert owner.take()[-1] == ("fetch", Fetch.RESYNC, 1000, 1.0)


def test_a_gap_inside_the_buffer_fails_the_bridge() -> None:
    owner = Owner()
    sync = BookSync("BTCUSDT", owner, precision=(2, 8))
    sync.want_depth(10)
    sync.on_diff(diff(100, 101))
    sync.on_diff(diff(104, 105))  # 102-103 missing
    owner.take()
    sync.on_snapshot(snap(101, BIDS, ASKS), 1)
    assert owner.take() == [("status", False, RESYNC), ("fetch", Fetch.RESYNC, 1000, 1.0)]
    assert sync.resyncs == {"bridge": 1}


def test_a_failed_fetch_is_retried_after_the_backoff() -> None:
    owner = Owner()
    sync = BookSync("BTCUSDT", owner)
    sync.on_diff(diff(1, 2))
    owner.take()
    sync.fetch_failed()
    assert owner.take() == [("fetch", Fetch.FIRST, 1000, 1.0)]


def test_precision_falls_back_to_the_snapshot_digits() -> None:
    owner = Owner()
    sync = BookSync("BTCUSDT", owner)
    sync.on_diff(diff(1, 2))
    sync.on_snapshot(snap(1, lv(("61837.63000000", "3.78826000")), lv(("61837.64000000", "1.5"))), 1)
    assert owner.events()[0].precision == (2, 5)
    assert digits_of(lv(("1.00000000", "0.00000000"))) == (0, 0)


def deep_book(n: int, top: int = 10_000) -> tuple[Levels, Levels]:
    """``n`` bids from ``top`` down and ``n`` asks from ``top`` + 1 up, one unit apart."""
    bids = tuple((D(top - i), D(1)) for i in range(n))
    asks = tuple((D(top + 1 + i), D(1)) for i in range(n))
    return bids, asks


def test_the_coverage_guard_refreshes_without_a_reset_and_publishes_the_difference() -> None:
    owner = Owner()
    sync = BookSync("BTCUSDT", owner, precision=(0, 0))
    sync.want_depth(100)
    model = Model()
    bids, asks = deep_book(1000)
    sync.on_diff(diff(11, 11))
    sync.on_snapshot(snap(10, bids, asks), 1)  # 1000 levels: a full snapshot, the floor is 9001
    for entry in owner.log:
        if entry[0] == "event":
            model.apply(entry[1])
    owner.take()
    eaten = tuple((D(10_000 - i), D(0)) for i in range(801))  # 199 covered bids remain: < 2 x 100
    sync.on_diff(diff(12, 12, bids=eaten))
    log = owner.take()
    assert log[-1] == ("fetch", Fetch.REFRESH, 1000, 0.0)
    model.apply(log[0][1])
    # the venue's real book: levels below the old snapshot exist, and more diffs flow meanwhile
    truth_bids = {D(10_000 - i): D(1) for i in range(801, 2500)}
    truth_bids[D(9199)] = D(5)
    sync.on_diff(diff(13, 13, bids=lv(("9199", "5"))))
    refreshed_bids = tuple(sorted(truth_bids.items(), reverse=True))[:1000]
    sync.on_snapshot(snap(13, refreshed_bids, asks), 2)
    events = owner.events()
    assert all(not e.snapshot and not e.reset for e in events)  # clients see no reset
    assert sync.refreshes == 1 and sync.resyncs == {}
    for event in events:
        model.apply(event)
    assert model.bids == state(sync)[0] == dict(refreshed_bids)
    assert sync.book is not None and sync.book.floor == refreshed_bids[-1][0]
    assert sync.reason is None and not any(e[0] == "status" for e in owner.log)


def test_a_deeper_depth_refreshes_with_5000_levels() -> None:
    owner = Owner()
    bids, asks = deep_book(1000)
    sync = BookSync("BTCUSDT", owner, precision=(0, 0))
    sync.want_depth(100)
    sync.on_diff(diff(11, 11))
    sync.on_snapshot(snap(10, bids, asks), 1)
    owner.take()
    sync.want_depth(500)
    assert owner.take() == [("fetch", Fetch.REFRESH, 5000, 0.0)]
    assert snapshot_limit(20) == 1000 and snapshot_limit(100) == 1000 and snapshot_limit(500) == 5000


def test_a_complete_snapshot_needs_no_refresh() -> None:
    owner = Owner()
    sync = synced(owner, depth=1000)  # 3 levels a side: the whole book
    sync.on_diff(diff(102, 102, bids=lv(("100.00", "0"), ("99.99", "0"))))
    assert [e[0] for e in owner.take()] == ["event"]


def refreshing(owner: Owner) -> BookSync:
    bids, asks = deep_book(1000)
    sync = BookSync("BTCUSDT", owner, precision=(0, 0))
    sync.want_depth(100)
    sync.on_diff(diff(11, 11))
    sync.on_snapshot(snap(10, bids, asks), 1)
    sync.want_depth(500)
    owner.take()
    return sync


def test_a_refresh_snapshot_older_than_its_diffs_is_fetched_again_and_the_book_goes_on() -> None:
    owner = Owner()
    sync = refreshing(owner)
    sync.on_diff(diff(12, 12, bids=lv(("9000", "2"))))
    sync.on_snapshot(snap(5, *deep_book(1500)), 2)  # older than diff 12, the first kept
    log = owner.take()
    assert log[-1] == ("fetch", Fetch.REFRESH, 5000, 1.0)
    assert not any(e[0] == "status" for e in log) and sync.book is not None and sync.refetches == 1


def test_a_refresh_snapshot_ahead_of_the_stream_waits_for_it() -> None:
    owner = Owner()
    sync = refreshing(owner)
    bids, asks = deep_book(1500)
    sync.on_snapshot(snap(13, bids, asks), 2)  # the stream is at 11
    assert owner.take() == [] and sync.refresh is not None
    sync.on_diff(diff(12, 12))  # reaches 12 only
    assert sync.refresh is not None
    sync.on_diff(diff(13, 13))
    (update,) = owner.events()
    assert not update.snapshot and update.update_id == 13 and len(update.bids) == 500  # 1001..1500 new
    assert sync.refresh is None and len(state(sync)[0]) == 1500


def test_a_lost_stream_drops_the_book_and_resyncs_when_data_flows() -> None:
    owner = Owner()
    sync = synced(owner)
    sync.lost("upstream disconnected")
    assert sync.book is None and sync.reason == "upstream disconnected" and owner.take() == []
    sync.on_diff(diff(300, 301))
    assert owner.take() == [("fetch", Fetch.RESYNC, 1000, 1.0)]
    sync.on_snapshot(snap(300, BIDS, ASKS), 1)
    (reset,) = owner.events()
    assert reset.reset and sync.resyncs == {"disconnect": 1}


def test_parsers_read_the_documented_payloads() -> None:
    ev = parse_diff(
        b'{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,'
        b'"b":[["0.0024","10"]],"a":[["0.0026","100"]]}'
    )
    assert ev == DiffEvent("BNBBTC", 157, 160, lv(("0.0024", "10")), lv(("0.0026", "100")), 1672515782136)
    rest = parse_rest_book(b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[]}')
    assert rest == RestBook(1027024, lv(("4.00000000", "431.00000000")), ())
    assert str(rest.bids[0][0]) == "4.00000000"  # the venue's digits


def test_ladder_sides_stay_sorted_and_count_coverage() -> None:
    ladder = Ladder.from_snapshot(1, lv(("3", "1"), ("2", "1"), ("1", "1")), lv(("4", "1"), ("5", "1")), 3)
    assert ladder.floor == D(1) and ladder.ceiling is None and ladder.covered() == 3
    assert ladder.apply(lv(("2.5", "1"), ("1", "0"), ("0.5", "2")), lv(("4", "1"))) == (
        lv(("2.5", "1"), ("1", "0"), ("0.5", "2")),
        (),
    )
    assert ladder.bids.levels() == lv(("3", "1"), ("2.5", "1"), ("2", "1"), ("0.5", "2"))
    assert ladder.bids.levels(2) == lv(("3", "1"), ("2.5", "1"))
    assert ladder.covered() == 3  # 0.5 is below the floor: not vouched for
    assert not ladder.crossed()
    ladder.apply(lv(("4", "1")), ())
    assert ladder.crossed()


@pytest.mark.parametrize(("limit", "weight"), [(100, 5), (500, 25), (1000, 50), (5000, 250)])
def test_depth_weights(limit: int, weight: int) -> None:
    assert depth_weight(limit) == weight


def body(update_id: int, bids: Levels, asks: Levels) -> bytes:
    return json.dumps(
        {"lastUpdateId": update_id, "bids": [[str(p), str(q)] for p, q in bids],
         "asks": [[str(p), str(q)] for p, q in asks]}
    ).encode()  # fmt: skip


def test_a_depth_deeper_than_the_snapshot_covers_is_stale_until_the_refresh() -> None:
    log: list[Any] = []
    feed = BookFeed(emit=log.append, status=lambda *status: log.append(status))
    feed.open(parse_channel("book:BTCUSDT:100"))
    sync = feed.syncs["BTCUSDT"]
    sync.on_diff(diff(11, 11))
    assert feed.pending == {"BTCUSDT": (Fetch.FIRST, 1000)}
    assert feed.snapshot("BTCUSDT", body(10, *deep_book(1000)), 1)
    sync.on_diff(diff(12, 12, bids=lv(("10000", "0"))))  # 999 covered bids left
    log.clear()
    feed.open(parse_channel("book:BTCUSDT:1000"))
    assert log == [("book:BTCUSDT:1000", False, AWAITING)]  # its window reaches past the snapshot
    assert feed.pending == {"BTCUSDT": (Fetch.REFRESH, 5000)}
    feed.open(parse_channel("book:BTCUSDT:20"))  # a shallower one is fine at once
    assert log == [("book:BTCUSDT:1000", False, AWAITING)]
    log.clear()
    assert feed.snapshot("BTCUSDT", body(12, *deep_book(1500)), 2)
    assert [type(e).__name__ for e in log] == ["BookUpdate", "tuple"]
    assert not log[0].snapshot and log[1] == ("book:BTCUSDT:1000", True, None)
    assert feed.close(parse_channel("book:BTCUSDT:1000")) is False
    assert feed.close(parse_channel("book:BTCUSDT:20")) is False
    assert feed.close(parse_channel("book:BTCUSDT:100")) is True and feed.syncs == {}


def test_the_diff_stream_is_its_own_kind_for_the_watchdog() -> None:
    from tickwire.sources.binance.parse import stream_kind
    from tickwire.sources.binance.watchdog import StallThresholds, StreamWatch

    assert stream_kind("btcusdt@depth@100ms") == "book" and stream_kind("btcusdt@depth10@100ms") == "depth"
    watch = StreamWatch("btcusdt@depth@100ms", StallThresholds(trades_max=300.0), 0.0)
    assert watch.fixed is None and watch.limit() == 300.0  # no fixed cadence: a quiet book is not stalled
