"""A full order book: two sorted sides of price -> quantity, pure.

The sides are a dict plus a sorted list of its prices (ascending on both
sides; the best bid is the last price, the best ask the first). A diff
event touches a handful of levels near the top, so an insert or delete
costs one bisect and a short memmove even on a 5,000-level side; that is
cheaper than a tree and needs no dependency.

Coverage: a REST snapshot of ``limit`` levels says nothing of the levels
beyond its last one. ``Ladder.floor`` (bids) and ``Ladder.ceiling`` (asks)
remember the worst price the snapshot listed when it listed a full
``limit`` (None when the side was shorter, so it was complete);
:meth:`Ladder.covered` counts the levels at or better than it, which is how
deep the book can be trusted.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from decimal import Decimal


__all__ = ["Ladder", "Side"]

Level = tuple[Decimal, Decimal]
_ZERO = Decimal(0)


class Side:
    """One side of a book. ``descending`` for bids: best first when listed."""

    __slots__ = ("descending", "prices", "qty")

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.qty: dict[Decimal, Decimal] = {}
        self.prices: list[Decimal] = []  # ascending

    def __len__(self) -> int:
        return len(self.prices)

    def load(self, levels: Iterable[Level]) -> None:
        """Replace the side with ``levels`` (quantity 0 levels are left out)."""
        self.qty = {p: q for p, q in levels if q != _ZERO}
        self.prices = sorted(self.qty)

    def set(self, price: Decimal, qty: Decimal) -> bool:
        """Set one level (0 removes it); whether anything changed."""
        old = self.qty.get(price)
        if qty == _ZERO:
            if old is None:
                return False  # removing a level we never knew: normal per the venue's docs
            del self.qty[price]
            del self.prices[bisect_left(self.prices, price)]
            return True
        if old is None:
            self.prices.insert(bisect_left(self.prices, price), price)
        elif old == qty:
            return False
        self.qty[price] = qty
        return True

    def best(self) -> Decimal | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.descending else self.prices[0]

    def levels(self, n: int | None = None) -> tuple[Level, ...]:
        """The best ``n`` levels (all when None), best first."""
        prices = self.prices
        if self.descending:
            chosen = prices[::-1] if n is None else prices[: -n - 1 if n < len(prices) else None : -1]
        else:
            chosen = prices if n is None else prices[:n]
        qty = self.qty
        return tuple((p, qty[p]) for p in chosen)

    def count_to(self, limit: Decimal) -> int:
        """Levels at ``limit`` or better."""
        if self.descending:
            return len(self.prices) - bisect_left(self.prices, limit)
        return bisect_right(self.prices, limit)

    def diff_to(self, other: Side) -> tuple[Level, ...]:
        """The levels that turn this side into ``other``: changed or new, and removed as qty 0."""
        out = [(p, q) for p, q in other.qty.items() if self.qty.get(p) != q]
        out += [(p, _ZERO) for p in self.qty if p not in other.qty]
        out.sort(reverse=self.descending)
        return tuple(out)


class Ladder:
    """A symbol's full book as of ``update_id``, with the coverage of its snapshot."""

    __slots__ = ("asks", "bids", "ceiling", "floor", "update_id")

    def __init__(self) -> None:
        self.bids = Side(descending=True)
        self.asks = Side(descending=False)
        self.update_id = 0
        self.floor: Decimal | None = None  # worst bid a full snapshot side listed
        self.ceiling: Decimal | None = None  # worst ask a full snapshot side listed

    @classmethod
    def from_snapshot(
        cls, update_id: int, bids: tuple[Level, ...], asks: tuple[Level, ...], limit: int
    ) -> Ladder:
        ladder = cls()
        ladder.bids.load(bids)
        ladder.asks.load(asks)
        ladder.update_id = update_id
        if len(bids) >= limit and bids:
            ladder.floor = min(p for p, _ in bids)
        if len(asks) >= limit and asks:
            ladder.ceiling = max(p for p, _ in asks)
        return ladder

    def apply(
        self, bids: Iterable[Level], asks: Iterable[Level]
    ) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """Apply one event's levels; the (bids, asks) that changed anything."""
        bid_side, ask_side = self.bids, self.asks
        changed_bids = tuple(level for level in bids if bid_side.set(*level))
        changed_asks = tuple(level for level in asks if ask_side.set(*level))
        return changed_bids, changed_asks

    def crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask

    def covered(self) -> int:
        """Levels of the thinner side the snapshot vouches for (a complete side: deep enough)."""
        big = 1 << 30
        bids = big if self.floor is None else self.bids.count_to(self.floor)
        asks = big if self.ceiling is None else self.asks.count_to(self.ceiling)
        return min(bids, asks)

    def complete(self) -> bool:
        """Whether the snapshot listed both sides whole (no level beyond it exists)."""
        return self.floor is None and self.ceiling is None

    def diff_to(self, other: Ladder) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        return self.bids.diff_to(other.bids), self.asks.diff_to(other.asks)
