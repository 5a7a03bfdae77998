"""The book engines of one source: a :class:`~.book.BookSync` per symbol, its channels, its snapshots.

One upstream book per symbol, whatever depths are open: the first
``book:SYMBOL:DEPTH`` channel creates the symbol's :class:`~.book.BookSync`
(the source subscribes ``<symbol>@depth@100ms``), later depths only tell it
the deepest depth wanted, and the last one closing drops it. Status goes to
every open depth channel of the symbol; a channel that opens while the book
is not live is told why at once ("awaiting snapshot", "book resync", or the
connection's reason). A depth opening on a live book whose snapshot does not
cover that many levels (1000 on a 1000-level snapshot whose top was eaten)
is stale "awaiting snapshot" until the refresh that this deeper depth asks
for has swapped in.

Snapshots: with a :class:`~.rest.RestClient`, the feed fetches them itself
through the source's weight budget, by the priority of their reason
(a resync first, then a first sync, then a refresh), waiting out 429s, and
hands each body it used to ``rest_hook`` (``tickwire record``). Without
one (the replay source), requests wait in :attr:`BookFeed.pending` until
the owner answers them with :meth:`BookFeed.snapshot`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

from ...channels import Channel
from ...errors import UpstreamError
from ...events import BookUpdate, Event
from .book import AWAITING, BookSync, Fetch
from .bookparse import book_stream, depth_weight, parse_diff, parse_rest_book
from .budget import Priority
from .rest import RestClient


__all__ = ["BookFeed"]

logger = logging.getLogger("tickwire.upstream.binance")

_PRIORITY = {Fetch.RESYNC: Priority.RESYNC, Fetch.FIRST: Priority.FIRST_SYNC, Fetch.REFRESH: Priority.REFRESH}


class BookFeed:
    """Every symbol's book engine.

    Args:
        emit: publishes an event (``BookUpdate``).
        status: tells one channel (name, live, reason).
        rest: fetches snapshots itself when given (see the module docstring).
        precision: (price, qty) decimals of a symbol from exchangeInfo, or None.
        backoff_initial, backoff_max: a symbol's resync delays, seconds.
        on_request: called with the symbol when a snapshot is wanted and ``rest`` is None.
    """

    def __init__(
        self,
        *,
        emit: Callable[[Event], None],
        status: Callable[[str, bool, str | None], None],
        rest: RestClient | None = None,
        precision: Callable[[str], tuple[int, int] | None] = lambda symbol: None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self._emit = emit
        self._status = status
        self._rest = rest
        self._precision = precision
        self._backoff = (backoff_initial, backoff_max)
        self._on_request = on_request
        self.syncs: dict[str, BookSync] = {}
        self._open: dict[str, dict[int, str]] = {}  # symbol -> depth -> channel name
        self._tasks: dict[str, asyncio.Task[Any]] = {}  # symbol -> its snapshot fetch
        self._uncovered: dict[str, dict[str, int]] = {}  # symbol -> channel -> depth, stale until covered
        self.pending: dict[str, tuple[Fetch, int]] = {}  # symbol -> (why, limit), when rest is None
        self.rest_hook: Callable[[str, bytes, int], None] | None = None
        self._past: dict[str, int] = {}  # resyncs of symbols closed since
        self.snapshot_weight = 0  # request weight spent on book snapshots
        self.snapshots = 0  # snapshot bodies received

    # -- demand -------------------------------------------------------------------------------

    def open(self, channel: Channel, down: str | None = None) -> None:
        """A ``book:`` channel opens; ``down`` is why its stream is stale, if it is."""
        symbol, depth = channel.symbol or "", channel.depth or 0
        depths = self._open.setdefault(symbol, {})
        depths[depth] = channel.name
        sync = self.syncs.get(symbol)
        if sync is None:
            initial, cap = self._backoff
            sync = BookSync(
                symbol, self, precision=self._precision(symbol), backoff_initial=initial, backoff_max=cap
            )
            self.syncs[symbol] = sync
        reason = down or sync.reason
        if reason is None and sync.book is not None and sync.book.covered() < depth:
            reason = AWAITING
            self._uncovered.setdefault(symbol, {})[channel.name] = depth
        if reason is not None:
            self._status(channel.name, False, reason)
        sync.want_depth(max(depths))

    def close(self, channel: Channel) -> bool:
        """A ``book:`` channel closes; True when it was its symbol's last one."""
        symbol = channel.symbol or ""
        depths = self._open.get(symbol)
        if depths is None or depths.get(channel.depth or 0) != channel.name:
            return False
        del depths[channel.depth or 0]
        self._uncovered.get(symbol, {}).pop(channel.name, None)
        if depths:
            self.syncs[symbol].want_depth(max(depths))
            return False
        del self._open[symbol]
        self._uncovered.pop(symbol, None)
        sync = self.syncs.pop(symbol)
        for reason, n in sync.resyncs.items():
            self._past[reason] = self._past.get(reason, 0) + n
        task = self._tasks.pop(symbol, None)
        if task is not None:
            task.cancel()
        self.pending.pop(symbol, None)
        return True

    def streams(self) -> list[str]:
        return sorted(book_stream(s) for s in self._open)

    # -- upstream ------------------------------------------------------------------------------

    def deliver(self, data: bytes) -> None:
        """One diff depth payload.

        Raises:
            UpstreamError: not a ``depthUpdate``.
        """
        ev = parse_diff(data)
        sync = self.syncs.get(ev.symbol)
        if sync is not None:
            sync.on_diff(ev)

    def stream_down(self, symbol: str, reason: str) -> None:
        """The symbol's stream is down: its channels are stale, its book is rebuilt afterwards."""
        sync = self.syncs.get(symbol)
        if sync is not None:
            sync.lost(reason)
            self.book_status(symbol, False, reason)

    def snapshot(self, symbol: str, body: bytes, recv_ms: int) -> bool:
        """Answer a pending request with a snapshot body; False when none was pending."""
        if self.pending.pop(symbol, None) is None:
            return False
        self._answer(self.syncs[symbol], body, recv_ms)
        return True

    def resyncs(self) -> dict[str, int]:
        """Resyncs by reason, every symbol ever open."""
        out = dict(self._past)
        for sync in self.syncs.values():
            for reason, n in sync.resyncs.items():
                out[reason] = out.get(reason, 0) + n
        return out

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- BookOwner ---------------------------------------------------------------------------

    def book_event(self, update: BookUpdate) -> None:
        self._emit(update)
        if self._uncovered and update.symbol in self._uncovered:
            self._cover(update.symbol)

    def _cover(self, symbol: str) -> None:
        """Channels waiting for a deeper snapshot go live once the book covers their depth."""
        book = self.syncs[symbol].book
        waiting = self._uncovered[symbol]
        for name, depth in sorted(waiting.items()):
            if book is not None and book.covered() >= depth:
                del waiting[name]
                self._status(name, True, None)
        if not waiting:
            del self._uncovered[symbol]

    def book_status(self, symbol: str, live: bool, reason: str | None) -> None:
        if not live:
            self._uncovered.pop(symbol, None)  # the whole book is stale now: one status for all
        for _, name in sorted(self._open.get(symbol, {}).items()):
            self._status(name, live, reason)

    def book_fetch(self, symbol: str, why: Fetch, limit: int, delay: float) -> None:
        if self._rest is None:
            self.pending[symbol] = (why, limit)
            if self._on_request is not None:
                self._on_request(symbol)
            return
        sync = self.syncs[symbol]
        task = asyncio.get_running_loop().create_task(self._fetch(sync, why, limit, delay))
        self._tasks[symbol] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(symbol, None) if self._tasks.get(symbol) is t else None
        )

    # -- snapshots over REST -------------------------------------------------------------------

    async def _fetch(self, sync: BookSync, why: Fetch, limit: int, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        got = await self._get(sync.symbol, limit, _PRIORITY[why])
        if self.syncs.get(sync.symbol) is not sync:
            return  # closed (and maybe reopened) meanwhile
        if got is None:
            sync.fetch_failed()
            return
        body, recv_ms = got
        if self.rest_hook is not None:
            self.rest_hook(book_stream(sync.symbol), body, recv_ms)
        self._answer(sync, body, recv_ms)

    async def _get(self, symbol: str, limit: int, priority: Priority) -> tuple[bytes, int] | None:
        """The snapshot body; a 429/418 is waited out in the budget's queue, any other failure is None."""
        assert self._rest is not None
        weight = depth_weight(limit)
        params = {"symbol": symbol, "limit": str(limit)}
        while True:
            body, recv_ms, retry = await self._rest.get(
                "/api/v3/depth", params, weight=weight, priority=priority, max_wait=math.inf
            )
            self.snapshot_weight += weight
            if body is not None:
                return body, recv_ms
            if retry is None:
                return None

    def _answer(self, sync: BookSync, body: bytes, recv_ms: int) -> None:
        try:
            snap = parse_rest_book(body)
        except UpstreamError as exc:
            logger.warning("%s: %s", sync.symbol, exc)
            sync.fetch_failed()
            return
        self.snapshots += 1
        sync.on_snapshot(snap, recv_ms)
