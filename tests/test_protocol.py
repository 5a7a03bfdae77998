from __future__ import annotations

import json
import typing
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, strategies as st

from tickwire import messages
from tickwire.client import messages as client_messages
from tickwire.errors import ErrorCode, ProtocolError
from tickwire.events import Depth, Kline, Ticker, Trade, channels_of
from tickwire.frames import text_frame
from tickwire.protocol import (
    Auth,
    List,
    Ping,
    Subscribe,
    Unsubscribe,
    as_snapshot,
    encode_authenticated,
    encode_connected,
    encode_error,
    encode_event,
    encode_pong,
    encode_publication,
    encode_status,
    encode_subscribed,
    encode_subscriptions,
    encode_unsubscribed,
    iso_time,
    parse_client,
)


def test_parse_each_client_type() -> None:
    assert parse_client('{"type":"subscribe","channels":["price:BTCUSDT"],"id":1}') == Subscribe(
        ["price:BTCUSDT"], 1
    )
    assert parse_client(b'{"type":"unsubscribe","channels":["a"]}') == Unsubscribe(["a"])
    assert parse_client('{"type":"ping","id":"abc"}') == Ping("abc")
    assert parse_client('{"type":"auth","token":"t"}') == Auth("t")
    assert parse_client('{"type":"list","extra":"ignored"}') == List()


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [
        ("not json", ErrorCode.INVALID_MESSAGE, None),
        ("[1,2]", ErrorCode.INVALID_MESSAGE, None),
        ('"str"', ErrorCode.INVALID_MESSAGE, None),
        ("{}", ErrorCode.INVALID_MESSAGE, None),
        ('{"type":5,"id":3}', ErrorCode.INVALID_MESSAGE, 3),
        ('{"type":"subscribe","id":true}', ErrorCode.INVALID_MESSAGE, None),
        ('{"type":"subscribe","id":{"a":1}}', ErrorCode.INVALID_MESSAGE, None),
        ('{"type":"nope","id":"x"}', ErrorCode.UNKNOWN_TYPE, "x"),
        ('{"type":"subscribe","id":7}', ErrorCode.INVALID_MESSAGE, 7),
        ('{"type":"subscribe","channels":"price:BTCUSDT","id":7}', ErrorCode.INVALID_MESSAGE, 7),
        ('{"type":"subscribe","channels":[1,2]}', ErrorCode.INVALID_MESSAGE, None),
        ('{"type":"auth","token":42,"id":1}', ErrorCode.INVALID_MESSAGE, 1),
    ],
)
def test_parse_errors_carry_code_and_id(frame: str, code: ErrorCode, ref: object) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client(frame)
    assert info.value.code is code
    assert info.value.ref == ref


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_parse_arbitrary_input_only_raises_protocol_errors(frame: bytes | str) -> None:
    try:
        parse_client(frame)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.INVALID_MESSAGE, ErrorCode.UNKNOWN_TYPE)


def test_iso_time_is_utc_with_millis() -> None:
    assert iso_time(1701806400000) == "2023-12-05T20:00:00.000Z"
    assert iso_time(1701806400123) == "2023-12-05T20:00:00.123Z"


def test_control_messages_match_protocol_shapes() -> None:
    connected = json.loads(encode_connected("ws_1_abc", 1701806400000))
    assert connected == {
        "type": "connected",
        "clientId": "ws_1_abc",
        "authenticated": False,
        "timestamp": "2023-12-05T20:00:00.000Z",
    }
    assert json.loads(encode_subscribed("price:BTCUSDT", 0, 9)) == {
        "type": "subscribed",
        "channel": "price:BTCUSDT",
        "timestamp": "1970-01-01T00:00:00.000Z",
        "id": 9,
    }
    error = ProtocolError(ErrorCode.INVALID_CHANNEL, "bad", channel="prices:X", ref="r")
    assert json.loads(encode_error(error, 0)) == {
        "type": "error",
        "code": "INVALID_CHANNEL",
        "message": "bad",
        "channel": "prices:X",
        "timestamp": "1970-01-01T00:00:00.000Z",
        "id": "r",
    }
    assert json.loads(encode_status("price:BTCUSDT", False, 0, "upstream disconnected")) == {
        "type": "status",
        "channel": "price:BTCUSDT",
        "status": "stale",
        "reason": "upstream disconnected",
        "timestamp": "1970-01-01T00:00:00.000Z",
    }


def D(s: str) -> Decimal:
    return Decimal(s)


