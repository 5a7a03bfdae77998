"""Binance candles and symbols for ``GET /api/v1/klines`` and ``/api/v1/symbols``, cached.

REST facts (rest-api.md of https://github.com/binance/binance-spot-api-docs):
``GET /api/v3/klines`` costs 2 request weight whatever its ``limit`` (1 to
1000) and answers rows ``[openTime, open, high, low, close, volume,
closeTime, ...]``, oldest first, the newest possibly in progress; with
``endTime`` the newest is the last opening at or before it.
``GET /api/v3/exchangeInfo`` costs 20 and lists each symbol's status, assets
and filters: ``PRICE_FILTER.tickSize`` and ``LOT_SIZE.stepSize`` give the
decimals of prices and quantities.

Theory of operation: a closed candle never changes, so closed candles are
kept per (symbol, interval); a request whose closed candles are all known
costs no REST at all, except for the candle in progress, which is fetched
alone (``limit=1``) and reused for ``live_for`` seconds. Everything goes
through the source's :class:`~.rest.RestClient`, so history shares the
source's weight budget (80 % of the venue's) and its ``Retry-After`` block;
when the budget or the venue says no, the request fails with
:class:`~tickwire.marketdata.MarketDataUnavailable` (HTTP 503) rather than wait.
The symbol list is fetched at most once per ``ttl`` and, when a refresh
fails, the previous list is served.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal

import msgspec

from ...events import Kline
from ...marketdata import (
    MarketDataUnavailable,
    Precision,
    SymbolInfo,
    decimals,
    interval_start,
    last_candles,
    previous_start,
)
from .bookparse import SymbolFilter, tick_and_step
from .rest import RestClient


__all__ = ["BinanceHistory", "parse_rest_klines", "parse_symbols"]

_KEYS = 256  # (symbol, interval) pairs whose closed candles are kept
_KEEP = 2000  # closed candles kept per pair


class _Symbol(msgspec.Struct):
    symbol: str
    status: str
    baseAsset: str = ""
    quoteAsset: str = ""
    filters: list[SymbolFilter] = []


class _Info(msgspec.Struct):
    symbols: list[_Symbol]


_info = msgspec.json.Decoder(_Info)


class _Row(msgspec.Struct, array_like=True):
    """One kline row; the fields after the close time are ignored."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time: int


_rows = msgspec.json.Decoder(list[_Row])
_MAX_DECIMALS = 8  # Binance writes every number with 8 decimals


def parse_symbols(body: bytes) -> list[SymbolInfo]:
    """``GET /api/v3/exchangeInfo``::

        {"timezone": "UTC", "serverTime": 1565246363776, "rateLimits": [...], "exchangeFilters": [],
         "symbols": [{"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC",
                      "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.00001000", ...},
                                  {"filterType": "LOT_SIZE", "stepSize": "0.00010000", ...}, ...], ...}]}

    A symbol without those filters gets 8 decimals, Binance's number format.
    """
    out: list[SymbolInfo] = []
    for s in _info.decode(body).symbols:
        tick, step = tick_and_step(s.filters)
        precision = Precision(
            decimals(tick) if tick else _MAX_DECIMALS, decimals(step) if step else _MAX_DECIMALS
        )
        out.append(SymbolInfo(s.symbol, s.baseAsset, s.quoteAsset, s.status, precision))
    return out


def parse_rest_klines(body: bytes, symbol: str, interval: str, recv_ms: int) -> list[Kline]:
    """``GET /api/v3/klines?symbol=S&interval=I&limit=N``, oldest first::

        [[1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
          "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
          "28.46694368", "0"], ...]

    Fields by index: open time, open, high, low, close, volume, close time,
    then more that are not used. A candle is final once its close time has passed.
    """
    return [_kline(r, symbol, interval, recv_ms) for r in _rows.decode(body)]


def _kline(r: _Row, symbol: str, interval: str, recv_ms: int) -> Kline:
    return Kline(
        symbol=symbol, interval=interval, open_time=r.open_time, open=r.open, high=r.high, low=r.low,
        close=r.close, volume=r.volume, final=r.close_time < recv_ms, event_time=recv_ms,
    )  # fmt: skip


