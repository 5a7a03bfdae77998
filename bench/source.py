"""The fake upstream as a tickwire :class:`~tickwire.sources.base.Source`, injected with
``Gateway(settings, source=BenchSource(...))`` in the benchmark's gateway process.

Its events go through the real ingest (seq, encode once), bus and hub.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tickwire.channels import Channel
from tickwire.events import Event, Kline
from tickwire.marketdata import MarketDataUnavailable, SymbolInfo
from tickwire.sources.base import SourceHealth, SourceKind, SourceSink

from .feed import Feed


__all__ = ["BenchSource"]


class BenchSource:
    name = "bench"
    kind = SourceKind.LIVE

    def __init__(self, make_event: Callable[[int, int], Event]) -> None:
        self._make_event = make_event
        self._sink: SourceSink | None = None
        self._open: set[str] = set()
        self.feed = Feed(self._emit)

    def _emit(self, index: int, us: int) -> None:
        if self._sink is not None:
            self._sink.on_event(self._make_event(index, us))

    def attach(self, sink: SourceSink) -> None:
        self._sink = sink

    async def run(self) -> None:
        await asyncio.Event().wait()  # the feed runs under the harness's control task

    async def validate(self, channel: Channel) -> None:
        return None

    def open(self, channel: Channel) -> None:
        self._open.add(channel.name)

    def close(self, channel: Channel) -> None:
        self._open.discard(channel.name)

    def streams(self) -> list[str]:
        return sorted(self._open)

    def known_symbols(self) -> list[str] | None:
        return None

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        raise MarketDataUnavailable("the benchmark's feed keeps no history")

    async def symbols(self) -> list[SymbolInfo]:
        raise MarketDataUnavailable("the benchmark's feed lists no symbols")

    def health(self) -> SourceHealth:
        return SourceHealth(source=self.name, live=True)