TICKER = Ticker(
    symbol="ETHUSDT",
    price=D("3650.00000000"),
    open=D("3524.5"),
    high=D("3700.0"),
    low=D("3500.0"),
    change=D("125.5"),
    change_percent=D("3.56"),
    volume=D("123456.7"),
    quote_volume=D("450000000.0"),
    trades=901234,
    bid=D("3649.5"),
    bid_qty=D("1.2"),
    ask=D("3650.5"),
    ask_qty=D("0.8"),
    event_time=1701806400000,
)


def test_ticker_feeds_price_and_ticker_shapes_keeping_digits() -> None:
    assert channels_of(TICKER) == ("price:ETHUSDT", "ticker:ETHUSDT")
    raw = encode_event("price:ETHUSDT", 42, TICKER)
    assert b'"price":3650.00000000' in raw  # the venue's digits, not a float's
    price = json.loads(raw)
    assert price == {
        "type": "price",
        "channel": "price:ETHUSDT",
        "symbol": "ETHUSDT",
        "seq": 42,
        "data": {
            "price": 3650.0,
            "change24h": 125.5,
            "changePercent24h": 3.56,
            "high24h": 3700.0,
            "low24h": 3500.0,
            "volume24h": 123456.7,
            "timestamp": 1701806400000,
        },
    }
    ticker = json.loads(encode_event("ticker:ETHUSDT", 7, TICKER))
    assert ticker["type"] == "ticker" and ticker["seq"] == 7
    assert set(ticker["data"]) == {
        "price", "bid", "ask", "bidQty", "askQty", "open24h", "high24h", "low24h", "change24h",
        "changePercent24h", "volume24h", "quoteVolume24h", "trades24h", "timestamp",
    }  # fmt: skip
    assert ticker["data"]["trades24h"] == 901234


def test_kline_trade_depth_shapes() -> None:
    kline = Kline(
        symbol="BTCUSDT", interval="1m", open_time=1701806400000, open=D("97500.0"), high=D("97600.0"),
        low=D("97400.0"), close=D("97523.45"), volume=D("123.45"), final=False, event_time=1701806401000,
    )  # fmt: skip
    msg = json.loads(encode_event("klines:BTCUSDT:1m", 9, kline))
    assert msg == {
        "type": "kline",
        "channel": "klines:BTCUSDT:1m",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "seq": 9,
        "data": {
            "time": 1701806400,
            "open": 97500.0,
            "high": 97600.0,
            "low": 97400.0,
            "close": 97523.45,
            "volume": 123.45,
            "isFinal": False,
        },
    }
    trade = Trade(
        symbol="BTCUSDT", id=12345, price=D("97523.45"), quantity=D("0.015"), buyer_taker=True,
        event_time=1701806400000,
    )  # fmt: skip
    assert json.loads(encode_event("trades:BTCUSDT", 1001, trade))["data"] == {
        "id": 12345,
        "price": 97523.45,
        "quantity": 0.015,
        "side": "buy",
        "timestamp": 1701806400000,
    }
    depth = Depth(
        symbol="BTCUSDT",
        bids=((D("97523.4"), D("1.5")), (D("97523.3"), D("0.2"))),
        asks=((D("97523.5"), D("0.7")),),
        last_update_id=160,
        event_time=1701806400000,
    )
    assert json.loads(encode_event("depth:BTCUSDT", 77, depth))["data"] == {
        "bids": [[97523.4, 1.5], [97523.3, 0.2]],
        "asks": [[97523.5, 0.7]],
        "lastUpdateId": 160,
        "timestamp": 1701806400000,
    }


def test_publication_keeps_raw_data_and_snapshot_marks_it() -> None:
    raw = encode_publication("order", "orders:u1", 3, msgspec.Raw(b'{"id":"o1","qty":1.50}'))
    assert raw == b'{"type":"order","channel":"orders:u1","seq":3,"data":{"id":"o1","qty":1.50}}'
    snap = json.loads(as_snapshot(raw))
    assert snap["snapshot"] is True and snap["seq"] == 3 and snap["type"] == "order"


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_lengths_follow_rfc6455(size: int) -> None:
    payload = b"x" * size
    frame = text_frame(payload)
    assert frame[0] == 0x81 and frame.endswith(payload)
    if size < 126:
        assert frame[1] == size
    elif size < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == size
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == size


# --- the exact bytes, and one set of structs for both sides -------------------------------

NOW = 1701806400123
TS = '"timestamp":"2023-12-05T20:00:00.123Z"'
KLINE = Kline(
    symbol="BTCUSDT", interval="1m", open_time=1701806400000, open=D("97500.0"), high=D("97600.0"),
    low=D("97400.0"), close=D("97523.45"), volume=D("123.45"), final=True, event_time=1701806401000,
)  # fmt: skip
TRADE = Trade(
    symbol="BTCUSDT", id=12345, price=D("97523.45"), quantity=D("0.015"), buyer_taker=False,
    event_time=1701806400000,
)  # fmt: skip
DEPTH = Depth(
    symbol="BTCUSDT", bids=((D("97523.4"), D("1.5")),), asks=((D("97523.5"), D("0.7")),),
    last_update_id=160, event_time=1701806400000,
)  # fmt: skip