class BinanceHistory:
    """Args:
    rest: the source's REST client (its weight budget is shared).
    ttl: seconds a symbol list is served before it is fetched again.
    live_for: seconds a fetched in-progress candle is reused.
    clock_ms: wall clock, ms.
    """

    def __init__(
        self, rest: RestClient, *, ttl: float = 3600.0, live_for: float = 1.0, clock_ms: Callable[[], int]
    ) -> None:
        self._rest = rest
        self._ttl = ttl
        self._live_for = live_for
        self._clock_ms = clock_ms
        self._closed: OrderedDict[tuple[str, str], dict[int, Kline]] = OrderedDict()
        self._live: dict[tuple[str, str], tuple[Kline, float]] = {}
        self._symbols: list[SymbolInfo] | None = None
        self._symbols_at = -float("inf")
        self._lock = asyncio.Lock()
        self.cache_hits = 0  # requests answered without REST, or with only the live candle

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        key = (symbol, interval)
        now = self._clock_ms()
        until = now if end_time is None else min(end_time, now)
        current = interval_start(now, interval)
        wanted = self._open_times(interval, until, limit)
        known = self._closed.get(key, {})
        if all(t in known for t in wanted if t != current):
            self._closed.move_to_end(key)
            self.cache_hits += 1
            candles = [known[t] for t in wanted if t != current]
            if wanted and wanted[-1] == current:
                candles.append(await self._current(symbol, interval, current))
            return candles
        params = {"symbol": symbol, "interval": interval, "limit": str(limit)}
        if end_time is not None:
            params["endTime"] = str(end_time)
        rows = await self._fetch(symbol, interval, params)
        self._keep(key, rows)
        return last_candles(rows, limit=limit, end_time=end_time)

    @staticmethod
    def _open_times(interval: str, until: int, limit: int) -> list[int]:
        """Open times of the ``limit`` candles ending with the one containing ``until``, oldest first."""
        times = [interval_start(until, interval)]
        while len(times) < limit:
            times.append(previous_start(times[-1], interval))
        return times[::-1]

    async def _current(self, symbol: str, interval: str, start: int) -> Kline:
        """The candle in progress, fetched alone and reused for ``live_for`` seconds."""
        held = self._live.get((symbol, interval))
        if held is not None and held[0].open_time == start and time.monotonic() - held[1] < self._live_for:
            return held[0]
        rows = await self._fetch(symbol, interval, {"symbol": symbol, "interval": interval, "limit": "1"})
        self._keep((symbol, interval), rows)
        if not rows:
            raise MarketDataUnavailable(f"Binance sent no candle for {symbol} {interval}")
        return rows[-1]

    async def _fetch(self, symbol: str, interval: str, params: dict[str, str]) -> list[Kline]:
        body, recv_ms, retry = await self._rest.get("/api/v3/klines", params)
        if body is None:
            raise _unavailable("klines", retry)
        try:
            return parse_rest_klines(body, symbol, interval, recv_ms)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MarketDataUnavailable(f"Binance sent unusable klines: {exc}") from exc

    def _keep(self, key: tuple[str, str], rows: list[Kline]) -> None:
        closed = self._closed.setdefault(key, {})
        self._closed.move_to_end(key)
        for row in rows:
            if row.final:
                closed[row.open_time] = row
            else:
                self._live[key] = (row, time.monotonic())
        if len(closed) > _KEEP:
            for t in sorted(closed)[: len(closed) - _KEEP]:
                del closed[t]
        while len(self._closed) > _KEYS:
            old, _ = self._closed.popitem(last=False)
            self._live.pop(old, None)

    async def symbols(self) -> list[SymbolInfo]:
        async with self._lock:  # one exchangeInfo (weight 20) for any number of waiting requests
            if self._symbols is not None and time.monotonic() - self._symbols_at < self._ttl:
                return self._symbols
            body, _, retry = await self._rest.get("/api/v3/exchangeInfo", {})
            try:
                if body is None:
                    raise _unavailable("exchangeInfo", retry)
                try:
                    self._symbols = parse_symbols(body)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise MarketDataUnavailable(f"Binance sent an unusable exchangeInfo: {exc}") from exc
            except MarketDataUnavailable:
                if self._symbols is None:
                    raise
                return self._symbols  # the last list is still the best answer there is
            self._symbols_at = time.monotonic()
            return self._symbols


def _unavailable(what: str, retry: float | None) -> MarketDataUnavailable:
    if retry is not None:
        return MarketDataUnavailable(
            f"Binance REST {what}: request weight budget in use, retry in {retry:.0f} s", retry_after=retry
        )
    return MarketDataUnavailable(f"Binance REST {what} did not answer")
