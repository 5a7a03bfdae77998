"""The order book, pure: sorted sides, book checksum v1, wire numbers, the window projection.

Theory of operation (docs/book.md, "Projection and checksum"):

* A :class:`BookSide` keeps quantity by price and a sorted list of *keys*,
  best first: the price on the ask side, minus the price on the bid side.
  So "better than" is ``key <`` on both sides, the n-th best level is
  ``keys[n]`` in O(1), and the top n is a slice. A plain list with
  :mod:`bisect` beats a tree for books of a few thousand levels: an insert
  is one ``memmove``.
* A ``book:SYMBOL:DEPTH`` client holds the top DEPTH levels of each side,
  the *window*. The window of a depth is fully described by its *boundary*,
  the key of its DEPTH-th level (None while the side is shorter than DEPTH:
  the window is then the whole side). :func:`window_diff` turns the changes
  of one update into that depth's diff from the boundaries before and
  after: changed levels are judged against the boundaries (O(k) for k
  changes), and only the levels between the two boundaries are read (those
  that entered from below, or were pushed out). An update whose changes all
  lie beyond an unchanged boundary costs O(k) and yields nothing.
* Numbers go on the wire at the symbol's precision, without trailing zeros
  and never in exponent notation (``Decimal`` would print ``1E+2``); the
  checksum formats those same numbers as a client does (PROTOCOL, "book
  checksum v1").

No I/O, no clock: the ingest (:mod:`tickwire.books`), the simulated market
and the tests drive it.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal


__all__ = [
    "CHECKSUM_LEVELS",
    "Book",
    "BookSide",
    "Change",
    "Level",
    "Precision",
    "checksum",
    "checksum_text",
    "diff_windows",
    "levels_json",
    "wire_number",
    "window_diff",
]

Level = tuple[Decimal, Decimal]
"""One level: (price, quantity)."""

Precision = tuple[int, int]
"""Decimals of (price, quantity), from the symbol's tick and step sizes."""

Change = tuple[Decimal, Decimal, Decimal]
"""One effective change of a side: (price, quantity before, quantity after); 0 is absent."""

CHECKSUM_LEVELS = 10
"""Levels per side that book checksum v1 covers."""

_ZERO = Decimal(0)
_QUANTUM = [Decimal(1).scaleb(-places) for places in range(19)]


class BookSide:
    """One side of a book: quantity by price, kept sorted best first.

    Args:
        bids: True for the bid side (best = highest price), False for asks.
    """

    __slots__ = ("_keys", "_qty", "_sign", "bids")

    def __init__(self, *, bids: bool) -> None:
        self.bids = bids
        self._sign = -1 if bids else 1
        self._keys: list[Decimal] = []  # ascending: best first
        self._qty: dict[Decimal, Decimal] = {}  # by price

    def __len__(self) -> int:
        return len(self._keys)

    def key(self, price: Decimal) -> Decimal:
        """The sort key of ``price`` on this side: smaller is better."""
        return -price if self.bids else price

    def get(self, price: Decimal) -> Decimal:
        """The quantity at ``price`` (0 when there is no level)."""
        return self._qty.get(price, _ZERO)

    def set(self, price: Decimal, qty: Decimal) -> Decimal:
        """Set the level at ``price`` (quantity 0 removes it; a missing one is fine).

        Returns:
            The quantity before (0 when there was no level).
        """
        old = self._qty.get(price)
        if qty:
            self._qty[price] = qty
            if old is None:
                bisect.insort(self._keys, self.key(price))
            return _ZERO if old is None else old
        if old is None:
            return _ZERO
        del self._qty[price]
        keys = self._keys
        del keys[bisect.bisect_left(keys, self.key(price))]
        return old

    def clear(self) -> None:
        self._keys.clear()
        self._qty.clear()

    def key_at(self, rank: int) -> Decimal | None:
        """The key of the level of ``rank`` (0 = best), or None when the side is shorter."""
        keys = self._keys
        return keys[rank] if rank < len(keys) else None

    def top(self, n: int) -> list[Level]:
        """The best ``n`` levels, best first."""
        sign, qty = self._sign, self._qty
        out: list[Level] = []
        for key in self._keys[:n]:
            price = sign * key
            out.append((price, qty[price]))
        return out

    def best(self) -> Level | None:
        top = self.top(1)
        return top[0] if top else None

    def between(self, after: Decimal | None, upto: Decimal | None) -> list[Level]:
        """The levels whose key is > ``after`` (None: from the best) and <= ``upto`` (None: to the end)."""
        keys = self._keys
        lo = 0 if after is None else bisect.bisect_right(keys, after)
        hi = len(keys) if upto is None else bisect.bisect_right(keys, upto)
        sign, qty = self._sign, self._qty
        out: list[Level] = []
        for key in keys[lo:hi]:
            price = sign * key
            out.append((price, qty[price]))
        return out

    def apply(self, levels: Iterable[Level]) -> dict[Decimal, tuple[Decimal, Decimal]]:
        """Apply level changes; returns the effective ones: price -> (before, after).

        A level set to the quantity it had, or a removal of a missing level,
        is no change; a price listed twice counts once, from first to last.
        """
        changes: dict[Decimal, tuple[Decimal, Decimal]] = {}
        for price, qty in levels:
            old = self.set(price, qty)
            first = changes.get(price)
            before = old if first is None else first[0]
            if before == qty:
                changes.pop(price, None)
            else:
                changes[price] = (before, qty)
        return changes