# Every encoder's output byte for byte, as the gateway sent it before the server and the
# client shared one set of structs; field order and omitted defaults are part of it.
GOLDEN: list[tuple[bytes, str]] = [
    (
        encode_connected("ws_1_abc", NOW),
        '{"type":"connected","clientId":"ws_1_abc","authenticated":false,' + TS + "}",
    ),
    (
        encode_connected("ws_1_abc", NOW, user="u1"),
        '{"type":"connected","clientId":"ws_1_abc","authenticated":true,' + TS + ',"userId":"u1"}',
    ),
    (encode_subscribed("price:BTCUSDT", NOW), '{"type":"subscribed","channel":"price:BTCUSDT",' + TS + "}"),
    (
        encode_subscribed("price:BTCUSDT", NOW, 9),
        '{"type":"subscribed","channel":"price:BTCUSDT",' + TS + ',"id":9}',
    ),
    (
        encode_unsubscribed("orders:u1", NOW, "r", reason="re-authenticated"),
        '{"type":"unsubscribed","channel":"orders:u1",' + TS + ',"reason":"re-authenticated","id":"r"}',
    ),
    (encode_unsubscribed("orders:u1", NOW), '{"type":"unsubscribed","channel":"orders:u1",' + TS + "}"),
    (encode_pong(NOW, "p"), '{"type":"pong","timestamp":1701806400123,"id":"p"}'),
    (encode_pong(NOW), '{"type":"pong","timestamp":1701806400123}'),
    (
        encode_authenticated("u1", 1701810000000, 3),
        '{"type":"authenticated","userId":"u1","expiresAt":1701810000000,"id":3}',
    ),
    (encode_authenticated("u1", None), '{"type":"authenticated","userId":"u1"}'),
    (
        encode_subscriptions(["price:BTCUSDT", "trades:BTCUSDT"], 4),
        '{"type":"subscriptions","channels":["price:BTCUSDT","trades:BTCUSDT"],"id":4}',
    ),
    (encode_subscriptions([]), '{"type":"subscriptions","channels":[]}'),
    (
        encode_error(ProtocolError(ErrorCode.INVALID_CHANNEL, "bad", channel="prices:X", ref="r"), NOW),
        '{"type":"error","code":"INVALID_CHANNEL","message":"bad",' + TS + ',"channel":"prices:X","id":"r"}',
    ),
    (
        encode_error(ProtocolError(ErrorCode.RATE_LIMITED, "slow down"), NOW),
        '{"type":"error","code":"RATE_LIMITED","message":"slow down",' + TS + "}",
    ),
    (
        encode_status("price:BTCUSDT", False, NOW, "upstream disconnected"),
        '{"type":"status","channel":"price:BTCUSDT","status":"stale",'
        + TS
        + ',"reason":"upstream disconnected"}',
    ),
    (
        encode_status("price:BTCUSDT", True, NOW),
        '{"type":"status","channel":"price:BTCUSDT","status":"live",' + TS + "}",
    ),
    (
        encode_status("trades:BTCUSDT", True, NOW, gap=(1001, 2040)),
        '{"type":"status","channel":"trades:BTCUSDT","status":"live",'
        + TS
        + ',"gap":{"from":1001,"to":2040}}',
    ),
    (
        encode_event("price:ETHUSDT", 42, TICKER),
        '{"type":"price","channel":"price:ETHUSDT","symbol":"ETHUSDT","seq":42,"data":{"price":3650.00000000,'
        '"change24h":125.5,"changePercent24h":3.56,"high24h":3700.0,"low24h":3500.0,"volume24h":123456.7,'
        '"timestamp":1701806400000}}',
    ),
    (
        encode_event("ticker:ETHUSDT", 7, TICKER),
        '{"type":"ticker","channel":"ticker:ETHUSDT","symbol":"ETHUSDT","seq":7,"data":{"price":3650.00000000,'
        '"bid":3649.5,"ask":3650.5,"bidQty":1.2,"askQty":0.8,"open24h":3524.5,"high24h":3700.0,"low24h":3500.0,'
        '"change24h":125.5,"changePercent24h":3.56,"volume24h":123456.7,"quoteVolume24h":450000000.0,'
        '"trades24h":901234,"timestamp":1701806400000}}',
    ),
    (
        encode_event("klines:BTCUSDT:1m", 9, KLINE),
        '{"type":"kline","channel":"klines:BTCUSDT:1m","symbol":"BTCUSDT","interval":"1m","seq":9,"data":'
        '{"time":1701806400,"open":97500.0,"high":97600.0,"low":97400.0,"close":97523.45,"volume":123.45,'
        '"isFinal":true}}',
    ),
    (
        encode_event("trades:BTCUSDT", 1001, TRADE),
        '{"type":"trade","channel":"trades:BTCUSDT","symbol":"BTCUSDT","seq":1001,"data":{"id":12345,'
        '"price":97523.45,"quantity":0.015,"side":"sell","timestamp":1701806400000}}',
    ),
    (
        encode_event("depth:BTCUSDT", 77, DEPTH),
        '{"type":"depth","channel":"depth:BTCUSDT","symbol":"BTCUSDT","seq":77,"data":{"bids":[[97523.4,1.5]],'
        '"asks":[[97523.5,0.7]],"lastUpdateId":160,"timestamp":1701806400000}}',
    ),
    (
        encode_publication("signal", "signals:BTCUSDT", 5, msgspec.Raw(b'{"a":"x","n":2}'), symbol="BTCUSDT"),
        '{"type":"signal","channel":"signals:BTCUSDT","seq":5,"data":{"a":"x","n":2},"symbol":"BTCUSDT"}',
    ),
    (
        encode_publication("order", "orders:u1", 3, msgspec.Raw(b'{"id":"o1"}')),
        '{"type":"order","channel":"orders:u1","seq":3,"data":{"id":"o1"}}',
    ),
]


