"""The order book of one symbol in the fake Binance: a diff stream and REST snapshots that agree.

The book evolves by seeded random steps near the top (quantities change,
levels go and come back), never crossing. Each step uses one to three update
ids, so ``U``/``u`` advance the way the venue's do. ``states`` keeps the book
as of each recent update id, so a test can compare a client's book with the
truth at the update id the client is at. Faults: ``drop`` (the next diffs are
not sent, but the book moves on), ``cross`` (the next diffs carry a bid at
the best ask that the venue's book does not have), ``old_snapshots`` (the
next snapshots are the book as it was before the stream started).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from decimal import Decimal
from typing import Any


__all__ = ["FakeBinanceBook"]

Book = tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]


def _s(value: Decimal) -> str:
    return f"{value:.8f}"


class FakeBinanceBook:
    def __init__(self, symbol: str, *, levels: int = 1200, seed: int = 7, keep: int = 400) -> None:
        self.symbol = symbol
        self.rng = random.Random(f"{symbol}:{seed}")
        self.tick = Decimal("0.01")
        mid = Decimal("100.00")
        self.bids = {mid - self.tick * i: Decimal(1 + i % 7) for i in range(levels)}
        self.asks = {mid + self.tick * (i + 1): Decimal(1 + i % 5) for i in range(levels)}
        self.update_id = 1_000
        self.keep = keep
        self.states: OrderedDict[int, Book] = OrderedDict()
        self.old = (self.update_id, dict(self.bids), dict(self.asks))
        for _ in range(20):  # history before anyone subscribes: the "old" snapshot is older than any stream
            self._step()
        self.drop = 0
        self.cross = 0
        self.old_snapshots = 0
        self.sent = 0

    def _remember(self) -> None:
        self.states[self.update_id] = (dict(self.bids), dict(self.asks))
        while len(self.states) > self.keep:
            self.states.popitem(last=False)

    def _step(self) -> tuple[list[list[str]], list[list[str]]]:
        """Change a few levels near the top; the changed (price, qty) per side."""
        changed: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] = ({}, {})
        for _ in range(self.rng.randint(1, 4)):
            side_index = self.rng.randrange(2)
            side = (self.bids, self.asks)[side_index]
            best = max(self.bids) if side_index == 0 else min(self.asks)
            k = self.rng.randrange(30)
            price = best - self.tick * k if side_index == 0 else best + self.tick * k
            if price in side and self.rng.random() < 0.3 and len(side) > 50:
                del side[price]
                changed[side_index][price] = Decimal(0)
            else:
                qty = Decimal(self.rng.randint(1, 900)) / 100
                side[price] = qty
                changed[side_index][price] = qty
        self.update_id += self.rng.randint(1, 3)
        self._remember()
        return (
            [[_s(p), _s(q)] for p, q in changed[0].items()],
            [[_s(p), _s(q)] for p, q in changed[1].items()],
        )

    def next_diff(self) -> dict[str, Any] | None:
        """The next ``depthUpdate`` payload, or None when a fault drops it."""
        first = self.update_id + 1
        bids, asks = self._step()
        if self.cross:
            self.cross -= 1
            bids.append([_s(min(self.asks)), "1.00000000"])  # a glitch: the venue's book has no such bid
        if self.drop:
            self.drop -= 1
            return None
        self.sent += 1
        return {"e": "depthUpdate", "E": time.time_ns() // 1_000_000, "s": self.symbol, "U": first,
                "u": self.update_id, "b": bids, "a": asks}  # fmt: skip

    def snapshot(self, limit: int) -> dict[str, Any]:
        """``GET /api/v3/depth`` of ``limit`` levels a side (or the old book, for that fault)."""
        update_id, bids, asks = self.update_id, self.bids, self.asks
        if self.old_snapshots:
            self.old_snapshots -= 1
            update_id, bids, asks = self.old
        return {
            "lastUpdateId": update_id,
            "bids": [[_s(p), _s(bids[p])] for p in sorted(bids, reverse=True)[:limit]],
            "asks": [[_s(p), _s(asks[p])] for p in sorted(asks)[:limit]],
        }
