"""A client-side order book for a ``book:SYMBOL:DEPTH`` channel, proven on every message.

Theory of operation (docs/protocol.md, "Order book channel"; docs/book.md, "Client book"):

* Rule 1: a ``book`` message with ``snapshot: true`` replaces the book,
  whatever came before (after a subscribe, a reset, or when the gateway
  replaced a slow client's queued diffs).
* Rule 2: a diff applies only on a synced book whose last message was
  ``seq - 1``. Each level listed replaces the level at that price; quantity 0
  removes it. The book is never trimmed and no level is ever guessed: the
  gateway lists levels leaving the window as ``[price, 0]`` and levels
  entering it with their full quantity.
* Rule 3: after every message the book's checksum (v1, :func:`checksum`)
  must equal the message's ``checksum``.
* A seq gap or a checksum mismatch makes the book unsynced: :meth:`Book.apply`
  answers :data:`RESYNC` once, whoever feeds the book subscribes to the
  channel again (the gateway then re-sends the snapshot), and every diff
  until that snapshot is ignored. A diff older than the book (``seq`` at or
  below the book's) was already folded into it and is ignored too.
* A lost connection suspends a synced book (:meth:`Book.suspend`): unsynced, but
  still whole at its ``seq``, so the next subscribe may resume it with
  ``since`` (:attr:`Book.resumable`); when the gateway answers ``recovered``,
  :meth:`Book.resume` syncs it again at that seq and the replayed diffs
  follow (or a snapshot replaces it). A book that had lost sync before is
  not resumable: it asks for a snapshot (docs/book.md, "Resume of books").

Pure: no I/O, no clock; :class:`tickwire.client.Feed` wires it to a
connection (:meth:`Feed.book`), or feed it messages yourself.
"""

from __future__ import annotations

import enum
import zlib
from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import islice

from .. import orderbook
from ..messages import Book as BookMessage, BookPrecision, Status


__all__ = ["DIFF", "IGNORED", "RESYNC", "SNAPSHOT", "Applied", "Book", "Side", "checksum", "checksum_text"]

Level = tuple[Decimal, Decimal]
"""``(price, quantity)``."""

CHECKSUM_LEVELS = orderbook.CHECKSUM_LEVELS
"""Levels per side the checksum v1 covers."""

_MAX_PLACES = 18
"""Decimals the checksum formats at most (:func:`tickwire.orderbook.wire_number`'s table)."""


class Applied(enum.Enum):
    """What :meth:`Book.apply` did with a message."""

    SNAPSHOT = "snapshot"  # the book was replaced and verified
    DIFF = "diff"  # the diff was applied and verified
    IGNORED = "ignored"  # not applied: awaiting a snapshot, an old seq, or a status
    RESYNC = "resync"  # gap or mismatch: subscribe to the channel again (said once per loss)


SNAPSHOT = Applied.SNAPSHOT
DIFF = Applied.DIFF
IGNORED = Applied.IGNORED
RESYNC = Applied.RESYNC


def checksum_text(asks: Iterable[Level], bids: Iterable[Level], precision: BookPrecision) -> str:
    """The string checksum v1 hashes: price then quantity of every ask (best first), then every bid.

    ``asks`` and ``bids`` are the top levels, best first (at most 10 of each are used).
    The gateway's own code (:func:`tickwire.orderbook.checksum_text`, pure) formats them.
    """
    top = CHECKSUM_LEVELS
    pair = (precision.price, precision.qty)
    return orderbook.checksum_text(list(islice(asks, top)), list(islice(bids, top)), pair)


def checksum(asks: Iterable[Level], bids: Iterable[Level], precision: BookPrecision) -> int:
    """Book checksum v1 (docs/protocol.md): CRC-32 of :func:`checksum_text`, unsigned."""
    return zlib.crc32(checksum_text(asks, bids, precision).encode("ascii"))


class Side:
    """One side of a book: quantity by price, and the prices kept sorted ascending."""

    __slots__ = ("_prices", "_qty", "descending")

    def __init__(self, *, descending: bool) -> None:
        self.descending = descending  # bids: the best is the highest
        self._qty: dict[Decimal, Decimal] = {}
        self._prices: list[Decimal] = []

    def __len__(self) -> int:
        return len(self._prices)

    def replace(self, levels: Iterable[Level]) -> None:
        self._qty = {price: qty for price, qty in levels if qty}
        self._prices = sorted(self._qty)

    def set(self, price: Decimal, qty: Decimal) -> None:
        """The level at ``price`` is now ``qty``; 0 removes it (absent or not)."""
        if qty:
            if price not in self._qty:
                insort(self._prices, price)
            self._qty[price] = qty
        elif self._qty.pop(price, None) is not None:
            del self._prices[bisect_left(self._prices, price)]

    def best(self, n: int | None = None) -> list[Level]:
        """The top ``n`` levels (all when None), best first."""
        prices = self._prices
        if n is None or n >= len(prices):
            chosen = prices[::-1] if self.descending else prices
        elif self.descending:
            chosen = prices[: -n - 1 : -1] if n else []
        else:
            chosen = prices[:n]
        return [(p, self._qty[p]) for p in chosen]

    def as_dict(self) -> dict[Decimal, Decimal]:
        return dict(self._qty)


