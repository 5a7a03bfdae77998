"""One symbol's local order book, kept in sequence with the venue: a pure state machine.

Binance's procedure (web-socket-streams.md, "How to manage a local order book
correctly", as corrected 2025-11-12; docs/book.md, "The engine", says why each rule):

Rule 1. Buffer the diff events; fetch a snapshot only once a diff is buffered
        (its ``U`` is the sync point), and never drop the buffer while a
        snapshot is in flight or a resync waits: that event is what bridges.
Rule 2. A snapshot with ``lastUpdateId + 1 < U`` of the first buffered event is
        older than the stream: fetch again.
Rule 3. Drop buffered events with ``u <= lastUpdateId``; the first one applied
        may straddle (``U <= last + 1 <= u``).
Rule 4. Live, an event with ``u <= last`` is a duplicate (ignored) and one with
        ``U > last + 1`` is a gap: resync.
Rule 5. A book whose best bid is at or above its best ask is wrong: resync.
Rule 6. A resync concerns this symbol only: its channels go stale ("book
        resync"), a snapshot is fetched after a backoff (1 s doubling to 60 s,
        back to 1 s after a good sync), published with ``reset``, then live.
Rule 7. Coverage: when fewer than twice the deepest wanted depth of levels
        remain that the snapshot vouched for, a refresh fetches a new
        snapshot while diffs keep being applied and published; the new book
        is built from it and the diffs since, and once it has caught up the
        difference between the two books is published as an ordinary diff.

The machine does no I/O: it tells its :class:`BookOwner` what to publish,
which status to show and when to fetch a snapshot (with a delay, which the
owner waits out); the owner answers with :meth:`BookSync.on_snapshot` or
:meth:`BookSync.fetch_failed`.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Protocol

from ...events import BookUpdate
from .bookparse import DiffEvent, RestBook, digits_of
from .ladder import Ladder


__all__ = ["AWAITING", "RESYNC", "BookOwner", "BookSync", "Fetch", "snapshot_limit"]

AWAITING = "awaiting snapshot"
RESYNC = "book resync"


class Fetch(enum.IntEnum):
    """Why a snapshot is wanted; the owner maps it to a REST priority (lower first)."""

    RESYNC = 0  # a book its subscribers were told is being repaired
    FIRST = 1  # the first sync of a symbol
    REFRESH = 2  # the coverage guard or a deeper depth


def snapshot_limit(depth: int) -> int:
    """Snapshot levels for the deepest wanted depth: 1000 (weight 50) up to 100, else 5000 (250)."""
    return 1000 if depth <= 100 else 5000


class BookOwner(Protocol):
    def book_event(self, update: BookUpdate) -> None: ...

    def book_status(self, symbol: str, live: bool, reason: str | None) -> None: ...

    def book_fetch(self, symbol: str, why: Fetch, limit: int, delay: float) -> None: ...


class _Refresh:
    """A book being rebuilt from a newer snapshot while the live one keeps going (Rule 7)."""

    __slots__ = ("buffer", "candidate", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer: list[DiffEvent] = []  # events applied since the refresh was asked for
        self.candidate: Ladder | None = None  # built once the snapshot arrived


class BookSync:
    """One symbol's book. See the module docstring for the rules.

    Args:
        symbol: the upper-case symbol.
        owner: told what to publish, show and fetch.
        precision: (price, qty) decimals from exchangeInfo; None: from the first snapshot's digits.
        backoff_initial, backoff_max: resync delays, seconds (Rule 6).
        buffer_max: events buffered while syncing; beyond it the oldest go (the
            snapshot then proves too old and is fetched again, Rule 2).
    """

    def __init__(
        self,
        symbol: str,
        owner: BookOwner,
        *,
        precision: tuple[int, int] | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        buffer_max: int = 10_000,
    ) -> None:
        self.symbol = symbol
        self.owner = owner
        self.precision = precision
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.depth = 0  # deepest wanted depth
        self.book: Ladder | None = None
        self.reason: str | None = AWAITING  # why not live; None when live
        self.buffer: deque[DiffEvent] = deque(maxlen=buffer_max)
        self.fetching: Fetch | None = None  # a snapshot asked for and not answered yet
        self.limit = 0  # levels of the snapshot asked for / of the book's snapshot
        self.refresh: _Refresh | None = None
        self.published = False  # a snapshot went out: the next one is a reset
        self._delay = 0.0  # the next resync's backoff delay; 0: none yet
        self.resyncs: dict[str, int] = {}  # reason -> count
        self.refetches = 0  # snapshots older than the stream (Rule 2)
        self.refreshes = 0  # refreshes swapped in (Rule 7)
        self.last_time = 0  # event time of the last event applied, ms

    # -- what the owner tells the book --------------------------------------------------------

    def want_depth(self, depth: int) -> None:
        """The deepest open depth channel is now ``depth`` (a deeper one may need a bigger snapshot)."""
        self.depth = depth
        self._guard()

    def on_diff(self, ev: DiffEvent) -> None:
        book = self.book
        if book is None:
            self._buffer(ev)
            return
        if ev.last <= book.update_id:
            return  # a duplicate (Rule 4)
        if ev.first > book.update_id + 1:
            self._resync("gap", keep=ev)
            return
        bids, asks = book.apply(ev.bids, ev.asks)
        book.update_id = ev.last
        self.last_time = ev.event_time
        if book.crossed():
            self._resync("crossed")
            return
        if bids or asks:
            self.owner.book_event(BookUpdate(
                symbol=self.symbol, bids=bids, asks=asks, update_id=ev.last, event_time=ev.event_time
            ))  # fmt: skip
        if self.refresh is not None:
            self._refresh_diff(ev)
        else:
            self._guard()

    def on_snapshot(self, snap: RestBook, recv_ms: int) -> None:
        """The snapshot asked for (``limit`` levels) arrived."""
        self.fetching = None
        if self.book is not None and self.refresh is not None:
            self._refresh_snapshot(snap)
            return
        if self.book is not None:
            return  # an answer nobody waits for any more
        self._sync(snap, recv_ms)

    def fetch_failed(self) -> None:
        """The snapshot could not be fetched: ask again after the backoff."""
        self.fetching = None
        if self.book is None:
            self._ask(self._why(), self._next_delay())
        elif self.refresh is not None:
            self.refresh = None
            self._ask(Fetch.REFRESH, self._next_delay(), refresh=True)

    def lost(self, reason: str) -> None:
        """The stream is down (its channels were told ``reason``): the book can no longer be trusted."""
        self.resyncs["disconnect"] = self.resyncs.get("disconnect", 0) + 1
        self.book = None
        self.refresh = None
        self.buffer.clear()
        self.reason = reason
        self._next_delay()

    # -- syncing --------------------------------------------------------------------------

    def _buffer(self, ev: DiffEvent) -> None:
        if self.buffer and ev.last <= self.buffer[-1].last:
            return  # a duplicate of a rotation overlap
        self.buffer.append(ev)
        if self.fetching is None:
            why = self._why()
            self._ask(why, self._delay if why is Fetch.RESYNC else 0.0)

    def _why(self) -> Fetch:
        """A first sync until the book was ever dropped or failed; a resync after."""
        return Fetch.FIRST if self.reason == AWAITING else Fetch.RESYNC

    def _sync(self, snap: RestBook, recv_ms: int) -> None:
        if not self.buffer:
            return  # lost meanwhile: the next diff asks again
        if snap.last_update_id + 1 < self.buffer[0].first:
            self.refetches += 1
            self._ask(self._why(), self._next_delay())
            return
        book = Ladder.from_snapshot(snap.last_update_id, snap.bids, snap.asks, self.limit)
        event_time = recv_ms
        for ev in self.buffer:
            if ev.last <= book.update_id:
                continue
            if ev.first > book.update_id + 1:
                self._resync("bridge", keep=ev)
                return
            book.apply(ev.bids, ev.asks)
            book.update_id = ev.last
            event_time = ev.event_time
        self.buffer.clear()
        if book.crossed():
            self._resync("crossed")
            return
        self.last_time = event_time
        if self.precision is None:
            self.precision = digits_of(snap.bids, snap.asks)
        self.book = book
        self._delay = 0.0  # a good sync: the next resync starts at the initial delay again
        self.owner.book_event(BookUpdate(
            symbol=self.symbol, bids=book.bids.levels(), asks=book.asks.levels(), update_id=book.update_id,
            event_time=event_time, snapshot=True, reset=self.published, precision=self.precision,
        ))  # fmt: skip
        self.published = True
        self.reason = None
        self.owner.book_status(self.symbol, True, None)
        self._guard()

    def _resync(self, reason: str, keep: DiffEvent | None = None) -> None:
        """Rule 6: drop the book (and any refresh), keep ``keep`` as the new sync point."""
        self.resyncs[reason] = self.resyncs.get(reason, 0) + 1
        self.book = None
        self.refresh = None
        self.buffer.clear()
        if self.reason != RESYNC:
            self.reason = RESYNC
            self.owner.book_status(self.symbol, False, RESYNC)
        self._next_delay()
        if keep is not None:
            self._buffer(keep)

    def _next_delay(self) -> float:
        """The delay of the next try: 1 s, then doubling up to the cap."""
        self._delay = self.backoff_initial if self._delay <= 0 else min(self.backoff_max, self._delay * 2)
        return self._delay

    def _ask(self, why: Fetch, delay: float, *, refresh: bool = False) -> None:
        if self.fetching is not None:
            return
        self.fetching = why
        self.limit = snapshot_limit(max(self.depth, 1))
        if refresh:
            self.refresh = _Refresh(self.limit)
        self.owner.book_fetch(self.symbol, why, self.limit, delay)

    # -- refresh (Rule 7) ----------------------------------------------------------------------

    def _guard(self) -> None:
        """Ask for a refresh when the published window nears levels no snapshot covered."""
        book = self.book
        if book is None or self.fetching is not None or self.refresh is not None or book.complete():
            return
        wanted = max(self.depth, 1)
        deeper = snapshot_limit(wanted) > self.limit
        if deeper or book.covered() < 2 * wanted:
            self._ask(Fetch.REFRESH, 0.0, refresh=True)

    def _refresh_diff(self, ev: DiffEvent) -> None:
        refresh = self.refresh
        assert refresh is not None and self.book is not None
        candidate = refresh.candidate
        if candidate is None:
            refresh.buffer.append(ev)
            return
        if not self._catch_up(candidate, ev):
            return
        self._swap_if_caught_up(candidate)

    def _refresh_snapshot(self, snap: RestBook) -> None:
        refresh = self.refresh
        assert refresh is not None
        candidate = Ladder.from_snapshot(snap.last_update_id, snap.bids, snap.asks, refresh.limit)
        refresh.candidate = candidate
        for ev in refresh.buffer:
            if not self._catch_up(candidate, ev):
                return
        refresh.buffer = []
        self._swap_if_caught_up(candidate)

    def _catch_up(self, candidate: Ladder, ev: DiffEvent) -> bool:
        """Apply ``ev`` to the candidate; False (refresh abandoned, retried later) on a gap."""
        if ev.last <= candidate.update_id:
            return True
        if ev.first > candidate.update_id + 1:
            self.refresh = None
            self.refetches += 1
            self._ask(Fetch.REFRESH, self._next_delay(), refresh=True)
            return False
        candidate.apply(ev.bids, ev.asks)
        candidate.update_id = ev.last
        return True

    def _swap_if_caught_up(self, candidate: Ladder) -> None:
        book = self.book
        assert book is not None
        if candidate.update_id < book.update_id:
            # older than the live book, and the diffs in between were not kept: try again
            self.refresh = None
            self.refetches += 1
            self._ask(Fetch.REFRESH, self._next_delay(), refresh=True)
            return
        if candidate.update_id > book.update_id:
            return  # the snapshot is ahead of the stream: wait for the stream to reach it
        self.refresh = None
        if candidate.crossed():
            self._resync("crossed")
            return
        bids, asks = book.diff_to(candidate)
        self.book = candidate
        self.refreshes += 1
        self._delay = 0.0
        if bids or asks:
            self.owner.book_event(BookUpdate(
                symbol=self.symbol, bids=bids, asks=asks, update_id=candidate.update_id,
                event_time=self.last_time,
            ))  # fmt: skip
