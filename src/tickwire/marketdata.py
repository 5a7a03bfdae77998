"""Market data over HTTP (docs/protocol.md, "Market data over HTTP"), pure: types and candle arithmetic.

``GET /api/v1/klines`` answers candles in the ``kline`` message's shape
(:class:`~.protocol.KlineData`); ``GET /api/v1/symbols`` answers
:class:`SymbolInfo`. Sources fill both; this module only knows the shapes,
the limits of a request and how interval boundaries fall. Nothing here
awaits or reads the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

import msgspec

from .channels import INTERVAL_SECONDS
from .errors import UpstreamError
from .events import Kline
from .messages import KlineData


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "QUOTE_ASSETS",
    "MarketDataUnavailable",
    "Precision",
    "SymbolInfo",
    "decimals",
    "interval_start",
    "kline_data",
    "last_candles",
    "previous_start",
    "split_symbol",
]

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
"""Candles per ``/api/v1/klines`` request, as Binance's ``/api/v3/klines``."""

QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "DAI")
"""Quote assets tried, longest first per ending, when a source does not say (replay)."""

_DAY_MS = 86_400_000


class Precision(msgspec.Struct, frozen=True):
    """Decimals of a price and of a quantity (from the venue's tick and step sizes)."""

    price: int
    qty: int


class SymbolInfo(msgspec.Struct, frozen=True):
    """One entry of ``GET /api/v1/symbols``; the field names are the wire's."""

    symbol: str
    base: str
    quote: str
    status: str  # the venue's word: TRADING, BREAK, HALT...
    precision: Precision


class MarketDataUnavailable(UpstreamError):
    """The source cannot answer a history or symbol request now (HTTP 503).

    Args:
        message: why, for the client.
        retry_after: seconds after which asking again may work, when known.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a symbol by its quote-asset ending; ``("BTCUSDT")`` -> ``("BTC", "USDT")``."""
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def decimals(value: str | Decimal) -> int:
    """Significant decimals: ``"0.01000000"`` -> 2, ``"1.00000000"`` -> 0 (tick and step sizes)."""
    exponent = Decimal(value).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def interval_start(ms: int, interval: str) -> int:
    """Open time (ms) of the ``interval`` candle that contains ``ms``; weeks start on Monday."""
    if interval == "1M":
        t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
        return int(dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC).timestamp() * 1000)
    span = INTERVAL_SECONDS[interval] * 1000
    if interval == "1w":  # the epoch was a Thursday
        return (ms - 4 * _DAY_MS) // span * span + 4 * _DAY_MS
    return ms // span * span


def previous_start(start: int, interval: str) -> int:
    """Open time of the candle before the one opening at ``start``."""
    if interval == "1M":
        return interval_start(start - 1, "1M")
    return start - INTERVAL_SECONDS[interval] * 1000


def last_candles(candles: Iterable[Kline], *, limit: int, end_time: int | None = None) -> list[Kline]:
    """The newest ``limit`` candles opening at or before ``end_time`` (ms), oldest first.

    ``candles`` may hold several versions of one candle: the last one given wins.
    """
    by_time: dict[int, Kline] = {}
    for candle in candles:
        if end_time is None or candle.open_time <= end_time:
            by_time[candle.open_time] = candle
    return [by_time[t] for t in sorted(by_time)[-limit:]] if limit > 0 else []


def kline_data(candle: Kline) -> KlineData:
    """The wire shape of a candle: the ``data`` of a ``kline`` message (time in seconds)."""
    return KlineData(
        candle.open_time // 1000,
        candle.open,
        candle.high,
        candle.low,
        candle.close,
        candle.volume,
        candle.final,
    )
