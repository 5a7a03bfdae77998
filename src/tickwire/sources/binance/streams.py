"""What the connections tell the Binance source, and each stream's stale or live state.

A mixin of :class:`~.source.BinanceSource`: the :class:`~.connection.ConnectionOwner`
callbacks (data, a lost socket, a refused subscribe, a replacement), the
stale/live status of each stream sent to its channels, and the watchdog's
check of silent streams. A data frame goes to the normalizer (:mod:`.parse`)
and then to the sink, or to the book engine (:mod:`.books`) for a book
stream; a stream that comes back stale with a gap goes through the backfill
(:mod:`.backfill`) before it is live again. The methods run on the source's
own state, which the ``TYPE_CHECKING`` block names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import UpstreamError
from ...events import Event
from .bookparse import is_book_stream
from .connection import Connection
from .parse import DataFrame, symbol_of_stream


if TYPE_CHECKING:
    from ..base import SourceSink
    from .backfill import Backfill
    from .books import BookFeed
    from .parse import Normalizer
    from .pool import ConnectionPool
    from .snapshots import Snapshots
    from .watchdog import StreamWatch


__all__ = ["StreamsMixin"]

logger = logging.getLogger("tickwire.upstream.binance")


class StreamsMixin:
    """The source's side of its connections: frames in, streams stale and live again."""

    if TYPE_CHECKING:  # provided by BinanceSource
        books: BookFeed
        backfill: Backfill
        raw_hook: Callable[[str, int], None] | None
        duplicates: int
        _sink: SourceSink | None
        _pool: ConnectionPool
        _norm: Normalizer
        _snapshots: Snapshots
        _channels: dict[str, set[str]]
        _stale: dict[str, str]
        _watches: dict[str, StreamWatch]
        _stream_up: bool

    # -- ConnectionOwner: what connections tell the source (http() is the source's) -------------

    def streams_sent(self, conn: Connection, streams: list[str]) -> None:
        """The server was asked for ``streams``: their watchdogs start over."""
        self._stream_up = True  # called only while a socket is up
        now = time.monotonic()
        for stream in streams:
            watch = self._watches.get(stream)
            if watch is not None:
                watch.restart(now)

    def lost(self, conn: Connection, reason: str) -> None:
        """``conn`` is down: its streams are stale unless another live connection carries them."""
        conn.down_reason = reason
        if not conn.retiring:
            logger.warning("conn %s: %s", conn.cid, reason)
        for stream in list(conn.wanted):
            if stream not in self._channels:
                continue
            if not self._pool.carried_elsewhere(conn, stream):
                self._set_stale(stream, reason)

    def refused(self, conn: Connection, streams: list[str], reason: str) -> None:
        for stream in streams:
            if stream in self._channels:
                self._set_stale(stream, reason)

    def replace(self, conn: Connection, why: str) -> None:
        self._pool.replace(conn, why)

    def deliver(self, conn: Connection, frame: DataFrame, text: str, recv_ms: int) -> None:
        stream = frame.stream
        if stream not in self._channels:
            return  # unsubscribed a moment ago, or not ours
        if is_book_stream(stream):
            self._deliver_book(conn, stream, frame.data, text, recv_ms)
            return
        try:
            event = self._norm.accept(stream, frame.data, recv_ms)
        except UpstreamError as exc:
            conn.counters.garbage_frames += 1
            logger.warning("conn %s: unusable frame ignored: %s", conn.cid, exc)
            return
        self._pool.first_data(conn)
        now = time.monotonic()
        self._watches[stream].seen(now, sample=event is not None)  # a duplicate says nothing of the rate
        if stream in self._stale and self.backfill.intercept(stream, event, text, recv_ms):
            return  # a gap to fill first: the backfill hands this back, then says live
        self._set_live(stream)
        if event is None:
            self.duplicates += 1
            return
        self._accepted(stream, event, text, recv_ms)

    def _accepted(self, stream: str, event: Event, text: str, recv_ms: int) -> None:
        self._snapshots.hold(stream, event)
        if self.raw_hook is not None:
            self.raw_hook(text, recv_ms)
        self._emit(event)

    def _deliver_book(self, conn: Connection, stream: str, data: bytes, text: str, recv_ms: int) -> None:
        """A diff depth frame: to the book engine, which sends its channels' live status itself."""
        self._pool.first_data(conn)
        self._watches[stream].seen(time.monotonic())
        self._stale.pop(stream, None)
        if self.raw_hook is not None:
            self.raw_hook(text, recv_ms)
        try:
            self.books.deliver(data)
        except UpstreamError as exc:
            conn.counters.garbage_frames += 1
            logger.warning("conn %s: unusable frame ignored: %s", conn.cid, exc)

    # -- status -----------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self._sink is not None:
            self._sink.on_event(event)

    def _status(
        self, channel: str, live: bool, reason: str | None, gap: tuple[int, int] | None = None
    ) -> None:
        if self._sink is not None:
            self._sink.on_status(channel, live, reason, gap)

    def _set_stale(self, stream: str, reason: str) -> None:
        if stream in self._stale:
            return
        self._stale[stream] = reason
        if is_book_stream(stream):
            self.books.stream_down(symbol_of_stream(stream), reason)
            return
        self.backfill.mark(stream, self._norm.key(stream))
        for name in sorted(self._channels.get(stream, ())):
            self._status(name, False, reason)

    def _set_live(self, stream: str, gap: tuple[int, int] | None = None) -> None:
        if self._stale.pop(stream, None) is None:
            return
        logger.info("%s flows again", stream)
        for name in sorted(self._channels.get(stream, ())):
            self._status(name, True, None, gap)

    def _backfilled(self, stream: str, gap: tuple[int, int] | None) -> None:
        """The backfill of ``stream`` is published: live, with what stayed lost."""
        self._set_live(stream, gap)
        conn = self._pool.assign.get(stream)
        if conn is not None and conn.ws is None and conn.down_reason is not None:
            self._set_stale(stream, conn.down_reason)  # it dropped again meanwhile: backfill from here

    # -- watchdog: the check of each stream (the loop is the source's run) --------------------

    def _check_streams(self, now: float) -> None:
        """Stale, and replace the connection of, every stream silent past its threshold.

        A stream already stale is skipped: a stream that stays quiet on its new
        connection does not cause another replacement, so it cannot loop.
        """
        for stream, conn in list(self._pool.assign.items()):
            if conn.ws is None or stream in self._stale:
                continue
            watch = self._watches[stream]
            if not watch.overdue(now):
                continue
            silent, limit = watch.silent_for(now), watch.limit()
            logger.warning("%s: no data for %.1f s; replacing conn %s", stream, silent, conn.cid)
            self._set_stale(stream, f"upstream stalled: no data for {limit:.3g} s")
            self.replace(conn, f"{stream} stalled")