class Book:
    """The local book of one ``book:SYMBOL:DEPTH`` channel, built only from its messages.

    Args:
        channel: the canonical channel name (``book:BTCUSDT:20``).
    """

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.bid_side = Side(descending=True)
        self.ask_side = Side(descending=False)
        self.seq: int | None = None
        """The seq of the last message applied."""
        self.depth: int | None = None
        self.precision: BookPrecision | None = None
        self.update_id: int | None = None
        self.timestamp: int | None = None
        self.synced = False
        """True from a verified snapshot until a gap or a mismatch."""
        self.stale: str | None = None
        """The reason of the last ``stale`` status of the channel; None while live."""
        self.resyncs = 0
        """Times the book asked to be re-sent (a gap or a mismatch)."""
        self.problem: str | None = None
        """Why the book last lost sync (for logs and screens)."""
        self._asked = False  # RESYNC already answered for this loss
        self._held = False  # suspended while synced: whole at ``seq``, so a resume may continue it

    # -- applying ----------------------------------------------------------------

    def apply(self, msg: BookMessage | Status) -> Applied:
        """Apply one message of the channel; see the module docstring for the rules."""
        if isinstance(msg, Status):
            self.stale = None if msg.live else (msg.reason or msg.status)
            return IGNORED
        if msg.channel != self.channel:
            raise ValueError(f"a message of {msg.channel} given to the book of {self.channel}")
        if msg.snapshot:
            return self._snapshot(msg)
        if not self.synced:
            return self._lost(None)
        assert self.seq is not None
        if msg.seq <= self.seq:
            return IGNORED  # already folded into the snapshot the book holds
        if msg.seq != self.seq + 1:
            return self._lost(f"seq gap: {self.seq} -> {msg.seq}")
        for price, qty in msg.data.bids:
            self.bid_side.set(price, qty)
        for price, qty in msg.data.asks:
            self.ask_side.set(price, qty)
        return self._verify(msg, DIFF)

    def _snapshot(self, msg: BookMessage) -> Applied:
        precision = msg.data.precision or self.precision
        if precision is None:
            return self._lost("snapshot without precision: cannot verify it")
        if not (0 <= precision.price <= _MAX_PLACES and 0 <= precision.qty <= _MAX_PLACES):
            return self._lost(f"precision out of range: {precision.price}, {precision.qty}")
        self.precision = precision
        self.depth = msg.depth if msg.depth is not None else self.depth
        self.bid_side.replace(msg.data.bids)
        self.ask_side.replace(msg.data.asks)
        self.synced, self._asked, self._held, self.problem = True, False, False, None
        if msg.reset:
            self.stale = None  # the gateway's book is whole again
        return self._verify(msg, SNAPSHOT)

    def _verify(self, msg: BookMessage, done: Applied) -> Applied:
        self.seq, self.update_id, self.timestamp = msg.seq, msg.data.updateId, msg.data.timestamp
        have = self.checksum()
        if have != msg.data.checksum:
            return self._lost(f"checksum mismatch at seq {msg.seq}: {have} != {msg.data.checksum}")
        return done

    def _lost(self, problem: str | None) -> Applied:
        """The book is out of sync: RESYNC the first time, IGNORED until the next snapshot."""
        self.synced = self._held = False
        if problem is not None:
            self.problem = problem
        if self._asked:
            return IGNORED
        self._asked = True
        self.resyncs += 1
        return RESYNC

    def invalidate(self, problem: str = "disconnected") -> None:
        """Forget sync without asking again: the connection is gone, a new subscribe brings a snapshot."""
        self.synced, self._asked, self._held, self.problem = False, True, False, problem

    def suspend(self, problem: str = "disconnected") -> None:
        """The connection is gone: unsynced, but a synced book stays :attr:`resumable` at its seq."""
        held = self.synced
        self.invalidate(problem)
        self._held = held

    @property
    def resumable(self) -> bool:
        """Suspended while synced: a subscribe may send ``since`` with :attr:`seq` for it."""
        return self._held

    def resume(self) -> bool:
        """The gateway recovered the channel from :attr:`seq`: synced again (diffs go on from
        there, or a snapshot replaces the book). Returns False when the book was not resumable."""
        if not self._held:
            return False
        self.synced, self._asked, self._held, self.problem = True, False, False, None
        return True

    # -- reading -----------------------------------------------------------------

    def checksum(self) -> int:
        """Checksum v1 of the book as it is now."""
        assert self.precision is not None
        top = CHECKSUM_LEVELS
        return checksum(self.ask_side.best(top), self.bid_side.best(top), self.precision)

    @property
    def bids(self) -> list[Level]:
        """Every bid, best (highest) first."""
        return self.bid_side.best()

    @property
    def asks(self) -> list[Level]:
        """Every ask, best (lowest) first."""
        return self.ask_side.best()

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """(bids, asks): the best ``n`` levels of each side, best first."""
        return self.bid_side.best(n), self.ask_side.best(n)

    @property
    def best_bid(self) -> Level | None:
        best = self.bid_side.best(1)
        return best[0] if best else None

    @property
    def best_ask(self) -> Level | None:
        best = self.ask_side.best(1)
        return best[0] if best else None

    @property
    def spread(self) -> Decimal | None:
        """Best ask minus best bid; None while a side is empty."""
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else ask[0] - bid[0]

    @staticmethod
    def cumulative(levels: Sequence[Level]) -> list[tuple[Decimal, Decimal, Decimal]]:
        """``(price, qty, total)`` for ``levels`` (best first): total is the size up to that price."""
        total = Decimal(0)
        out: list[tuple[Decimal, Decimal, Decimal]] = []
        for price, qty in levels:
            total += qty
            out.append((price, qty, total))
        return out

    def __repr__(self) -> str:
        state = "synced" if self.synced else f"unsynced ({self.problem})"
        return f"<Book {self.channel} seq={self.seq} {len(self.bid_side)}x{len(self.ask_side)} {state}>"
