"""The gap arithmetic of the Binance backfill, pure: what a drop lost, what REST gives back."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tickwire.events import Event, Kline, Trade
from tickwire.sources.binance.gaps import (
    fill_klines,
    fill_trades,
    kline_gap,
    next_start,
    parse_rest_trades,
    trade_gap,
)


MIN = 60_000
T0 = 1_700_000_040_000  # a minute boundary


def trade(tid: int) -> Trade:
    return Trade(
        symbol="BTCUSDT", id=tid, price=Decimal(1), quantity=Decimal(1), buyer_taker=True, event_time=0
    )


def candle(t: int, *, final: bool = True, interval: str = "1m") -> Kline:
    d = Decimal(1)
    return Kline(
        symbol="BTCUSDT", interval=interval, open_time=t, open=d, high=d, low=d, close=d, volume=d,
        final=final, event_time=0,
    )  # fmt: skip


def ids(events: list[Event]) -> list[int]:
    assert all(isinstance(e, Trade) for e in events)
    return [e.id for e in events if isinstance(e, Trade)]


def open_times(events: list[Event]) -> list[int]:
    assert all(isinstance(e, Kline) for e in events)
    return [e.open_time for e in events if isinstance(e, Kline)]


def test_rest_trades_keep_the_venue_digits_and_the_taker_side() -> None:
    body = (
        b'[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",'
        b'"time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]'
    )
    (t,) = parse_rest_trades(body, "BNBBTC")
    assert (t.symbol, t.id, str(t.price), str(t.quantity), t.event_time) == (
        "BNBBTC", 28457, "4.00000100", "12.00000000", 1499865549590,
    )  # fmt: skip
    assert t.buyer_taker is False  # the buyer made, so the taker sold
    with pytest.raises(msgspec.ValidationError):
        parse_rest_trades(b'[{"id":"x"}]', "BNBBTC")


def test_a_trade_gap_is_the_ids_between_the_last_seen_and_the_first_new() -> None:
    assert trade_gap(100, trade(101)) is None
    assert trade_gap(100, trade(100)) is None
    assert trade_gap(100, trade(105)) == (101, 104)


def test_trades_fill_the_whole_gap_when_rest_reaches_back() -> None:
    rows = [trade(i) for i in range(90, 120)]  # more than the gap on both sides
    fill = fill_trades((101, 104), rows)
    assert ids(fill.events) == [101, 102, 103, 104]
    assert fill.lost is None


def test_trades_rest_cannot_reach_are_reported_lost_and_the_rest_published() -> None:
    rows = [trade(i) for i in range(1500, 2500)]  # the most recent 1000
    fill = fill_trades((101, 2000), rows)
    assert ids(fill.events) == list(range(1500, 2001))
    assert fill.lost == (101, 1499)


def test_trades_with_a_hole_are_published_only_after_it() -> None:
    rows = [trade(i) for i in (101, 102, 104, 105)]
    fill = fill_trades((101, 105), rows)
    assert ids(fill.events) == [104, 105]  # one range lost, nothing after it skipped
    assert fill.lost == (101, 103)
    assert fill_trades((101, 105), []) == ([], (101, 105))


def test_a_kline_gap_starts_at_the_candle_in_progress_or_after_the_last_final() -> None:
    assert kline_gap(T0, False, candle(T0, final=False)) is None  # the same candle goes on
    assert kline_gap(T0, True, candle(T0 + MIN, final=False)) is None  # the next one
    assert kline_gap(T0, False, candle(T0 + MIN, final=False)) == (T0, T0)  # its final was missed
    assert kline_gap(T0, True, candle(T0 + 4 * MIN)) == (T0 + MIN, T0 + 3 * MIN)


def test_month_candles_step_by_calendar() -> None:
    jan, feb, mar = 1_704_067_200_000, 1_706_745_600_000, 1_709_251_200_000  # 2024-01-01 .. 03-01
    assert next_start(jan, "1M") == feb and next_start(feb, "1M") == mar  # 31 days, then 29
    assert kline_gap(jan, True, candle(mar, interval="1M")) == (feb, feb)


def test_klines_fill_the_gap_as_finals_and_report_what_rest_lacks() -> None:
    rows = [candle(T0 + i * MIN, final=i < 9) for i in range(3, 10)]  # the newest is in progress
    fill = fill_klines((T0, T0 + 5 * MIN), rows)
    assert open_times(fill.events) == [T0 + i * MIN for i in (3, 4, 5)]
    assert all(isinstance(k, Kline) and k.final for k in fill.events)
    assert fill.lost == (T0, T0 + 2 * MIN)  # open times, inclusive
    whole = fill_klines((T0 + 3 * MIN, T0 + 8 * MIN), rows)
    assert len(whole.events) == 6 and whole.lost is None


def test_a_candle_before_the_first_live_one_is_final_whatever_rest_says() -> None:
    (k,) = fill_klines((T0, T0), [candle(T0, final=False)]).events
    assert isinstance(k, Kline) and k.final
