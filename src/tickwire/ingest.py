"""The ingest: demand in, publications out.

It owns one source. Demand from the bus opens a source channel at once and
closes it ``linger`` seconds after the last node stopped wanting it, so a
page reload does not churn the upstream. Every event becomes one encoded
publication per wanted channel, with its ``seq`` assigned here, once; a
book update is projected onto the open depths of its symbol (:mod:`.books`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from .books import BookProjector
from .bus.base import Bus
from .channels import Channel, Kind, parse_channel
from .events import BookUpdate, Event, Kline, Trade, channels_of
from .protocol import encode_event, encode_publication
from .publications import ChannelStatus, Publication
from .sources.base import Source, SourceHealth


__all__ = ["Ingest"]

logger = logging.getLogger("tickwire.ingest")


class Ingest:
    """Bridge between a source and the bus.

    Args:
        source: the upstream.
        bus: where publications go and demand comes from.
        linger: seconds a channel stays open upstream after the last subscriber left.
        clock_ms: wall clock in ms (for status times).
    """

    def __init__(self, source: Source, bus: Bus, *, linger: float = 5.0, clock_ms: Callable[[], int]) -> None:
        self.source = source
        self._bus = bus
        self._linger = linger
        self._clock_ms = clock_ms
        self._open: dict[str, Channel] = {}
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        self._seq: dict[str, int] = {}
        self.published = 0
        self.books = BookProjector(next_seq=self.next_seq, publish=self._publish_book)
        source.attach(self)
        bus.attach_ingest(self)

    # -- demand --------------------------------------------------------------

    def on_demand(self, channel: str, wanted: bool) -> None:
        if wanted:
            timer = self._lingering.pop(channel, None)
            if timer is not None:
                timer.cancel()
            if channel not in self._open:
                parsed = parse_channel(channel)
                if not parsed.is_market:
                    return  # fed by the publish API, no upstream
                self._open[channel] = parsed
                logger.debug("open %s", channel)
                if parsed.kind is Kind.BOOK:
                    self.books.open(parsed)  # before the source, which may send the snapshot at once
                self.source.open(parsed)
            elif channel.startswith("book:"):
                self.books.open(self._open[channel])  # wanted again: a fresh snapshot for the hub
        elif channel in self._open and channel not in self._lingering:
            loop = asyncio.get_running_loop()
            self._lingering[channel] = loop.call_later(self._linger, self._release, channel)

    def _release(self, channel: str) -> None:
        self._lingering.pop(channel, None)
        parsed = self._open.pop(channel, None)
        if parsed is not None:
            logger.debug("close %s", channel)
            self.source.close(parsed)
            if parsed.kind is Kind.BOOK:
                self.books.close(parsed)
            self._bus.forget(channel)

    def close(self) -> None:
        for timer in self._lingering.values():
            timer.cancel()
        self._lingering.clear()

    @property
    def open_channels(self) -> list[str]:
        return sorted(self._open)

    # -- data ----------------------------------------------------------------

    def next_seq(self, channel: str) -> int:
        seq = self._seq.get(channel, 0) + 1
        self._seq[channel] = seq
        return seq

    def resume_seq(self, channel: str, seq: int) -> None:
        """Continue ``channel`` after ``seq``: a new leader never repeats a seq (Redis bus).

        A book channel whose history went on without this ingest gets a reset snapshot.
        """
        if seq > self._seq.get(channel, 0):
            self._seq[channel] = seq
            if channel.startswith("book:"):
                self.books.resumed(channel)

    def book_snapshot(self, channel: str) -> Publication | None:
        """A book channel's snapshot at its last publication's seq (for the Redis snapshot key)."""
        return self.books.snapshot(channel)

    def upstream_health(self) -> SourceHealth:
        """The source's health with its stream names, as a leading ingest shares it (Redis bus)."""
        return msgspec.structs.replace(self.source.health(), stream_names=self.source.streams())

    def known_symbols(self) -> list[str] | None:
        return self.source.known_symbols()

    def on_event(self, event: Event) -> None:
        if isinstance(event, BookUpdate):
            self.books.on_update(event)
            return
        final = isinstance(event, Trade) or (isinstance(event, Kline) and event.final)
        for channel in channels_of(event):
            if channel in self._open:
                seq = self.next_seq(channel)
                payload = encode_event(channel, seq, event)
                self.published += 1
                self._bus.publish(Publication(channel, seq, payload, final, event.event_time))

    def _publish_book(self, pub: Publication) -> None:
        self.published += 1
        self._bus.publish(pub)

    def book_levels(self) -> list[int]:
        """Levels of every book the ingest holds (``/metrics``)."""
        return self.books.level_counts()

    def on_status(
        self, channel: str, live: bool, reason: str | None, gap: tuple[int, int] | None = None
    ) -> None:
        self._bus.publish_status(ChannelStatus(channel, live, reason, self._clock_ms(), gap))

    async def publish(self, channel: Channel, data: msgspec.Raw) -> int:
        """Publish a message of the publish API on any node and bus; returns its seq.

        The bus assigns the seq (one counter cluster-wide on Redis) and
        publishes in one step, so every node sees the same seq, in order.

        Raises:
            BusUnavailable: the bus is down (answer 503).
        """
        name, kind, symbol = channel.name, channel.message_type, channel.symbol

        def encode(seq: int) -> bytes:
            return encode_publication(kind, name, seq, data, symbol=symbol)

        return await self._bus.publish_data(name, encode, event_time=self._clock_ms())
