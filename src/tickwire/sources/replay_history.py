"""What a capture tells about its market, for ``GET /api/v1/klines`` and ``/api/v1/symbols`` on a replay.

One pass over the capture, done on the first request: every candle its
kline frames (and REST kline snapshots) carried, with the index of the line
that carried it, so the replay can answer with the candles played so far,
as the venue would have at that moment; and, per symbol, the most decimals
seen in its prices and quantities. A capture has no ``exchangeInfo``, so
that precision is an estimate: Binance pads every number to 8 decimals, and
the trailing zeros are dropped before counting. Book levels (diffs and REST
snapshots) count too: the replay's book engine takes this precision, since
one from the first snapshot's digits alone would round a later diff's
quantity with more decimals (a real capture has one: 25.426189 after a
snapshot of 5 decimals), and a book must never show a quantity the venue
did not send.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from ..errors import UpstreamError
from ..events import Depth, Event, Kline, Ticker, Trade
from ..marketdata import Precision, decimals
from .binance.bookparse import is_book_stream, parse_diff, parse_rest_book
from .binance.parse import DataFrame, Normalizer, parse_frame, parse_rest_kline, stream_kind, symbol_of_stream


if TYPE_CHECKING:
    from .replay import Capture


__all__ = ["CaptureHistory"]

_UNSEEN = Precision(8, 8)  # Binance's own number format, for a symbol with no number seen


class CaptureHistory:
    """Candles and precisions of one capture (see the module docstring)."""

    def __init__(self, klines: list[tuple[int, Kline]], precision: dict[str, Precision]) -> None:
        self.klines = klines
        self._precision = precision

    @classmethod
    def scan(cls, records: Iterable[Capture]) -> CaptureHistory:
        klines: list[tuple[int, Kline]] = []
        prices: dict[str, int] = {}
        qtys: dict[str, int] = {}
        for index, event in _events(records):
            if isinstance(event, Kline):
                klines.append((index, event))
            price_values, qty_values = _numbers(event)
            prices[event.symbol] = max([prices.get(event.symbol, 0), *map(decimals, price_values)])
            qtys[event.symbol] = max([qtys.get(event.symbol, 0), *map(decimals, qty_values)])
        return cls(klines, {s: Precision(prices[s], qtys[s]) for s in prices})

    def played(self, symbol: str, interval: str, position: int) -> Iterator[Kline]:
        """Candles of ``symbol``/``interval`` carried by the first ``position`` lines, in order."""
        for index, candle in self.klines:
            if index >= position:
                return
            if candle.symbol == symbol and candle.interval == interval:
                yield candle

    def precision(self, symbol: str) -> Precision:
        return self._precision.get(symbol, _UNSEEN)


def _events(records: Iterable[Capture]) -> Iterator[tuple[int, Event | _BookLevels]]:
    norm = Normalizer()  # parse only: no de-duplication state is kept by parse()
    for index, record in enumerate(records):
        try:
            event = _event(norm, record)
        except (UpstreamError, msgspec.DecodeError, msgspec.ValidationError):
            continue  # the replay counts bad frames as it plays them
        if event is not None:
            yield index, event


class _BookLevels(msgspec.Struct, frozen=True):
    """Levels of a book diff or REST snapshot: only their digits matter here."""

    symbol: str
    levels: tuple[tuple[Decimal, Decimal], ...]


def _event(norm: Normalizer, record: Capture) -> Event | _BookLevels | None:
    if record.rest is not None and record.body is not None:
        if is_book_stream(record.rest):
            book = parse_rest_book(record.body.encode())
            return _BookLevels(symbol_of_stream(record.rest), book.bids + book.asks)
        if stream_kind(record.rest) != "kline":
            return None  # only candles are history; a REST ticker or book is one value
        interval = record.rest.partition("@kline_")[2]
        return parse_rest_kline(record.body.encode(), symbol_of_stream(record.rest), interval, record.t)
    if record.ws is not None:
        frame = parse_frame(record.ws)
        if isinstance(frame, DataFrame):
            if is_book_stream(frame.stream):
                diff = parse_diff(frame.data)
                return _BookLevels(diff.symbol, diff.bids + diff.asks)
            return norm.parse(frame.stream, frame.data, record.t)
    return None


def _numbers(event: Event | _BookLevels) -> tuple[list[Decimal], list[Decimal]]:
    """(prices, quantities) an event carries."""
    if isinstance(event, _BookLevels):
        return [p for p, _ in event.levels], [q for _, q in event.levels]
    if isinstance(event, Trade):
        return [event.price], [event.quantity]
    if isinstance(event, Kline):
        return [event.open, event.high, event.low, event.close], [event.volume]
    if isinstance(event, Ticker):
        return [event.price, event.bid, event.ask, event.high, event.low], [event.bid_qty, event.ask_qty]
    assert isinstance(event, Depth)
    levels = event.bids + event.asks
    return [p for p, _ in levels], [q for _, q in levels]
