"""A self-consistent simulated market, pure: a seeded RNG and times passed in.

Everything follows from one trade stream per symbol. Prices follow a
geometric random walk; each trade's quantity and taker side are drawn; the
24 h ticker is the aggregate of one-minute buckets over the rolling window;
every kline interval is the OHLCV aggregate of the same trades (closed at
each boundary); the book sits around the last trade, bids below asks. At
start-up a day of one-minute buckets is generated so the 24 h numbers are
complete from the first second.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from ..channels import INTERVAL_SECONDS
from ..events import Depth, Event, Kline, Ticker, Trade
from ..marketdata import Precision, SymbolInfo, interval_start, split_symbol


__all__ = ["SYMBOLS", "Market", "SymbolSpec"]

_DAY_MS = 86_400_000
_MINUTE_MS = 60_000
_KEEP_CLOSED = 1000  # closed candles kept per interval: one full /api/v1/klines answer


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    price: float  # starting price
    tick: int  # decimals of the price
    lot: int  # decimals of the quantity
    size: float  # typical trade size in base units
    trades_per_second: float
    volatility: float = 0.6  # annualized


SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTCUSDT", 97_500.0, 2, 5, 0.02, 12.0),
    SymbolSpec("ETHUSDT", 3_650.0, 2, 4, 0.4, 9.0),
    SymbolSpec("BNBUSDT", 690.0, 2, 3, 1.5, 3.0),
    SymbolSpec("SOLUSDT", 235.0, 2, 3, 6.0, 6.0, 0.8),
    SymbolSpec("XRPUSDT", 2.45, 4, 1, 900.0, 5.0, 0.8),
    SymbolSpec("ADAUSDT", 1.05, 4, 1, 1500.0, 3.0, 0.9),
    SymbolSpec("DOGEUSDT", 0.39, 5, 0, 5000.0, 4.0, 1.0),
    SymbolSpec("LTCUSDT", 105.0, 2, 3, 8.0, 2.0),
)


def _dec(value: float, places: int) -> Decimal:
    return Decimal(f"{value:.{places}f}")


@dataclass(slots=True)
class _Bar:
    """OHLCV of one candle or one minute bucket; ``count`` is the trade count."""

    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    quote: float = 0.0
    count: int = 0

    def add(self, price: float, qty: float) -> None:
        if self.count == 0 and self.volume == 0.0:
            self.open = self.high = self.low = price
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += qty
        self.quote += price * qty
        self.count += 1


@dataclass(slots=True)
class _SymbolState:
    spec: SymbolSpec
    price: float
    trade_id: int
    update_id: int
    minutes: deque[_Bar] = field(default_factory=deque)
    candles: dict[str, _Bar] = field(default_factory=dict)
    closed: dict[str, deque[_Bar]] = field(default_factory=dict)  # interval -> candles closed live


class Market:
    """The simulated market of :data:`SYMBOLS`.

    Args:
        rng: the only source of randomness (seed it for reproducible runs).
        now_ms: the start time; history covers the 24 h before it.
        specs: the symbols to simulate.
    """

    def __init__(self, rng: random.Random, now_ms: int, specs: tuple[SymbolSpec, ...] = SYMBOLS) -> None:
        self._rng = rng
        self._now = now_ms
        self._symbols: dict[str, _SymbolState] = {}
        for i, spec in enumerate(specs):
            state = _SymbolState(spec, spec.price, 1_000_000 * (i + 1), 5_000_000 * (i + 1))
            self._symbols[spec.symbol] = state
            self._history(state, now_ms)

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def symbol_info(self) -> list[SymbolInfo]:
        """Every simulated symbol, as ``GET /api/v1/symbols`` lists it."""
        out: list[SymbolInfo] = []
        for symbol, state in self._symbols.items():
            base, quote = split_symbol(symbol)
            out.append(SymbolInfo(symbol, base, quote, "TRADING", Precision(state.spec.tick, state.spec.lot)))
        return out

    def spec(self, symbol: str) -> SymbolSpec:
        return self._symbols[symbol].spec

    def last_price(self, symbol: str) -> float:
        """The last trade price, at the symbol's tick (what the ticker and the book sit around)."""
        state = self._symbols[symbol]
        return round(state.price, state.spec.tick)

    def _step_price(self, state: _SymbolState, dt_ms: float) -> float:
        sigma = state.spec.volatility * math.sqrt(dt_ms / (365 * _DAY_MS))
        state.price *= math.exp(self._rng.gauss(0.0, sigma))
        return round(state.price, state.spec.tick)

    def _draw_qty(self, spec: SymbolSpec) -> float:
        qty = spec.size * self._rng.lognormvariate(0.0, 1.0)
        return max(round(qty, spec.lot), 10.0**-spec.lot)

    def _history(self, state: _SymbolState, now_ms: int) -> None:
        """One-minute buckets for the day before ``now_ms``, ending in the current minute."""
        current = now_ms // _MINUTE_MS * _MINUTE_MS
        spec = state.spec
        for start in range(current - _DAY_MS + _MINUTE_MS, current, _MINUTE_MS):
            bar = _Bar(start, state.price, state.price, state.price, state.price)
            for _ in range(4):  # a few aggregate prints a minute shape the bar
                price = self._step_price(state, _MINUTE_MS / 4)
                qty = spec.size * spec.trades_per_second * 15 * self._rng.uniform(0.5, 1.5)
                bar.add(price, round(qty, spec.lot))
            bar.count = max(1, int(spec.trades_per_second * 60 * self._rng.uniform(0.7, 1.3)))
            state.minutes.append(bar)
            state.trade_id += bar.count
        state.minutes.append(_Bar(current, state.price, state.price, state.price, state.price))
        for interval in INTERVAL_SECONDS:
            start = interval_start(now_ms, interval)
            candle = _Bar(start, state.price, state.price, state.price, state.price)
            for bar in state.minutes:
                if bar.start >= start and bar.count:
                    if candle.count == 0:
                        candle.open = bar.open
                    candle.high = max(candle.high, bar.high)
                    candle.low = min(candle.low, bar.low)
                    candle.close = bar.close
                    candle.volume += bar.volume
                    candle.quote += bar.quote
                    candle.count += bar.count
            state.candles[interval] = candle

    # -- live ------------------------------------------------------------------

    def advance(self, now_ms: int, wanted: Callable[[str], bool]) -> list[Event]:
        """Trades and closed candles from the last call up to ``now_ms``.

        Only events on channels for which ``wanted(channel)`` is true are
        built; the state advances regardless, so the market is the same
        whoever watches it.
        """
        events: list[Event] = []
        dt_ms = now_ms - self._now
        if dt_ms <= 0:
            return events
        self._now = now_ms
        for state in self._symbols.values():
            spec = state.spec
            n = self._poisson(spec.trades_per_second * dt_ms / 1000)
            # the trades of a step happen at its end, the moment they are published: stamping
            # them earlier in the step would show the step length as end-to-end latency
            for t in [now_ms] * n:
                self._roll(state, t, events, wanted)
                price = self._step_price(state, dt_ms / max(n, 1))
                qty = self._draw_qty(spec)
                buyer_taker = self._rng.random() < 0.5
                self._record(state, t, price, qty)
                if wanted(f"trades:{spec.symbol}"):
                    events.append(
                        Trade(
                            symbol=spec.symbol,
                            id=state.trade_id,
                            price=_dec(price, spec.tick),
                            quantity=_dec(qty, spec.lot),
                            buyer_taker=buyer_taker,
                            event_time=t,
                        )
                    )
            self._roll(state, now_ms, events, wanted)
        return events

    def _poisson(self, lam: float) -> int:
        # Knuth's method: fine for the small means of one tick
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self._rng.random()
            if p <= limit:
                return k
            k += 1

    def _record(self, state: _SymbolState, t: int, price: float, qty: float) -> None:
        state.trade_id += 1
        state.update_id += self._rng.randint(1, 5)
        state.minutes[-1].add(price, qty)
        for candle in state.candles.values():
            candle.add(price, qty)

    def _roll(self, state: _SymbolState, t: int, events: list[Event], wanted: Callable[[str], bool]) -> None:
        """Close buckets and candles whose period ended before ``t``."""
        minute = t // _MINUTE_MS * _MINUTE_MS
        close = round(state.price, state.spec.tick)
        while state.minutes[-1].start < minute:
            nxt = state.minutes[-1].start + _MINUTE_MS
            state.minutes.append(_Bar(nxt, close, close, close, close))
        while state.minutes and state.minutes[0].start <= t - _DAY_MS:
            state.minutes.popleft()
        for interval, candle in state.candles.items():
            start = interval_start(t, interval)
            if candle.start == start:
                continue
            channel = f"klines:{state.spec.symbol}:{interval}"
            if wanted(channel):
                events.append(self._kline(state.spec, interval, candle, True, t))
            state.closed.setdefault(interval, deque(maxlen=_KEEP_CLOSED)).append(candle)
            state.candles[interval] = _Bar(start, close, close, close, close)

    # -- snapshots of the current state ----------------------------------------

    def ticker(self, symbol: str) -> Ticker:
        state = self._symbols[symbol]
        spec = state.spec
        bars = [b for b in state.minutes if b.start > self._now - _DAY_MS]
        first = bars[0]
        open_ = first.open
        high = max(b.high for b in bars)
        low = min(b.low for b in bars)
        last = round(state.price, spec.tick)
        high, low = max(high, last), min(low, last)
        bid, ask = self._touch(state)
        change = last - open_
        return Ticker(
            symbol=symbol,
            price=_dec(last, spec.tick),
            open=_dec(open_, spec.tick),
            high=_dec(high, spec.tick),
            low=_dec(low, spec.tick),
            change=_dec(change, spec.tick),
            change_percent=_dec(100 * change / open_, 3),
            volume=_dec(sum(b.volume for b in bars), spec.lot),
            quote_volume=_dec(sum(b.quote for b in bars), 2),
            trades=sum(b.count for b in bars),
            bid=_dec(bid, spec.tick),
            bid_qty=_dec(self._level_qty(state, 0, True), spec.lot),
            ask=_dec(ask, spec.tick),
            ask_qty=_dec(self._level_qty(state, 0, False), spec.lot),
            event_time=self._now,
        )

    def _touch(self, state: _SymbolState) -> tuple[float, float]:
        tick = 10.0**-state.spec.tick
        last = round(state.price, state.spec.tick)
        return last - tick, last + tick

    def _level_qty(self, state: _SymbolState, level: int, bid: bool) -> float:
        # deterministic per (update id, level, side): ticker and book agree on the touch
        seed = state.update_id * 31 + level * 2 + (1 if bid else 0)
        size = state.spec.size * (1.0 + (seed * 2654435761 % 1000) / 250.0) * (1 + level / 3)
        return max(round(size, state.spec.lot), 10.0**-state.spec.lot)

    def depth(self, symbol: str, levels: int = 10) -> Depth:
        state = self._symbols[symbol]
        spec = state.spec
        tick = 10.0**-spec.tick
        bid, ask = self._touch(state)
        bids = tuple(
            (_dec(bid - i * tick, spec.tick), _dec(self._level_qty(state, i, True), spec.lot))
            for i in range(levels)
        )
        asks = tuple(
            (_dec(ask + i * tick, spec.tick), _dec(self._level_qty(state, i, False), spec.lot))
            for i in range(levels)
        )
        return Depth(
            symbol=symbol, bids=bids, asks=asks, last_update_id=state.update_id, event_time=self._now
        )

    def kline(self, symbol: str, interval: str) -> Kline:
        state = self._symbols[symbol]
        return self._kline(state.spec, interval, state.candles[interval], False, self._now)

    @staticmethod
    def _kline(spec: SymbolSpec, interval: str, bar: _Bar, final: bool, t: int) -> Kline:
        return Kline(
            symbol=spec.symbol,
            interval=interval,
            open_time=bar.start,
            open=_dec(bar.open, spec.tick),
            high=_dec(bar.high, spec.tick),
            low=_dec(bar.low, spec.tick),
            close=_dec(bar.close, spec.tick),
            volume=_dec(bar.volume, spec.lot),
            final=final,
            event_time=t,
        )

    # -- history (GET /api/v1/klines) --------------------------------------------

    def history(self, symbol: str, interval: str, *, limit: int, end_time: int | None = None) -> list[Kline]:
        """The newest ``limit`` candles opening at or before ``end_time`` (ms), oldest first.

        Candles closed since start are the very bars whose final ``kline`` was
        published; older ones are aggregated from the day of one-minute
        buckets (none for ``1s``); the last one is the candle in progress,
        the same bar the ``klines:`` channel shows.
        """
        state = self._symbols[symbol]
        current = state.candles[interval]
        closed = list(state.closed.get(interval, ()))
        bars = closed
        enough = end_time is None and len(closed) + 1 >= limit
        if interval != "1s" and not enough:
            first = closed[0].start if closed else current.start
            bars = self._from_minutes(state, interval, before=first) + closed
        shown = [(bar, True) for bar in bars] + [(current, False)]
        if end_time is not None:
            shown = [(bar, final) for bar, final in shown if bar.start <= end_time]
        return [self._kline(state.spec, interval, bar, final, self._now) for bar, final in shown[-limit:]]

    @staticmethod
    def _from_minutes(state: _SymbolState, interval: str, *, before: int) -> list[_Bar]:
        """Candles of ``interval`` built from the minute buckets that open before ``before``.

        A bucket without trades only sets the price of a candle that has none
        either, as a live candle's first trade replaces its opening price.
        """
        out: list[_Bar] = []
        for minute in state.minutes:
            if minute.start >= before:
                break
            start = interval_start(minute.start, interval)
            if not out or out[-1].start != start:
                out.append(_Bar(start, minute.open, minute.high, minute.low, minute.close))
            bar = out[-1]
            if not minute.count:
                continue
            if bar.count == 0:
                bar.open, bar.high, bar.low = minute.open, minute.high, minute.low
            bar.high = max(bar.high, minute.high)
            bar.low = min(bar.low, minute.low)
            bar.close = minute.close
            bar.volume += minute.volume
            bar.quote += minute.quote
            bar.count += minute.count
        return out
