"""The ingest's book projection: one full book per symbol, one window per open depth channel.

A source emits :class:`~tickwire.events.BookUpdate` for a symbol's full book
(a snapshot, then diffs). The ingest keeps its own copy of each symbol's
book here and projects every update onto each open ``book:SYMBOL:DEPTH``
channel (docs/book.md, "Projection and checksum"):

* a channel that opens on a symbol whose book is held gets that depth's
  snapshot at once, with the channel's next ``seq``;
* a snapshot update (and a ``reset`` one) publishes a snapshot on every open
  depth;
* a diff update publishes, on each depth whose window changed, the levels
  that changed in it, left it (``[price, 0]``) or entered it from below;
  a depth whose window did not change gets nothing, so its ``seq`` stays
  dense.

Every message carries the book checksum of the top 10 levels after the
update, computed once per update whatever the number of depths. A symbol's
book is dropped when its last depth channel closes. What was last published
on a depth is its window of the book as it stood after the previous update,
so a depth's state is just its boundary, read from the book before applying.

For a cluster (docs/multi-node.md, "Order books") the projector also keeps,
per open depth, the position of its last publication, so that
:meth:`BookProjector.snapshot` can encode that depth's snapshot *at that
seq* at any later moment: an update that published nothing on a depth left
its window (and so the top-10 checksum) as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from .channels import Channel
from .events import BookUpdate
from .orderbook import Book, Level, Precision, levels_json, window_diff
from .protocol import encode_book
from .publications import Publication


__all__ = ["BookProjector"]

logger = logging.getLogger("tickwire.ingest.books")


@dataclass(slots=True)
class _Mark:
    """Where a depth channel stands: its last publication's seq, update id and time."""

    symbol: str
    depth: int
    seq: int
    update_id: int
    event_time: int


@dataclass(slots=True)
class _Symbol:
    book: Book | None = None
    depths: dict[int, str] = field(default_factory=dict)  # depth -> channel name, open now


