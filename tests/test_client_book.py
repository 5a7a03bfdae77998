"""The client's local order book (tickwire.client.book), and Feed.book against a fake gateway."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from tickwire import client, orderbook
from tickwire.client.book import DIFF, IGNORED, RESYNC, SNAPSHOT, Book, checksum, checksum_text
from tickwire.messages import Book as BookMessage, BookPrecision, Status

from .fake_book import BookState, FakeBook, doc_vectors, fake_book_server
from .helpers import eventually


CHANNEL = "book:BTCUSDT:20"
PREC = BookPrecision(price=2, qty=5)


def msg(raw: dict[str, Any]) -> BookMessage:
    """A frame as the client decodes it (Decimal levels with the digits sent)."""
    return msgspec.json.decode(msgspec.json.encode(raw), type=BookMessage)


def D(x: str | int) -> Decimal:
    return Decimal(x)


def snapshot(seq: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]], **over: Any) -> BookMessage:
    state = BookState(CHANNEL)
    state.bids = {D(p): D(q) for p, q in bids}
    state.asks = {D(p): D(q) for p, q in asks}
    state.seq = seq
    raw = state.snapshot()
    raw["data"] |= over
    return msg(raw)


def diff(
    book: BookState, bids: dict[str, str] | None = None, asks: dict[str, str] | None = None
) -> BookMessage:
    return msg(book.change(bids or {}, asks or {}))


def start() -> tuple[Book, BookState]:
    state = BookState(CHANNEL)
    state.change({"100.5": "1", "100.4": "2", "100.1": "0.5"}, {"100.6": "1.25", "101": "3"})
    book = Book(CHANNEL)
    assert book.apply(msg(state.snapshot())) is SNAPSHOT
    return book, state


# -- the test vectors of docs/protocol.md ----------------------------------------------


def test_the_protocol_doc_vectors() -> None:
    v = doc_vectors()
    channel = v["snapshot"]["channel"]
    book = Book(channel)
    assert book.apply(msg(v["snapshot"])) is SNAPSHOT
    assert checksum_text(book.asks, book.bids, PREC) == v["strings"][0]
    assert book.checksum() == v["checksums"][0] == 3041163063
    assert book.apply(msg(v["diff"])) is DIFF
    assert checksum_text(book.asks, book.bids, PREC) == v["strings"][1]
    assert book.checksum() == v["checksums"][1] == 1596548459
    assert book.bids == [(D("97523.3"), D("0.2"))]
    assert book.asks == [(D("97523.5"), D("0.25")), (D("97523.6"), D("1.25"))]
    assert (book.seq, book.update_id, book.depth, book.synced) == (813, 50093239231, 100, True)


def test_checksum_formatting_edges() -> None:
    # leading zeros go, an all-zero field is "0", exponent-free at the given precision
    prec = BookPrecision(price=8, qty=0)
    assert (
        checksum_text([(D("0.00001234"), D("12"))], [(D("0.0000012"), D("1"))], prec)
        == "1234" + "12" + "120" + "1"
    )
    assert checksum_text([(D("1E-8"), D("3"))], [], prec) == "1" + "3"
    assert checksum_text([(D("5"), D("0"))], [], BookPrecision(price=0, qty=2)) == "5" + "0"
    # only 10 levels of each side count
    asks = [(D(100 + i), D(1)) for i in range(15)]
    assert checksum(asks, [], PREC) == checksum(asks[:10], [], PREC) != checksum(asks[:9], [], PREC)
    # an iterator works as well as a list, and the gateway's own function agrees
    assert checksum(iter(asks), iter(asks[:3]), PREC) == checksum(asks, asks[:3], PREC)
    assert checksum(asks, asks[:3], PREC) == orderbook.checksum(asks, asks[:3], (2, 5))


def test_a_snapshot_with_a_precision_out_of_range_unsyncs_instead_of_raising() -> None:
    book, _ = start()
    raw = msgspec.json.decode(msgspec.json.encode(snapshot(9, [("1", "1")], [("2", "1")])))
    raw["data"]["precision"] = {"price": 19, "qty": 2}
    assert book.apply(msg(raw)) is RESYNC
    assert not book.synced and book.problem == "precision out of range: 19, 2"


# -- applying ----------------------------------------------------------------------------


def test_diff_replaces_and_removes_levels_and_never_trims() -> None:
    book, state = start()
    assert book.apply(diff(state, {"100.4": "0", "100.45": "7"}, {"100.6": "0.5", "100.7": "2"})) is DIFF
    assert book.bids == [(D("100.5"), D(1)), (D("100.45"), D(7)), (D("100.1"), D("0.5"))]
    assert book.asks == [(D("100.6"), D("0.5")), (D("100.7"), D(2)), (D(101), D(3))]
    assert book.best_bid == (D("100.5"), D(1)) and book.best_ask == (D("100.6"), D("0.5"))
    assert book.spread == D("0.1")
    bids, asks = book.top(2)
    assert Book.cumulative(bids) == [(D("100.5"), D(1), D(1)), (D("100.45"), D(7), D(8))]
    assert [total for *_, total in Book.cumulative(asks)] == [D("0.5"), D("2.5")]
    # removing a level that is not there is fine (and the checksum says the book agrees)
    assert book.apply(diff(state, {"99": "0"})) is DIFF
    assert len(book.bids) == 3  # nothing trimmed, nothing guessed


def test_a_seq_gap_asks_once_then_ignores_diffs_until_the_snapshot() -> None:
    book, state = start()
    state.change({"100.2": "1"}, {})  # published, never received
    assert book.apply(diff(state, {"100.3": "1"})) is RESYNC
    assert not book.synced and book.resyncs == 1 and "seq gap" in (book.problem or "")
    before = book.bids
    assert book.apply(diff(state, {"100.5": "9"})) is IGNORED  # asked already: not again
    assert book.bids == before  # not applied
    assert book.apply(msg(state.snapshot())) is SNAPSHOT
    assert book.synced and book.bids == sorted(((p, q) for p, q in state.bids.items()), reverse=True)
    assert book.apply(diff(state, {}, {"100.9": "1"})) is DIFF


def test_a_checksum_mismatch_asks_for_the_snapshot() -> None:
    book, state = start()
    bad = msg(state.change({"100.3": "1"}, {}))
    bad = msgspec.structs.replace(bad, data=msgspec.structs.replace(bad.data, checksum=bad.data.checksum ^ 1))
    assert book.apply(bad) is RESYNC
    assert "checksum mismatch" in (book.problem or "")
    assert book.apply(diff(state, {"100.2": "1"})) is IGNORED
    # a snapshot whose checksum is wrong is no good either
    wrong = msg(state.snapshot())
    wrong = msgspec.structs.replace(wrong, data=msgspec.structs.replace(wrong.data, checksum=1))
    assert book.apply(wrong) is RESYNC and not book.synced
    assert book.apply(msg(state.snapshot())) is SNAPSHOT and book.synced


def test_a_diff_before_any_snapshot_asks_for_one() -> None:
    state = BookState(CHANNEL)
    state.change({"1": "1"}, {"2": "1"})
    book = Book(CHANNEL)
    assert book.apply(diff(state, {"1": "2"})) is RESYNC
    assert book.apply(diff(state, {"1": "3"})) is IGNORED
    with pytest.raises(AssertionError):
        book.checksum()  # no precision yet: nothing to read


def test_old_diffs_after_a_snapshot_are_already_in_it() -> None:
    book, state = start()
    old = diff(state, {"100.3": "1"})
    assert book.apply(msg(state.snapshot())) is SNAPSHOT  # the slow-client case: backlog became a snapshot
    assert book.apply(old) is IGNORED and book.synced
    assert book.apply(diff(state, {"100.2": "1"})) is DIFF


def test_reset_and_status() -> None:
    book, state = start()
    assert book.apply(Status(CHANNEL, "stale", "t", "book resync")) is IGNORED
    assert book.stale == "book resync" and book.synced  # the gateway sends no diff until the reset
    state.change({"50": "1"}, {"51": "1"})
    reset = state.snapshot(reset=True)
    assert book.apply(msg(reset)) is SNAPSHOT and book.stale is None
    assert book.bids[0][0] == D("100.5") and (D(50), D(1)) in book.bids
    book.apply(Status(CHANNEL, "stale", "t", "awaiting snapshot"))
    book.apply(Status(CHANNEL, "live", "t"))
    assert book.stale is None


def test_invalidate_waits_for_a_snapshot_without_asking() -> None:
    book, state = start()
    book.invalidate()
    assert book.apply(diff(state, {"100.3": "1"})) is IGNORED and book.resyncs == 0
    assert book.apply(msg(state.snapshot())) is SNAPSHOT


def test_a_message_of_another_channel_is_refused() -> None:
    book, state = start()
    other = msgspec.structs.replace(msg(state.snapshot()), channel="book:ETHUSDT:20")
    with pytest.raises(ValueError, match="ETHUSDT"):
        book.apply(other)


# -- a random walk against a dict book -----------------------------------------------------

prices = st.integers(min_value=1, max_value=60).map(lambda n: Decimal(n) / 4)  # 0.25 .. 15, 2 decimals
qtys = st.sampled_from(["0", "0", "0.5", "1", "2.125", "10", "0.00003"]).map(Decimal)
side = st.dictionaries(prices, qtys, max_size=8)
step = st.one_of(
    st.tuples(st.just("diff"), side, side),
    st.tuples(st.just("snapshot"), side, side),
    st.tuples(st.just("drop"), side, side),
    st.tuples(st.just("corrupt"), side, side),
)


def change(state: BookState, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> dict[str, Any]:
    # a crossed book is the source's problem, not the client's: keep asks above bids
    asks = {p + 20: q for p, q in asks.items()}
    return state.change({str(p): str(q) for p, q in bids.items()}, {str(p): str(q) for p, q in asks.items()})


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=40))
def test_random_sequences_match_a_dict_book(steps: list[tuple[str, Any, Any]]) -> None:
    state = BookState(CHANNEL, precision=(2, 5))
    change(state, {Decimal(1): Decimal(1)}, {Decimal(1): Decimal(1)})
    book = Book(CHANNEL)
    assert book.apply(msg(state.snapshot())) is SNAPSHOT
    lost = False  # the client knows it is out of step and waits for a snapshot
    gap = False  # a diff was published and never delivered
    resyncs = 0
    for kind, bids, asks in steps:
        if kind == "snapshot":
            assert book.apply(msg(state.snapshot())) is SNAPSHOT
            lost = gap = False
        elif kind == "drop":
            change(state, bids, asks)
            gap = True
        else:
            raw = change(state, bids, asks)
            if kind == "corrupt":
                raw["data"]["checksum"] ^= 0xFFFF
            expected = IGNORED if lost else RESYNC if gap or kind == "corrupt" else DIFF
            assert book.apply(msg(raw)) is expected
            resyncs += expected is RESYNC
            lost = lost or expected is RESYNC
            gap = False
        if not lost and not gap:
            assert book.synced and book.seq == state.seq
            assert book.bids == sorted(state.bids.items(), reverse=True)
            assert book.asks == sorted(state.asks.items())
            assert book.checksum() == state.checksum()
        assert book.synced is not lost
    assert book.resyncs == resyncs


# -- Feed.book against a fake gateway -------------------------------------------------------


@pytest.fixture
async def served() -> Any:
    fake = FakeBook()
    fake.book(CHANNEL, bids={"100.5": "1", "100.4": "2"}, asks={"100.6": "1.25", "101": "3"})
    async with fake_book_server(fake) as served:
        yield served


async def next_book(feed: client.Feed) -> client.BookMessage:
    async with asyncio.timeout(5):
        async for m in feed:
            if isinstance(m, client.BookMessage):
                return m
    raise AssertionError("the feed ended")


async def test_feed_keeps_the_book_in_step_and_resyncs(served: Any) -> None:
    fake: FakeBook = served.fake
    state = fake.books[CHANNEL]
    async with client.connect(served.ws_url) as feed:
        book = await feed.book("book:btcusdt:20")
        assert book is await feed.book(CHANNEL) and feed.channels == (CHANNEL,)
        for _ in range(2):  # a subscribe to a channel held re-sends the snapshot
            first = await next_book(feed)
            assert first.snapshot and book.synced and book.best_bid == (D("100.5"), D(1))

        await fake.change(CHANNEL, {"100.5": "0"}, {"100.55": "4"})
        m = await next_book(feed)
        assert not m.snapshot and book.best_bid == (D("100.4"), D(2)) and book.spread == D("0.15")
        assert book.checksum() == state.checksum()

        # a diff lost on the way: the feed subscribes again and the snapshot heals the book
        fake.drop_next()
        await fake.change(CHANNEL, {"100.3": "1"})
        await fake.change(CHANNEL, {"100.2": "1"})
        assert not (await next_book(feed)).snapshot and not book.synced
        healed = await next_book(feed)
        assert healed.snapshot and book.synced and book.resyncs == 1
        assert fake.subscribes(CHANNEL) == 3  # feed.book twice, and the resync
        assert book.bids == sorted(state.bids.items(), reverse=True)

        # a wrong checksum: the same
        fake.corrupt_next()
        await fake.change(CHANNEL, {}, {"102": "1"})
        await next_book(feed)
        assert (await next_book(feed)).snapshot and book.synced and book.resyncs == 2
        assert book.asks == sorted(state.asks.items())

        # a resync upstream: stale, a reset snapshot, live
        await fake.reset(CHANNEL, {"90": "1"}, {"91": "1"})
        reset = await next_book(feed)
        assert reset.reset and book.bids == [(D(90), D(1))] and book.resyncs == 2
        await eventually(lambda: book.stale is None and fake.subscribes(CHANNEL) == 4)


async def test_feed_book_after_a_reconnect_waits_for_the_snapshot(served: Any) -> None:
    fake: FakeBook = served.fake
    async with client.connect(served.ws_url, min_delay=0.05) as feed:
        book = await feed.book(CHANNEL)
        await next_book(feed)
        fake.refusing = True
        for ws in list(fake.sockets):
            await ws.close()
        await eventually(lambda: not book.synced, what="the book unsynced by the disconnect")
        fake.refusing = False
        healed = await next_book(feed)  # the resubscribe of the new connection
        assert healed.snapshot and book.synced and book.resyncs == 0
        await feed.unsubscribe(CHANNEL)
        with pytest.raises(ValueError, match="not a book channel"):
            await feed.book("price:BTCUSDT")


async def test_feed_book_refused(served: Any) -> None:
    async with client.connect(served.ws_url) as feed:
        with pytest.raises(client.SubscriptionError):
            await feed.book("book:ETHUSDT:20")
        assert feed.channels == ()