@pytest.mark.parametrize(("frame", "expected"), GOLDEN)
def test_encoded_bytes_are_exact(frame: bytes, expected: str) -> None:
    assert frame == expected.encode()


@pytest.mark.parametrize(("frame", "expected"), GOLDEN)
def test_the_client_decodes_into_the_same_structs_and_back(frame: bytes, expected: str) -> None:
    msg = client_messages.decode(frame)
    assert isinstance(msg, messages.Msg)  # the server's struct, not a copy of it
    assert client_messages.encode(msg) == frame  # same fields, same order, same defaults left out


def test_client_message_types_are_the_servers() -> None:
    assert client_messages.Price is messages.Price and client_messages.Error is messages.Error
    server = {cls.__name__ for cls in messages.Msg.__subclasses__()}
    assert server == {cls.__name__ for cls in typing.get_args(client_messages.ServerMessage)}
    snapshot = client_messages.decode(as_snapshot(encode_event("depth:BTCUSDT", 77, DEPTH)))
    assert isinstance(snapshot, messages.Depth) and snapshot.snapshot and snapshot.data.bids[0][1] == D("1.5")


@pytest.mark.parametrize(
    ("given", "in_force"), [(0, 0), (100, 100), (120, 150), (60_000, 60_000), (501, 550)]
)
def test_throttle_is_rounded_up_to_50_ms(given: int, in_force: int) -> None:
    msg = parse_client(
        json.dumps({"type": "subscribe", "channels": ["price:X1"], "options": {"throttleMs": given}})
    )
    assert isinstance(msg, Subscribe) and msg.options is not None and msg.options.throttleMs == in_force


@pytest.mark.parametrize("value", [1, 99, 60_001, -50, 1.5, True, "500", None])
def test_other_throttles_are_invalid_messages(value: object) -> None:
    frame = json.dumps(
        {"type": "subscribe", "id": 3, "channels": ["price:X1"], "options": {"throttleMs": value}}
    )
    with pytest.raises(ProtocolError) as info:
        parse_client(frame)
    assert info.value.code is ErrorCode.INVALID_MESSAGE and info.value.ref == 3


def test_since_carries_positions_and_the_ack_its_fields() -> None:
    frame = '{"type":"subscribe","channels":["trades:X1"],"since":{"trades:X1":{"epoch":"k3","seq":1001}}}'
    msg = parse_client(frame)
    assert isinstance(msg, Subscribe) and msg.since is not None
    assert (msg.since["trades:X1"].epoch, msg.since["trades:X1"].seq) == ("k3", 1001)
    ack = json.loads(
        encode_subscribed("trades:X1", 0, 7, epoch="k3", seq=0, recoverable=True, recovered=False)
    )
    assert ack == {
        "type": "subscribed", "channel": "trades:X1", "timestamp": "1970-01-01T00:00:00.000Z", "id": 7,
        "epoch": "k3", "seq": 0, "recoverable": True, "recovered": False,
    }  # fmt: skip