class Book:
    """A symbol's book: two sorted sides, the venue's last update id and event time.

    Args:
        precision: decimals of (price, quantity) for the wire and the checksum.
    """

    __slots__ = ("asks", "bids", "event_time", "precision", "update_id")

    def __init__(self, precision: Precision) -> None:
        self.precision = precision
        self.bids = BookSide(bids=True)
        self.asks = BookSide(bids=False)
        self.update_id = 0
        self.event_time = 0

    def replace(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Make the book exactly these levels (a snapshot)."""
        self.bids.clear()
        self.asks.clear()
        self.bids.apply(bids)
        self.asks.apply(asks)

    def best_bid(self) -> Level | None:
        return self.bids.best()

    def best_ask(self) -> Level | None:
        return self.asks.best()

    def crossed(self) -> bool:
        """Best bid >= best ask: a book no venue can have, so a wrong one."""
        bid, ask = self.bids.key_at(0), self.asks.key_at(0)
        return bid is not None and ask is not None and -bid >= ask

    @property
    def levels(self) -> int:
        """Levels of both sides."""
        return len(self.bids) + len(self.asks)

    def checksum(self) -> int:
        """Book checksum v1 of the book as it is now."""
        return checksum(self.asks.top(CHECKSUM_LEVELS), self.bids.top(CHECKSUM_LEVELS), self.precision)


# -- the window projection ----------------------------------------------------------------


def _within(key: Decimal, boundary: Decimal | None) -> bool:
    return boundary is None or key <= boundary


def window_diff(
    side: BookSide,
    changes: dict[Decimal, tuple[Decimal, Decimal]],
    before: Decimal | None,
    after: Decimal | None,
) -> list[Level]:
    """The diff of one depth's window on one side, after ``changes`` were applied to ``side``.

    Args:
        side: the side, already updated.
        changes: its effective changes (:meth:`BookSide.apply`).
        before: the boundary key of the window before the update
            (``side.key_at(depth - 1)`` then; None when the side was shorter).
        after: the boundary key now.

    Returns:
        Best first: levels new or changed in the window with their quantity,
        levels that left it (deleted or pushed below) as ``(price, 0)``, and
        levels that entered it from below with their full quantity. Empty
        when the window did not change.
    """
    out: dict[Decimal, Decimal] = {}
    key = side.key
    for price, (old, new) in changes.items():
        k = key(price)
        if new and _within(k, after):
            out[price] = new
        elif old and _within(k, before):
            out[price] = _ZERO
    if before == after:
        return _sorted(side, out)  # the window kept its extent: no level crossed its edge
    if before is not None and (after is None or after > before):
        # the window reaches deeper: levels between the two edges entered from below
        for price, qty in side.between(before, after):
            out[price] = qty
    if after is not None and (before is None or after < before):
        # the window got shallower: unchanged levels between the edges were pushed out
        for price, _ in side.between(after, before):
            if price not in changes:
                out[price] = _ZERO
    return _sorted(side, out)


def _sorted(side: BookSide, out: dict[Decimal, Decimal]) -> list[Level]:
    if len(out) < 2:
        return list(out.items())
    return sorted(out.items(), key=lambda level: side.key(level[0]))


def diff_windows(before: Sequence[Level], after: Sequence[Level]) -> list[Level]:
    """The diff between two windows given level by level (a reference: O(DEPTH)).

    Same rules as :func:`window_diff`, in the order of ``after`` then the
    levels that left; the fast path is tested against it.
    """
    old = dict(before)
    new = dict(after)
    out = [(price, qty) for price, qty in after if old.get(price) != qty]
    out += [(price, _ZERO) for price, _ in before if price not in new]
    return out


# -- numbers on the wire, and the checksum -------------------------------------------------


def _quantized(value: Decimal, places: int) -> Decimal:
    # a venue's levels sit on its tick and step, so this only sets the exponent
    return value.quantize(_QUANTUM[places])


def wire_number(value: Decimal, places: int) -> str:
    """``value`` at ``places`` decimals as a JSON number: no trailing zeros, no exponent.

    ``Decimal("0.00001000")`` at 8 is ``0.00001``, ``Decimal("1E+2")`` at 2 is
    ``100``, ``Decimal("97523.40000000")`` at 2 is ``97523.4``.
    """
    text = format(_quantized(value, places), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def levels_json(levels: Iterable[Level], precision: Precision) -> bytes:
    """A side as the wire's JSON array ``[[price,qty],...]``."""
    pp, qp = precision
    inner = ",".join(f"[{wire_number(price, pp)},{wire_number(qty, qp)}]" for price, qty in levels)
    return f"[{inner}]".encode()


def _checksum_part(value: Decimal, places: int) -> str:
    # as a client does: toFixed(places), drop the point, strip leading zeros ("" -> "0")
    digits = format(_quantized(value, places), "f").replace(".", "").lstrip("0")
    return digits or "0"


def checksum_text(asks: Sequence[Level], bids: Sequence[Level], precision: Precision) -> str:
    """The string book checksum v1 hashes: price then quantity of every ask, then every bid.

    Args:
        asks: the top asks, ascending (at most :data:`CHECKSUM_LEVELS` are used).
        bids: the top bids, descending.
        precision: decimals of (price, quantity), as sent in the snapshot.
    """
    pp, qp = precision
    parts: list[str] = []
    for price, qty in (*asks[:CHECKSUM_LEVELS], *bids[:CHECKSUM_LEVELS]):
        parts.append(_checksum_part(price, pp))
        parts.append(_checksum_part(qty, qp))
    return "".join(parts)


def checksum(asks: Sequence[Level], bids: Sequence[Level], precision: Precision) -> int:
    """Book checksum v1 (PROTOCOL, "Order book channel"): CRC-32 of :func:`checksum_text`, unsigned."""
    return zlib.crc32(checksum_text(asks, bids, precision).encode("ascii"))
