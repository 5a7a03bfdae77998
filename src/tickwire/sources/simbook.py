"""The simulated market's full order book of one symbol, pure: a seeded RNG and times passed in.

A plausible book around the simulated last price: the touch one tick either
side of it (as the ticker shows it), then levels on a fixed price grid,
``levels`` a side. The grid is absolute (multiples of a step of about
1/100,000 of the price), so when the price moves only the levels it crosses
and the far ends change, as in a real book; each step also re-sizes a few
levels, mostly near the touch. Bids stay below the last price and asks
above it, so the book is never crossed.

Prices and quantities are kept as integers of ticks and lots, and become
``Decimal`` only in the :class:`~tickwire.events.BookUpdate` it emits: a
snapshot first, then diffs (quantity 0 removes a level).
"""

from __future__ import annotations

import random
from decimal import Decimal

from ..events import BookUpdate
from .market import SymbolSpec


__all__ = ["SimBook"]

_GRID = 1e-5  # grid step, as a fraction of the price
_RESIZED = (2, 5)  # levels re-sized per step: at least, at most
_NEAR = 50  # re-sized levels are mostly among the best this many


class SimBook:
    """One symbol's simulated book.

    Args:
        spec: the symbol (tick and lot decimals, typical size).
        price: the last price now.
        rng: the book's own randomness (seeded: the same run gives the same book).
        update_id: the first update id; it grows by 1 to 5 per diff, like Binance's ``u``.
        levels: levels a side.
    """

    def __init__(
        self, spec: SymbolSpec, price: float, rng: random.Random, *, update_id: int, levels: int = 1000
    ) -> None:
        self.spec = spec
        self._rng = rng
        self._levels = levels
        self._tick_scale = 10.0**spec.tick  # ticks per unit of price
        self._lot_scale = 10.0**spec.lot
        self._step: int = max(1, round(price * _GRID * self._tick_scale))  # grid step in ticks
        self.update_id = update_id
        self.bids: dict[int, int] = {}  # ticks -> lots
        self.asks: dict[int, int] = {}
        self._last = self._ticks(price)
        for rank, ticks in enumerate(sorted(self._wanted_bids(self._last), reverse=True)):
            self.bids[ticks] = self._lots(rank)
        for rank, ticks in enumerate(sorted(self._wanted_asks(self._last))):
            self.asks[ticks] = self._lots(rank)

    @property
    def precision(self) -> tuple[int, int]:
        return self.spec.tick, self.spec.lot

    def _ticks(self, price: float) -> int:
        return max(round(price * self._tick_scale), 2)

    def _lots(self, rank: int) -> int:
        # deeper levels hold more, with a heavy tail: a ladder that looks like one
        size = self.spec.size * self._rng.lognormvariate(0.0, 0.8) * (1 + rank / 25)
        return max(1, round(size * self._lot_scale))

    def _wanted_bids(self, last: int) -> set[int]:
        touch, step = last - 1, self._step
        top = (touch - 1) // step * step  # the grid's best point under the touch
        return {touch} | {p for p in range(top, top - step * (self._levels - 1), -step) if p > 0}

    def _wanted_asks(self, last: int) -> set[int]:
        touch, step = last + 1, self._step
        top = touch // step * step + step  # the grid's best point above the touch
        return {touch} | set(range(top, top + step * (self._levels - 1), step))

    # -- events ------------------------------------------------------------------------

    def snapshot(self, now_ms: int) -> BookUpdate:
        """The whole book, best first on each side."""
        return BookUpdate(
            symbol=self.spec.symbol,
            bids=self._levels_of(sorted(self.bids.items(), reverse=True)),
            asks=self._levels_of(sorted(self.asks.items())),
            update_id=self.update_id,
            event_time=now_ms,
            snapshot=True,
            precision=self.precision,
        )

    def step(self, price: float, now_ms: int) -> BookUpdate | None:
        """Follow the price to ``price`` and re-size a few levels; the diff, or None for no change."""
        last = self._last = self._ticks(price)
        bids = self._follow(self.bids, self._wanted_bids(last))
        asks = self._follow(self.asks, self._wanted_asks(last))
        for _ in range(self._rng.randint(*_RESIZED)):
            is_bid = self._rng.random() < 0.5
            side, changed = (self.bids, bids) if is_bid else (self.asks, asks)
            ticks = self._pick(is_bid)
            if ticks in side:  # the far end of a small price may be cut at 0
                side[ticks] = changed[ticks] = self._lots(self._rank(ticks))
        if not bids and not asks:
            return None
        self.update_id += self._rng.randint(1, 5)
        return BookUpdate(
            symbol=self.spec.symbol,
            bids=self._levels_of(sorted(bids.items(), reverse=True)),
            asks=self._levels_of(sorted(asks.items())),
            update_id=self.update_id,
            event_time=now_ms,
        )

    def _rank(self, ticks: int) -> int:
        return round(abs(ticks - self._last) / self._step)

    def _follow(self, side: dict[int, int], wanted: set[int]) -> dict[int, int]:
        """Make ``side`` hold exactly the ``wanted`` prices; returns the changes (lots 0: removed)."""
        changed: dict[int, int] = {}
        for ticks in side.keys() - wanted:
            del side[ticks]
            changed[ticks] = 0
        for ticks in sorted(wanted - side.keys()):  # sorted: the RNG draws in a fixed order
            side[ticks] = changed[ticks] = self._lots(self._rank(ticks))
        return changed

    def _pick(self, is_bid: bool) -> int:
        """The price of a level to re-size: mostly near the touch (a geometric rank), sometimes anywhere."""
        rank = min(int(self._rng.expovariate(1 / 8)), _NEAR - 1)
        if self._rng.random() < 0.1:
            rank = self._rng.randrange(self._levels)
        if rank == 0:
            return self._last - 1 if is_bid else self._last + 1
        step = self._step
        if is_bid:
            return (self._last - 2) // step * step - (rank - 1) * step
        return (self._last + 1) // step * step + rank * step

    def _levels_of(self, items: list[tuple[int, int]]) -> tuple[tuple[Decimal, Decimal], ...]:
        tick, lot = self.spec.tick, self.spec.lot
        return tuple((Decimal(p).scaleb(-tick), Decimal(q).scaleb(-lot)) for p, q in items)
