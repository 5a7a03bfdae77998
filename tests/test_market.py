"""The simulated market is self-consistent and reproducible."""

from __future__ import annotations

import random
from decimal import Decimal

from tickwire.events import Event, Kline, Trade
from tickwire.sources.market import SYMBOLS, Market


T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday


def _run(seed: int, seconds: int, step_ms: int = 100) -> tuple[Market, list[Event]]:
    market = Market(random.Random(seed), T0 + 250)
    events: list[Event] = []
    for t in range(T0 + 250 + step_ms, T0 + 250 + seconds * 1000, step_ms):
        events.extend(market.advance(t, lambda _: True))
    return market, events


def test_same_seed_same_market() -> None:
    _, a = _run(3, 20)
    _, b = _run(3, 20)
    _, c = _run(4, 20)
    assert a == b
    assert a != c


def test_every_symbol_has_realistic_prices_and_trades() -> None:
    _, events = _run(1, 30)
    assert len(SYMBOLS) >= 8
    for spec in SYMBOLS:
        trades = [e for e in events if isinstance(e, Trade) and e.symbol == spec.symbol]
        assert trades, spec.symbol
        ids = [t.id for t in trades]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # gapless trade ids
        for t in trades:
            assert abs(float(t.price) / spec.price - 1) < 0.2
            assert t.quantity > 0
            assert -t.price.as_tuple().exponent == spec.tick  # type: ignore[operator]


def test_klines_are_ohlcv_of_the_trades_and_close_at_boundaries() -> None:
    _, events = _run(2, 130)
    for interval, span in (("1s", 1000), ("1m", 60_000)):
        finals = [e for e in events if isinstance(e, Kline) and e.interval == interval and e.final]
        assert finals, interval
        for candle in finals:
            assert candle.open_time % span == 0
            trades = [
                e
                for e in events
                if isinstance(e, Trade)
                and e.symbol == candle.symbol
                and candle.open_time <= e.event_time < candle.open_time + span
            ]
            if candle.open_time < T0 + 1000 or (interval == "1m" and candle.open_time == T0):
                continue  # the first candle also holds pre-start history
            if not trades:
                assert candle.volume == 0 and candle.open == candle.close
                continue
            assert candle.open == trades[0].price
            assert candle.close == trades[-1].price
            assert candle.high == max(t.price for t in trades)
            assert candle.low == min(t.price for t in trades)
            assert candle.volume == sum((t.quantity for t in trades), Decimal(0))
            assert candle.event_time >= candle.open_time + span  # emitted when the interval closed


def test_ticker_follows_trades_and_book_straddles_last_price() -> None:
    market = Market(random.Random(5), T0)
    before = market.ticker("BTCUSDT")
    events = market.advance(T0 + 5000, lambda _: True)
    trades = [e for e in events if isinstance(e, Trade) and e.symbol == "BTCUSDT"]
    after = market.ticker("BTCUSDT")
    assert trades
    assert after.price == trades[-1].price
    assert after.trades == before.trades + len(trades)
    added = sum((t.quantity for t in trades), Decimal(0))
    assert abs(after.volume - before.volume - added) <= Decimal("0.00002")  # rounding of the sums only
    assert after.low <= after.price <= after.high
    assert after.change == after.price - after.open
    depth = market.depth("BTCUSDT")
    assert len(depth.bids) == len(depth.asks) == 10
    assert depth.bids[0][0] < after.price < depth.asks[0][0]
    assert [b[0] for b in depth.bids] == sorted((b[0] for b in depth.bids), reverse=True)
    assert [a[0] for a in depth.asks] == sorted(a[0] for a in depth.asks)
    assert (after.bid, after.ask) == (depth.bids[0][0], depth.asks[0][0])
    assert (after.bid_qty, after.ask_qty) == (depth.bids[0][1], depth.asks[0][1])


def test_24h_window_drops_old_buckets() -> None:
    market = Market(random.Random(9), T0)
    first = market.ticker("ETHUSDT")
    market.advance(T0 + 3 * 60_000, lambda _: False)
    later = market.ticker("ETHUSDT")
    assert later.open != first.open or later.high != first.high or later.volume != first.volume
