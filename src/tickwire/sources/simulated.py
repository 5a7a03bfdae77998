"""The simulated source: the embedded default, a seeded market in this process.

It is a mode the operator chooses (``--source simulated``) and ``/health``
says so; it is never a fallback for a real upstream that is down.
Cadences follow Binance's: tickers every 500 ms (Binance: 1000 ms), klines
every second, the book every 100 ms, trades as they happen. A symbol with an
open ``book:`` channel gets a full book (:mod:`.simbook`): a snapshot when
its first depth opens, then a diff every step; it is dropped with its last
depth.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from ..channels import Channel, Kind
from ..clock import wall_ms
from ..config import Settings
from ..errors import ErrorCode, ProtocolError
from ..events import BookUpdate, Event, Kline
from ..marketdata import SymbolInfo
from .base import SourceHealth, SourceKind, SourceSink
from .market import Market
from .simbook import SimBook


__all__ = ["SimulatedSource"]

_TICK_S = 0.1
_TICKER_EVERY = 5  # ticks
_KLINE_EVERY = 10


class SimulatedSource:
    name = "simulated"
    kind = SourceKind.SIMULATED

    def __init__(
        self,
        *,
        seed: int = 42,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self._clock_ms = clock_ms
        self._seed = seed
        self.market = Market(random.Random(seed), clock_ms())
        self.books: dict[str, SimBook] = {}  # symbol -> its full book, while a book channel is open
        self._open: dict[str, Channel] = {}
        self._sink: SourceSink | None = None
        self._ticks = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulatedSource:
        return cls(seed=settings.seed)

    def attach(self, sink: SourceSink) -> None:
        self._sink = sink

    async def validate(self, channel: Channel) -> None:
        self._check(channel.symbol, channel.name)

    def _check(self, symbol: str | None, channel: str | None = None) -> None:
        if symbol not in self.market.symbols:
            raise ProtocolError(
                ErrorCode.UNKNOWN_SYMBOL,
                f"the simulated market does not list {symbol}; it lists {', '.join(self.market.symbols)}",
                channel=channel,
            )

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        """The market's own history, up to its last step (:meth:`Market.history`)."""
        self._check(symbol)
        return self.market.history(symbol, interval, limit=limit, end_time=end_time)

    async def symbols(self) -> list[SymbolInfo]:
        return self.market.symbol_info()

    def open(self, channel: Channel) -> None:
        self._open[channel.name] = channel
        if channel.kind is Kind.BOOK:
            self._open_book(channel)
            return
        event = self._current(channel)
        if event is not None:
            self._emit([event])

    def close(self, channel: Channel) -> None:
        self._open.pop(channel.name, None)
        symbol = channel.symbol
        if channel.kind is Kind.BOOK and symbol is not None:
            if not any(c.kind is Kind.BOOK and c.symbol == symbol for c in self._open.values()):
                self.books.pop(symbol, None)

    def _open_book(self, channel: Channel) -> None:
        """The first depth of a symbol builds its book and sends the snapshot; the ingest
        serves further depths from its own copy."""
        symbol = channel.symbol
        if symbol is None or symbol in self.books:
            return
        book = SimBook(
            self.market.spec(symbol),
            self.market.last_price(symbol),
            random.Random(f"{self._seed}:{symbol}"),
            update_id=self._clock_ms(),
        )
        self.books[symbol] = book
        self._emit([book.snapshot(self._clock_ms())])

    def _book_updates(self, now_ms: int) -> list[BookUpdate]:
        updates: list[BookUpdate] = []
        for symbol, book in self.books.items():
            update = book.step(self.market.last_price(symbol), now_ms)
            if update is not None:
                updates.append(update)
        return updates

    def known_symbols(self) -> list[str]:
        """The symbols this market lists (published for ``--role gateway`` validation)."""
        return list(self.market.symbols)

    def streams(self) -> list[str]:
        return sorted(self._open)

    def health(self) -> SourceHealth:
        return SourceHealth(source=self.name, simulated=True, live=True, streams=len(self._open))

    def _current(self, channel: Channel) -> Event | None:
        symbol = channel.symbol
        if symbol is None:
            return None
        if channel.kind in (Kind.PRICE, Kind.TICKER):
            return self.market.ticker(symbol)
        if channel.kind is Kind.DEPTH:
            return self.market.depth(symbol)
        if channel.kind is Kind.KLINES and channel.interval is not None:
            return self.market.kline(symbol, channel.interval)
        return None

    def _emit(self, events: list[Event]) -> None:
        if self._sink is not None:
            for event in events:
                self._sink.on_event(event)

    def step(self) -> None:
        """Advance the market to now and emit what the open channels see."""
        self._ticks += 1
        now = self._clock_ms()
        events = self.market.advance(now, self._open.__contains__)
        every = self._ticks
        for channel in list(self._open.values()):
            kind = channel.kind
            if (
                kind is Kind.DEPTH
                or (kind is Kind.KLINES and every % _KLINE_EVERY == 0)
                or (kind is Kind.TICKER and every % _TICKER_EVERY == 0)
                or (
                    kind is Kind.PRICE
                    and every % _TICKER_EVERY == 0
                    and f"ticker:{channel.symbol}" not in self._open
                )
            ):
                event = self._current(channel)
                if event is not None:
                    events.append(event)
        events += self._book_updates(now)
        self._emit(events)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            self.step()
