"""tickwire.orderbook: sorted sides, book checksum v1 (the test vectors of docs/protocol.md),
wire numbers, and the window projection against a plain O(DEPTH) reference."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from tickwire.orderbook import (
    Book,
    BookSide,
    Level,
    checksum,
    checksum_text,
    diff_windows,
    levels_json,
    window_diff,
    wire_number,
)


D = Decimal


def levels(*pairs: tuple[str, str]) -> list[Level]:
    return [(D(p), D(q)) for p, q in pairs]


# -- the test vectors of the protocol ------------------------------------------------------

SNAPSHOT_ASKS = levels(("97523.5", "0.7"), ("97523.6", "1.25"))
SNAPSHOT_BIDS = levels(("97523.4", "1.5"), ("97523.3", "0.2"))


def test_checksum_vector_of_the_snapshot() -> None:
    text = checksum_text(SNAPSHOT_ASKS, SNAPSHOT_BIDS, (2, 5))
    assert text == "97523507000097523601250009752340150000975233020000"
    assert checksum(SNAPSHOT_ASKS, SNAPSHOT_BIDS, (2, 5)) == 3041163063


def test_checksum_vector_after_the_diff() -> None:
    book = Book((2, 5))
    book.replace(SNAPSHOT_BIDS, SNAPSHOT_ASKS)
    book.bids.apply(levels(("97523.4", "0")))
    book.asks.apply(levels(("97523.5", "0.25")))
    asks, bids = book.asks.top(10), book.bids.top(10)
    assert checksum_text(asks, bids, (2, 5)) == "9752350250009752360125000975233020000"
    assert book.checksum() == 1596548459


def test_checksum_takes_ten_levels_a_side_and_formats_zero_as_0() -> None:
    asks = [(D(100 + i), D(1)) for i in range(12)]
    bids = [(D(99 - i), D("0.5")) for i in range(12)]
    text = checksum_text(asks, bids, (0, 1))
    assert text == "".join(f"{100 + i}10" for i in range(10)) + "".join(f"{99 - i}5" for i in range(10))
    # a price below 1 loses its leading zeros; an all-zero quantity becomes "0"
    assert checksum_text(levels(("0.00012", "0")), [], (5, 2)) == "120"
    assert checksum([], [], (2, 5)) == 0  # CRC-32 of the empty string


def test_checksum_reads_numbers_at_the_precision_whatever_their_digits() -> None:
    # the venue's "97523.50000000" and the wire's 97523.5 are the same level
    long = levels(("97523.50000000", "0.70000000"), ("97523.60000000", "1.25000000"))
    assert checksum(long, SNAPSHOT_BIDS, (2, 5)) == 3041163063


# -- numbers on the wire -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        ("0.00001000", 8, "0.00001"),
        ("0.00000010", 8, "0.0000001"),  # Decimal would print 1E-7
        ("1E+2", 2, "100"),  # Decimal would print 1E+2
        ("1E+2", 0, "100"),
        ("97523.40000000", 2, "97523.4"),
        ("97523.40", 2, "97523.4"),
        ("97523.00", 2, "97523"),
        ("0.00000000", 8, "0"),
        ("0", 5, "0"),
        ("1.25", 5, "1.25"),
        ("123456789.12345678", 8, "123456789.12345678"),
    ],
)
def test_wire_numbers_have_no_trailing_zeros_and_no_exponent(value: str, places: int, text: str) -> None:
    assert wire_number(D(value), places) == text
    assert json.loads(text) == float(D(value))


def test_levels_json_is_a_json_array_of_pairs() -> None:
    data = levels_json(levels(("97523.40000000", "0.00100000"), ("1E+2", "2")), (2, 5))
    assert data == b"[[97523.4,0.001],[100,2]]"
    assert json.loads(data) == [[97523.4, 0.001], [100, 2]]
    assert levels_json([], (2, 5)) == b"[]"


# -- sides and books ---------------------------------------------------------------------------


def test_a_side_keeps_its_levels_sorted_best_first() -> None:
    bids, asks = BookSide(bids=True), BookSide(bids=False)
    for side in (bids, asks):
        side.apply(levels(("10", "1"), ("12", "2"), ("11", "3")))
    assert bids.top(5) == levels(("12", "2"), ("11", "3"), ("10", "1"))
    assert asks.top(2) == levels(("10", "1"), ("11", "3"))
    assert bids.best() == (D(12), D(2)) and asks.best() == (D(10), D(1))
    assert bids.key_at(0) == D(-12) and bids.key_at(3) is None
    assert len(bids) == 3 and bids.get(D(11)) == 3 and bids.get(D(13)) == 0


def test_apply_reports_only_effective_changes() -> None:
    side = BookSide(bids=False)
    side.apply(levels(("10", "1"), ("11", "2")))
    changes = side.apply(levels(("10", "1"), ("11", "0"), ("12", "0"), ("13", "5"), ("13", "6")))
    # 10 kept its quantity, 12 was never there, 13 counts once from absent to its last quantity
    assert changes == {D(11): (D(2), D(0)), D(13): (D(0), D(6))}
    assert side.top(5) == levels(("10", "1"), ("13", "6"))
    assert side.apply(levels(("14", "1"), ("14", "0"))) == {}  # added and removed again: nothing
    assert side.apply(levels(("10.0", "1.00"))) == {}  # the same numbers in other digits


def test_removing_a_missing_level_is_fine() -> None:
    side = BookSide(bids=True)
    assert side.set(D(5), D(0)) == 0
    assert len(side) == 0 and side.best() is None


def test_crossed_and_level_counts() -> None:
    book = Book((2, 3))
    assert not book.crossed() and book.levels == 0 and book.best_bid() is None
    book.replace(levels(("99", "1"), ("98", "1")), levels(("100", "1")))
    assert not book.crossed() and book.levels == 3
    book.bids.apply(levels(("100", "2")))  # best bid == best ask
    assert book.crossed()
    book.bids.apply(levels(("100", "0")))
    book.asks.apply(levels(("98.5", "1")))  # best ask under the best bid
    assert book.crossed() and book.best_ask() == (D("98.5"), D(1))
    book.replace([], levels(("1", "1")))  # one side empty: never crossed
    assert not book.crossed() and book.levels == 1


# -- the projection of one update onto one depth -----------------------------------------------


def project(side: BookSide, update: list[Level], depth: int) -> list[Level]:
    """Apply ``update`` to ``side`` and return depth's diff; check it against the reference."""
    window_before = side.top(depth)
    before = side.key_at(depth - 1)
    changes = side.apply(update)
    diff = window_diff(side, changes, before, side.key_at(depth - 1))
    assert sorted(diff) == sorted(diff_windows(window_before, side.top(depth)))
    return diff


