from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from tickwire.channels import INTERVALS, Delivery, Kind, parse_channel
from tickwire.errors import ErrorCode, ProtocolError


@pytest.mark.parametrize(
    ("raw", "name", "kind", "symbol", "interval", "user"),
    [
        ("price:btcusdt", "price:BTCUSDT", Kind.PRICE, "BTCUSDT", None, None),
        ("ticker:EthUsdt", "ticker:ETHUSDT", Kind.TICKER, "ETHUSDT", None, None),
        ("klines:btcusdt:1m", "klines:BTCUSDT:1m", Kind.KLINES, "BTCUSDT", "1m", None),
        ("klines:BTCUSDT:1M", "klines:BTCUSDT:1M", Kind.KLINES, "BTCUSDT", "1M", None),
        ("trades:solusdt", "trades:SOLUSDT", Kind.TRADES, "SOLUSDT", None, None),
        ("depth:BTCUSDT", "depth:BTCUSDT", Kind.DEPTH, "BTCUSDT", None, None),
        ("signals:btcusdt", "signals:BTCUSDT", Kind.SIGNALS, "BTCUSDT", None, None),
        ("orders:auth0|abc123", "orders:auth0|abc123", Kind.ORDERS, None, None, "auth0|abc123"),
        ("portfolio:a:b:c", "portfolio:a:b:c", Kind.PORTFOLIO, None, None, "a:b:c"),
        ("account:u123", "account:u123", Kind.ACCOUNT, None, None, "u123"),
    ],
)
def test_parse_normalizes(
    raw: str, name: str, kind: Kind, symbol: str | None, interval: str | None, user: str | None
) -> None:
    channel = parse_channel(raw)
    assert (channel.name, channel.kind, channel.symbol, channel.interval, channel.user) == (
        name,
        kind,
        symbol,
        interval,
        user,
    )


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("prices:BTCUSDT", "unknown channel kind 'prices'"),
        ("price", "kind:ARGUMENT"),
        ("price:", "malformed symbol"),
        ("price:BTC-USDT", "malformed symbol"),
        ("klines:BTCUSDT", "klines:SYMBOL:INTERVAL"),
        ("klines:BTCUSDT:2m", "unknown interval '2m'"),
        ("klines:BTCUSDT:1H", "unknown interval"),
        ("orders:", "user id"),
        ("orders:has space", "user id"),
        ("orders:" + "u" * 129, "user id"),
        ("x" * 500, "over 200"),
    ],
)
def test_parse_rejects_with_reason(raw: str, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_channel(raw)
    assert info.value.code is ErrorCode.INVALID_CHANNEL
    assert fragment in info.value.message
    assert info.value.channel is not None and len(info.value.channel) <= 200


def test_delivery_classes_and_types() -> None:
    assert parse_channel("price:BTCUSDT").delivery is Delivery.LATEST
    assert parse_channel("depth:BTCUSDT").delivery is Delivery.LATEST
    assert parse_channel("trades:BTCUSDT").delivery is Delivery.EVERY
    assert parse_channel("orders:u1").delivery is Delivery.EVERY
    assert parse_channel("klines:BTCUSDT:1m").message_type == "kline"
    assert parse_channel("orders:u1").is_private and parse_channel("orders:u1").is_publishable
    assert not parse_channel("price:BTCUSDT").is_publishable
    assert len(INTERVALS) == 16


@given(st.text(max_size=300))
def test_parse_never_raises_anything_but_protocol_errors(raw: str) -> None:
    try:
        channel = parse_channel(raw)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.INVALID_CHANNEL
    else:
        assert parse_channel(channel.name) == channel  # canonical names are fixed points


@pytest.mark.parametrize(
    ("raw", "canonical", "depth"),
    [
        ("book:btcusdt", "book:BTCUSDT:100", 100),
        ("book:ETHUSDT:20", "book:ETHUSDT:20", 20),
        ("book:X1:1000", "book:X1:1000", 1000),
    ],
)
def test_book_channels_name_their_depth(raw: str, canonical: str, depth: int) -> None:
    channel = parse_channel(raw)
    assert (channel.name, channel.depth, channel.symbol) == (canonical, depth, canonical.split(":")[1])
    assert channel.delivery is Delivery.STATE and channel.message_type == "book" and channel.is_market


@pytest.mark.parametrize("depth", ["15", "0100", "", "abc", "100:1", "²"])
def test_other_book_depths_are_refused_listing_the_allowed(depth: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_channel(f"book:BTCUSDT:{depth}")
    assert info.value.code is ErrorCode.INVALID_CHANNEL
    assert "10 20 50 100 500 1000" in info.value.message