class BookProjector:
    """Book channels of the ingest.

    Args:
        next_seq: gives the next ``seq`` of a channel (the ingest's counter).
        publish: sends a publication to the bus.
    """

    def __init__(self, *, next_seq: Callable[[str], int], publish: Callable[[Publication], None]) -> None:
        self._next_seq = next_seq
        self._publish = publish
        self._symbols: dict[str, _Symbol] = {}
        self._marks: dict[str, _Mark] = {}  # channel -> its last publication, while open
        self._reset_due: set[str] = set()  # channels whose next snapshot says reset

    # -- demand --------------------------------------------------------------

    def open(self, channel: Channel) -> None:
        """``channel`` (a ``book:`` one) is wanted: publish its snapshot now when the book is held.

        Also on a re-want of an open channel (a hub that dropped its view while the
        channel lingered): a hub only serves a view that began with a snapshot.
        """
        assert channel.symbol is not None and channel.depth is not None
        state = self._symbols.setdefault(channel.symbol, _Symbol())
        state.depths[channel.depth] = channel.name
        if state.book is not None:
            self._snapshot(channel.symbol, state.book, channel.depth, channel.name, reset=False)

    def close(self, channel: Channel) -> None:
        """``channel`` is closed: forget its depth, and the symbol's book with its last depth."""
        self._marks.pop(channel.name, None)
        self._reset_due.discard(channel.name)
        state = self._symbols.get(channel.symbol or "")
        if state is None or channel.depth is None:
            return
        state.depths.pop(channel.depth, None)
        if not state.depths:
            del self._symbols[channel.symbol or ""]

    # -- data ----------------------------------------------------------------

    def on_update(self, update: BookUpdate) -> None:
        state = self._symbols.get(update.symbol)
        if state is None:
            return  # no depth open: a late update after the last close
        if update.snapshot:
            self._replace(update, state)
            return
        book = state.book
        if book is None:
            logger.warning("%s: a book diff before any snapshot, ignored", update.symbol)
            return
        self._apply(update, state, book)

    def _replace(self, update: BookUpdate, state: _Symbol) -> None:
        precision = update.precision or _precision_of(update)
        book = state.book = Book(precision)
        book.replace(update.bids, update.asks)
        book.update_id, book.event_time = update.update_id, update.event_time
        for depth, name in state.depths.items():
            self._snapshot(update.symbol, book, depth, name, reset=update.reset)

    def _apply(self, update: BookUpdate, state: _Symbol, book: Book) -> None:
        bids, asks = book.bids, book.asks
        depths = state.depths
        # a window's extent before the update: the key of its DEPTH-th level
        edges = [(d, bids.key_at(d - 1), asks.key_at(d - 1)) for d in depths]
        bid_changes = bids.apply(update.bids)
        ask_changes = asks.apply(update.asks)
        book.update_id, book.event_time = update.update_id, update.event_time
        if not bid_changes and not ask_changes:
            return
        crc: int | None = None
        for depth, bid_before, ask_before in edges:
            bid_diff = window_diff(bids, bid_changes, bid_before, bids.key_at(depth - 1))
            ask_diff = window_diff(asks, ask_changes, ask_before, asks.key_at(depth - 1))
            if not bid_diff and not ask_diff:
                continue  # nothing changed inside this depth's window
            if crc is None:
                crc = book.checksum()
            self._diff(update.symbol, book, depths[depth], bid_diff, ask_diff, crc)

    # -- publications ------------------------------------------------------------

    def _snapshot(self, symbol: str, book: Book, depth: int, channel: str, *, reset: bool) -> None:
        seq = self._next_seq(channel)
        if self._reset_due:
            reset = reset or channel in self._reset_due
            self._reset_due.discard(channel)
        mark = self._marks[channel] = _Mark(symbol, depth, seq, book.update_id, book.event_time)
        payload = _encode_snapshot(book, channel, mark, reset=reset)
        self._publish(Publication(channel, seq, payload, True, book.event_time))

    def _diff(
        self, symbol: str, book: Book, channel: str, bids: list[Level], asks: list[Level], crc: int
    ) -> None:
        seq = self._next_seq(channel)
        mark = self._marks[channel]
        mark.seq, mark.update_id, mark.event_time = seq, book.update_id, book.event_time
        payload = encode_book(
            channel,
            symbol,
            seq,
            bids=levels_json(bids, book.precision),
            asks=levels_json(asks, book.precision),
            checksum=crc,
            update_id=book.update_id,
            timestamp=book.event_time,
        )
        self._publish(Publication(channel, seq, payload, True, book.event_time))

    # -- the cluster's snapshot key, and takeovers (docs/multi-node.md) -----------------

    def snapshot(self, channel: str) -> Publication | None:
        """``channel``'s snapshot at the seq of its last publication (None: not open, or no book).

        The Redis bus stores it for gateways that join a flowing channel. It
        is exactly the view a client holds after that publication: levels,
        checksum, update id and timestamp.
        """
        mark = self._marks.get(channel)
        state = self._symbols.get(mark.symbol) if mark is not None else None
        if mark is None or state is None or state.book is None:
            return None
        payload = _encode_snapshot(state.book, channel, mark, reset=False)
        return Publication(channel, mark.seq, payload, True, mark.event_time)

    def resumed(self, channel: str) -> None:
        """``channel``'s history went on without this ingest (a takeover, a refused publish).

        What gateways hold is not what this book continues from, so its next
        publication is a snapshot with ``reset``: now when the channel is open
        with a book, else as soon as the book comes (a new leader's first
        snapshot).
        """
        mark = self._marks.get(channel)
        state = self._symbols.get(mark.symbol) if mark is not None else None
        if mark is not None and state is not None and state.book is not None:
            self._snapshot(mark.symbol, state.book, mark.depth, channel, reset=True)
        else:
            self._reset_due.add(channel)

    # -- introspection (metrics, tests) ----------------------------------------------

    def book(self, symbol: str) -> Book | None:
        """The book held for ``symbol`` (None when no snapshot came, or no depth is open)."""
        state = self._symbols.get(symbol)
        return state.book if state is not None else None

    def level_counts(self) -> list[int]:
        """Levels (both sides) of every book held, one number per book."""
        return [s.book.levels for s in self._symbols.values() if s.book is not None]


def _encode_snapshot(book: Book, channel: str, mark: _Mark, *, reset: bool) -> bytes:
    """The snapshot of ``mark``'s depth, at ``mark``'s position (the book's window is the same there)."""
    depth = mark.depth
    return encode_book(
        channel,
        mark.symbol,
        mark.seq,
        bids=levels_json(book.bids.top(depth), book.precision),
        asks=levels_json(book.asks.top(depth), book.precision),
        checksum=book.checksum(),
        update_id=mark.update_id,
        timestamp=mark.event_time,
        snapshot=True,
        depth=depth,
        precision=book.precision,
        reset=reset,
    )


def _precision_of(update: BookUpdate) -> Precision:
    """Decimals of price and quantity as the levels show them (a snapshot without ``precision``)."""

    def places(values: list[Decimal]) -> int:
        return max((max(0, -int(v.as_tuple().exponent)) for v in values), default=0)

    levels = (*update.bids, *update.asks)
    return places([p for p, _ in levels]), places([q for _, q in levels])
