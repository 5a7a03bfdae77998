"""Candle arithmetic of the HTTP market-data API: interval boundaries, history windows, symbol names."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tickwire.events import Kline
from tickwire.marketdata import (
    decimals,
    interval_start,
    kline_data,
    last_candles,
    previous_start,
    split_symbol,
)
from tickwire.messages import KlineData


def _ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp() * 1000)


def _candle(open_time: int, close: str = "1", *, final: bool = True) -> Kline:
    d = Decimal(close)
    return Kline(
        symbol="BTCUSDT", interval="1m", open_time=open_time, open=d, high=d, low=d, close=d,
        volume=Decimal("2.5"), final=final, event_time=open_time + 59_999,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("BTCUSDT", ("BTC", "USDT")),
        ("ETHBTC", ("ETH", "BTC")),
        ("BTCFDUSD", ("BTC", "FDUSD")),  # a five-letter quote
        ("BNBETH", ("BNB", "ETH")),
        ("USDT", ("USDT", "")),  # a bare quote asset has no base
        ("XYZABC", ("XYZABC", "")),  # no known quote
    ],
)
def test_split_symbol(symbol: str, expected: tuple[str, str]) -> None:
    assert split_symbol(symbol) == expected


@pytest.mark.parametrize(
    ("size", "places"),
    [("0.01000000", 2), ("1.00000000", 0), ("0.00000100", 6), ("10", 0), ("1E+1", 0), (Decimal("0.5"), 1)],
)
def test_decimals_of_tick_and_step_sizes(size: str | Decimal, places: int) -> None:
    assert decimals(size) == places


def test_interval_start_cuts_at_the_interval() -> None:
    t = _ms(2026, 1, 1, 13, 47, 12) + 345
    assert interval_start(t, "1s") == _ms(2026, 1, 1, 13, 47, 12)
    assert interval_start(t, "1m") == _ms(2026, 1, 1, 13, 47)
    assert interval_start(t, "15m") == _ms(2026, 1, 1, 13, 45)
    assert interval_start(t, "4h") == _ms(2026, 1, 1, 12)
    assert interval_start(t, "1d") == _ms(2026, 1, 1)
    boundary = _ms(2026, 1, 1, 13, 47)
    assert interval_start(boundary, "1m") == boundary  # a boundary is its own start


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    thursday = _ms(2026, 1, 1, 9)
    assert interval_start(thursday, "1w") == _ms(2025, 12, 29)  # the Monday before
    assert interval_start(_ms(2025, 12, 28, 23, 59), "1w") == _ms(2025, 12, 22)  # a Sunday: the week before
    assert interval_start(_ms(2026, 3, 31, 23, 59), "1M") == _ms(2026, 3, 1)
    assert interval_start(_ms(2024, 2, 29, 12), "1M") == _ms(2024, 2, 1)


def test_previous_start_steps_back_one_candle() -> None:
    assert previous_start(_ms(2026, 1, 1, 12), "1h") == _ms(2026, 1, 1, 11)
    assert previous_start(_ms(2026, 1, 5), "1w") == _ms(2025, 12, 29)
    assert previous_start(_ms(2026, 3, 1), "1M") == _ms(2026, 2, 1)  # 28 days back, not 30
    assert previous_start(_ms(2026, 1, 1), "1M") == _ms(2025, 12, 1)  # across a year


def test_last_candles_keeps_the_newest_oldest_first() -> None:
    candles = [_candle(t * 60_000) for t in (3, 1, 2, 5, 4)]
    assert [c.open_time // 60_000 for c in last_candles(candles, limit=3)] == [3, 4, 5]
    assert [c.open_time // 60_000 for c in last_candles(candles, limit=10)] == [1, 2, 3, 4, 5]
    assert last_candles(candles, limit=0) == []


def test_last_candles_stops_at_end_time_inclusive() -> None:
    candles = [_candle(t * 60_000) for t in range(1, 8)]
    got = last_candles(candles, limit=2, end_time=4 * 60_000)
    assert [c.open_time // 60_000 for c in got] == [3, 4]
    assert last_candles(candles, limit=2, end_time=0) == []


def test_last_candles_a_later_version_of_a_candle_wins() -> None:
    open_ = _candle(60_000, "10", final=False)
    closed = _candle(60_000, "11", final=True)
    assert last_candles([open_, closed], limit=5) == [closed]
    assert last_candles([closed, open_], limit=5) == [open_]  # the last given, not the final one


def test_kline_data_is_the_wire_shape_in_seconds() -> None:
    candle = _candle(1_767_225_660_000, "42.10", final=False)
    d = Decimal("42.10")
    assert kline_data(candle) == KlineData(1_767_225_660, d, d, d, d, Decimal("2.5"), False)
    assert str(kline_data(candle).close) == "42.10"  # the venue's digits kept
