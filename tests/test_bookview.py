"""BookView, pure: decode, apply, encode a book channel's view (src/tickwire/bookview.py)."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
from hypothesis import given, settings, strategies as st

from tickwire.bookview import BookView, Outcome
from tickwire.frames import text_frame
from tickwire.messages import Book

from .books import RefBook, book_payload, checksum_v1
from .helpers import frame_payloads


CH = "book:BTCUSDT:100"

# the two messages of docs/protocol.md, "Order book channel", byte for byte
SNAPSHOT = (
    b'{"type":"book","channel":"book:BTCUSDT:100","symbol":"BTCUSDT","depth":100,"seq":812,'
    b'"snapshot":true,"data":{"bids":[[97523.4,1.5],[97523.3,0.2]],'
    b'"asks":[[97523.5,0.7],[97523.6,1.25]],"precision":{"price":2,"qty":5},'
    b'"checksum":3041163063,"updateId":50093239218,"timestamp":1723161255208}}'
)
DIFF = (
    b'{"type":"book","channel":"book:BTCUSDT:100","symbol":"BTCUSDT","seq":813,'
    b'"data":{"bids":[[97523.4,0]],"asks":[[97523.5,0.25]],"checksum":1596548459,'
    b'"updateId":50093239231,"timestamp":1723161255308}}'
)

D = Decimal


def payload_of(frame: bytes | None) -> bytes:
    assert frame is not None
    [payload] = frame_payloads(frame)
    return payload


def test_the_protocol_example_round_trips_with_its_checksums() -> None:
    view = BookView(CH)
    assert view.apply(812, SNAPSHOT) is Outcome.SNAPSHOT
    assert view.ready and view.seq == 812 and view.checksum == 3041163063
    assert view.precision is not None and (view.precision.price, view.precision.qty) == (2, 5)
    # the snapshot at 812 is the message received (same fields, same order, same digits)
    assert payload_of(view.snapshot_frame()) == SNAPSHOT
    assert view.apply(813, DIFF) is Outcome.DIFF
    bids, asks = view.levels()
    assert bids == [(D("97523.3"), D("0.2"))]
    assert asks == [(D("97523.5"), D("0.25")), (D("97523.6"), D("1.25"))]
    assert (view.seq, view.checksum, view.update_id, view.timestamp) == (
        813,
        1596548459,
        50093239231,
        1723161255308,
    )
    # the checksum carried by message N is the snapshot's at N, and it is right for the levels
    assert checksum_v1(bids, asks, (2, 5)) == view.checksum
    snap = msgspec.json.decode(payload_of(view.snapshot_frame()), type=Book)
    assert snap.snapshot and snap.depth == 100 and snap.seq == 813 and not snap.reset
    assert snap.data.checksum == 1596548459 and snap.data.precision == view.precision
    assert list(snap.data.bids) == bids and list(snap.data.asks) == asks


def test_levels_go_out_exactly_as_received_never_in_exponent_notation() -> None:
    raw = (
        b'{"type":"book","channel":"book:SHIBUSDT:10","symbol":"SHIBUSDT","depth":10,"seq":1,'
        b'"snapshot":true,"data":{"bids":[[0.00001234,1500000.00],[0.00001230,0.00000001]],'
        b'"asks":[[0.00001240,100]],"precision":{"price":8,"qty":2},"checksum":7,'
        b'"updateId":1,"timestamp":2}}'
    )
    view = BookView("book:SHIBUSDT:10")
    view.apply(1, raw)
    out = payload_of(view.snapshot_frame())
    assert out == raw  # 1500000.00 keeps its zeros, 0.00000001 is not 1E-8


def test_the_snapshot_is_encoded_once_per_seq_and_shared() -> None:
    view = BookView(CH)
    assert view.snapshot_frame() is None  # nothing whole yet
    view.apply(812, SNAPSHOT)
    first = view.snapshot_frame()
    assert first is not None and view.snapshot_frame() is first  # the same bytes object: cached
    assert view.snapshot_size == len(first)
    view.apply(813, DIFF)
    second = view.snapshot_frame()
    assert second is not first and second == text_frame(payload_of(second))
    assert b'"seq":813' in second and view.snapshot_frame() is second


def test_a_diff_alone_never_makes_a_view() -> None:
    view = BookView(CH)
    assert view.apply(813, DIFF) is Outcome.HELD
    assert not view.ready and view.snapshot_frame() is None


def test_a_snapshot_older_than_held_diffs_catches_up_through_them() -> None:
    """The Redis case: diffs arrive first, then a snapshot read from a key at an older seq."""
    ch = "book:ETHUSDT:10"
    book = RefBook()
    book.apply_levels([("100", "1")], [("101", "1")], snapshot=True)
    snap = book_payload(ch, 10, [("100", "1")], [("101", "1")], snapshot=True, book=book)
    diffs = {}
    for seq in (11, 12, 13):
        book.apply_levels([(str(90 + seq), "2")], [])
        diffs[seq] = book_payload(ch, seq, [(str(90 + seq), "2")], [], book=book)
    view = BookView(ch)
    for seq in (12, 11, 13):  # in any order
        assert view.apply(seq, diffs[seq]) is Outcome.HELD
    assert view.apply(10, snap) is Outcome.SNAPSHOT
    assert view.ready and view.seq == 13
    assert view.levels() == book.top(10)
    assert view.checksum == checksum_v1(*book.top(10), (2, 5))


def test_a_snapshot_that_cannot_bridge_the_held_diffs_leaves_the_view_waiting() -> None:
    ch = "book:ETHUSDT:10"
    snap = book_payload(ch, 10, [("100", "1")], [("101", "1")], snapshot=True)
    view = BookView(ch)
    view.apply(12, book_payload(ch, 12, [("99", "1")], []))  # 11 was never seen
    assert view.apply(10, snap) is Outcome.HELD
    assert not view.ready and view.snapshot_frame() is None
    assert view.apply(13, book_payload(ch, 13, [("98", "1")], [])) is Outcome.HELD
    newer = book_payload(ch, 14, [("100", "3")], [("101", "1")], snapshot=True)
    assert view.apply(14, newer) is Outcome.SNAPSHOT and view.ready and view.seq == 14


def test_a_gap_breaks_the_view_until_the_next_snapshot() -> None:
    view = BookView(CH)
    view.apply(812, SNAPSHOT)
    gap = DIFF.replace(b'"seq":813', b'"seq":815')
    assert view.apply(815, gap) is Outcome.DIFF  # it goes out: the clients see the gap too
    assert not view.ready and view.snapshot_frame() is None
    assert view.apply(816, DIFF.replace(b'"seq":813', b'"seq":816')) is Outcome.HELD
    assert view.apply(817, SNAPSHOT.replace(b'"seq":812', b'"seq":817')) is Outcome.SNAPSHOT
    assert view.ready and view.seq == 817


def test_duplicates_and_old_snapshots_change_nothing() -> None:
    view = BookView(CH)
    view.apply(812, SNAPSHOT)
    view.apply(813, DIFF)
    frame = view.snapshot_frame()
    assert view.apply(813, DIFF) is Outcome.HELD
    assert view.apply(812, SNAPSHOT) is Outcome.HELD
    assert view.ready and view.seq == 813 and view.snapshot_frame() is frame


def test_an_unreadable_payload_breaks_a_ready_view() -> None:
    view = BookView(CH)
    view.apply(812, SNAPSHOT)
    assert view.apply(813, b'{"type":"book","nonsense":1}') is Outcome.DIFF
    assert not view.ready


def test_the_snapshot_holds_depth_levels_per_side_best_first() -> None:
    ch = "book:BTCUSDT:10"
    bids = [(str(1000 - i), str(i + 1)) for i in range(25)]
    asks = [(str(1001 + i), "1.5") for i in range(25)]
    view = BookView(ch)
    view.apply(1, book_payload(ch, 1, bids, asks, snapshot=True))
    msg = json.loads(payload_of(view.snapshot_frame()))
    assert msg["depth"] == 10 and msg["snapshot"] is True
    assert [p for p, _ in msg["data"]["bids"]] == list(range(1000, 990, -1))
    assert [p for p, _ in msg["data"]["asks"]] == list(range(1001, 1011))


prices = st.integers(min_value=1, max_value=40).map(lambda n: f"{n}.{n % 10}")
qtys = st.sampled_from(["0", "0.5", "1", "2.25", "0.00001"])
side = st.lists(st.tuples(prices, qtys), max_size=6)


@settings(max_examples=150, deadline=None)
@given(first=side, diffs=st.lists(st.tuples(side, side), max_size=30))
def test_any_diff_sequence_gives_the_reference_book(
    first: list[tuple[str, str]], diffs: list[tuple[list[tuple[str, str]], list[tuple[str, str]]]]
) -> None:
    ch = "book:BTCUSDT:50"
    ref = RefBook()
    levels = [(p, q) for p, q in first if q != "0"]
    ref.apply_levels(levels, [], snapshot=True)
    view = BookView(ch)
    view.apply(1, book_payload(ch, 1, levels, [], snapshot=True))
    for seq, (bids, asks) in enumerate(diffs, start=2):
        ref.apply_levels(bids, asks)
        assert view.apply(seq, book_payload(ch, seq, bids, asks)) is Outcome.DIFF
        assert view.levels() == ref.top(50)
    again = BookView(ch)  # the snapshot the view serves rebuilds the same book
    again.apply(view.seq, payload_of(view.snapshot_frame()))
    assert again.levels() == view.levels() and again.seq == view.seq