def asks_of(*prices: int) -> BookSide:
    side = BookSide(bids=False)
    side.apply([(D(p), D(p % 7 + 1)) for p in prices])
    return side


def test_a_new_best_level_pushes_the_last_one_out() -> None:
    side = asks_of(10, 11, 12, 13)
    assert project(side, levels(("9", "4")), 3) == levels(("9", "4"), ("12", "0"))


def test_a_deleted_level_lets_the_next_one_enter_from_below_with_its_quantity() -> None:
    side = asks_of(10, 11, 12, 13, 14)
    assert project(side, levels(("11", "0")), 3) == levels(("11", "0"), ("13", "7"))


def test_a_level_pushed_down_and_changed_leaves_as_zero() -> None:
    side = asks_of(10, 11, 12, 13)
    # 12 changes quantity but is pushed out by 9 and 9.5: it leaves, its new quantity unseen
    diff = project(side, levels(("12", "9"), ("9", "1"), ("9.5", "1")), 3)
    assert diff == levels(("9", "1"), ("9.5", "1"), ("11", "0"), ("12", "0"))


def test_a_change_below_the_window_publishes_nothing() -> None:
    side = asks_of(*range(10, 30))
    assert project(side, levels(("25", "3"), ("40", "1"), ("26", "0")), 10) == []
    # and a change at the window's last level is inside
    assert project(side, levels(("19", "5")), 10) == levels(("19", "5"))


def test_a_side_shorter_than_the_depth_is_its_whole_window() -> None:
    side = asks_of(10, 11)
    assert project(side, levels(("50", "2")), 5) == levels(("50", "2"))
    assert project(side, levels(("10", "0")), 5) == levels(("10", "0"))
    # it grows past the depth: what no longer fits leaves
    assert project(side, levels(("1", "1"), ("2", "1"), ("3", "1"), ("4", "1")), 5) == levels(
        ("1", "1"), ("2", "1"), ("3", "1"), ("4", "1"), ("50", "0")
    )
    # and shrinks below it again: everything below enters
    side.apply(levels(*[(str(p), "1") for p in range(60, 70)]))
    assert project(side, levels(("1", "0"), ("2", "0"), ("3", "0")), 5) == levels(
        ("1", "0"), ("2", "0"), ("3", "0"), ("50", "2"), ("60", "1"), ("61", "1")
    )


def test_the_bid_side_mirrors_the_ask_side() -> None:
    side = BookSide(bids=True)
    side.apply(levels(("10", "1"), ("9", "1"), ("8", "1"), ("7", "1")))
    assert project(side, levels(("11", "2")), 3) == levels(("11", "2"), ("8", "0"))
    assert project(side, levels(("10", "0")), 3) == levels(("10", "0"), ("8", "1"))


def test_diff_windows_reference() -> None:
    before = levels(("1", "1"), ("2", "1"), ("3", "1"))
    after = levels(("1", "1"), ("2", "5"), ("4", "1"))
    assert diff_windows(before, after) == levels(("2", "5"), ("4", "1"), ("3", "0"))
    assert diff_windows(before, before) == []


@st.composite
def side_and_updates(draw: st.DrawFn) -> tuple[bool, list[Level], list[list[Level]]]:
    price = st.integers(1, 40).map(lambda p: D(p) / 2)
    qty = st.integers(0, 3).map(D)
    level = st.tuples(price, qty)
    start = draw(st.lists(st.tuples(price, st.integers(1, 3).map(D)), max_size=30))
    updates = draw(st.lists(st.lists(level, max_size=8), max_size=12))
    return draw(st.booleans()), start, updates


@given(side_and_updates(), st.sampled_from([1, 2, 3, 5, 10, 20]))
@settings(max_examples=300, deadline=None)
def test_window_diff_equals_the_reference_on_random_updates(
    case: tuple[bool, list[Level], list[list[Level]]], depth: int
) -> None:
    bids, start, updates = case
    side = BookSide(bids=bids)
    side.apply(start)
    for update in updates:
        project(side, update, depth)
