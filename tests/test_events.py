"""Each normalized event is published on the channels of its kind and symbol (and interval)."""

from __future__ import annotations

from decimal import Decimal

from tickwire.channels import parse_channel
from tickwire.events import Depth, Event, Kline, Ticker, Trade, channels_of


ONE = Decimal("1")


def _ticker(symbol: str) -> Ticker:
    return Ticker(
        symbol=symbol, price=ONE, open=ONE, high=ONE, low=ONE, change=ONE, change_percent=ONE,
        volume=ONE, quote_volume=ONE, trades=1, bid=ONE, bid_qty=ONE, ask=ONE, ask_qty=ONE, event_time=1,
    )  # fmt: skip


def _kline(symbol: str, interval: str) -> Kline:
    return Kline(
        symbol=symbol, interval=interval, open_time=0, open=ONE, high=ONE, low=ONE, close=ONE,
        volume=ONE, final=False, event_time=1,
    )  # fmt: skip


def _trade(symbol: str) -> Trade:
    return Trade(symbol=symbol, id=7, price=ONE, quantity=ONE, buyer_taker=True, event_time=1)


def _depth(symbol: str) -> Depth:
    return Depth(symbol=symbol, bids=((ONE, ONE),), asks=((ONE, ONE),), last_update_id=3, event_time=1)


def test_a_ticker_feeds_price_and_ticker() -> None:
    assert channels_of(_ticker("ETHUSDT")) == ("price:ETHUSDT", "ticker:ETHUSDT")


def test_a_kline_feeds_its_interval_only() -> None:
    assert channels_of(_kline("BTCUSDT", "1m")) == ("klines:BTCUSDT:1m",)
    assert channels_of(_kline("BTCUSDT", "1M")) == ("klines:BTCUSDT:1M",)  # a month, not a minute


def test_a_trade_and_a_depth_feed_their_own_kind() -> None:
    assert channels_of(_trade("BNBBTC")) == ("trades:BNBBTC",)
    assert channels_of(_depth("BNBBTC")) == ("depth:BNBBTC",)


def test_every_channel_is_already_in_canonical_spelling() -> None:
    events: list[Event] = [_ticker("ETHUSDT"), _kline("ETHUSDT", "4h"), _trade("ETHUSDT"), _depth("ETHUSDT")]
    names = [name for event in events for name in channels_of(event)]
    assert [parse_channel(name).name for name in names] == names  # the hub keys channels by this spelling
    assert len(set(names)) == len(names)
