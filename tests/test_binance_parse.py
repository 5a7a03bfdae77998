"""The pure Binance layer: payloads from the docs and real captures -> events; replies; dedupe; backoff."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import pytest

from tickwire.backoff import ConnectBudget, backoff
from tickwire.channels import parse_channel
from tickwire.errors import UpstreamError
from tickwire.events import Depth, Kline, Ticker, Trade
from tickwire.sources.binance.parse import (
    DataFrame,
    Normalizer,
    Reply,
    ServerShutdown,
    parse_exchange_info,
    parse_frame,
    stream_kind,
    stream_of,
)


DATA = Path(__file__).parent / "data" / "binance"

# Verbatim from web-socket-streams.md (comments removed)
TRADE = (
    b'{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,'
    b'"m":true,"M":true}'
)
KLINE = (
    b'{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC",'
    b'"i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,'
    b'"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}'
)
TICKER = (
    b'{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009",'
    b'"c":"0.0025","Q":"10","b":"0.0024","B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025",'
    b'"l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}'
)
DEPTH = b'{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}'


def frame(stream: str, data: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"


@pytest.mark.parametrize(
    ("channel", "stream"),
    [
        ("price:BTCUSDT", "btcusdt@ticker"),
        ("ticker:btcusdt", "btcusdt@ticker"),
        ("klines:ETHUSDT:1M", "ethusdt@kline_1M"),
        ("trades:BNBBTC", "bnbbtc@trade"),
        ("depth:BTCUSDT", "btcusdt@depth10@100ms"),
    ],
)
def test_channel_to_stream(channel: str, stream: str) -> None:
    assert stream_of(parse_channel(channel)) == stream


def test_non_market_channel_has_no_stream() -> None:
    with pytest.raises(ValueError):
        stream_of(parse_channel("orders:u1"))
    with pytest.raises(UpstreamError):
        stream_kind("btcusdt@bookTicker")


def test_trade_side_and_digits() -> None:
    ev = Normalizer().accept("bnbbtc@trade", TRADE, 0)
    assert ev == Trade(symbol="BNBBTC", id=12345, price=Decimal("0.001"), quantity=Decimal("100"),
                       buyer_taker=False, event_time=1672515782136)  # fmt: skip
    seller_maker = TRADE.replace(b'"m":true', b'"m":false').replace(b'"t":12345', b'"t":12346')
    ev2 = Normalizer().accept("bnbbtc@trade", seller_maker, 0)
    assert isinstance(ev2, Trade) and ev2.buyer_taker is True


def test_kline_ticker_depth() -> None:
    n = Normalizer()
    k = n.accept("bnbbtc@kline_1m", KLINE, 0)
    assert isinstance(k, Kline) and k.open_time == 1672515780000 and k.interval == "1m" and not k.final
    assert (str(k.open), str(k.close), str(k.high), str(k.low), str(k.volume)) == (
        "0.0010",
        "0.0020",
        "0.0025",
        "0.0015",
        "1000",
    )
    t = n.accept("bnbbtc@ticker", TICKER, 0)
    assert isinstance(t, Ticker)
    assert (str(t.price), str(t.change), str(t.change_percent), str(t.bid), t.trades) == (
        "0.0025",
        "0.0015",
        "250.00",
        "0.0024",
        18151,
    )
    d = n.accept("bnbbtc@depth10@100ms", DEPTH, 1700000000123)
    bids, asks = ((Decimal("0.0024"), Decimal("10")),), ((Decimal("0.0026"), Decimal("100")),)
    assert d == Depth(symbol="BNBBTC", bids=bids, asks=asks, last_update_id=160, event_time=1700000000123)


def test_frames_and_both_error_forms() -> None:
    data = parse_frame(frame("bnbbtc@trade", TRADE))
    assert isinstance(data, DataFrame) and data.stream == "bnbbtc@trade"
    assert parse_frame(b'{"result":null,"id":1}') == Reply(1, None)
    assert parse_frame(b'{"result":["btcusdt@aggTrade"],"id":3}') == Reply(3, ["btcusdt@aggTrade"])
    nested = parse_frame(b'{"error":{"code":4,"msg":"Too many subscriptions"},"id":19}')
    assert nested == Reply(19, None, (4, "Too many subscriptions"))
    flat = parse_frame(b'{"code":2,"msg":"Invalid request: invalid stream","id":"a1"}')
    assert flat == Reply("a1", None, (2, "Invalid request: invalid stream"))
    no_id = parse_frame(b'{"code":1,"msg":"Invalid value type: expected Boolean"}')
    assert no_id == Reply(None, None, (1, "Invalid value type: expected Boolean"))
    shutdown = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}'
    assert parse_frame(shutdown) == ServerShutdown(1770123456789)
    for garbage in (b"not json", b"[1,2]", b'{"hello":1}', b"{", b'{"stream":"!serverShutdown","data":{}}'):
        with pytest.raises(UpstreamError):
            parse_frame(garbage)


def test_bad_payload_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        Normalizer().accept("btcusdt@trade", b'{"e":"trade"}', 0)
    with pytest.raises(UpstreamError):
        Normalizer().accept(
            "btcusdt@trade", b'{"e":"trade","E":1,"s":"X","t":1,"p":"x","q":"1","T":1,"m":true}', 0
        )


def test_dedupe_keys() -> None:
    n = Normalizer()
    assert n.accept("bnbbtc@trade", TRADE, 0) is not None
    assert n.accept("bnbbtc@trade", TRADE, 0) is None  # the same trade from the other connection
    older = TRADE.replace(b'"t":12345', b'"t":12344')
    assert n.accept("bnbbtc@trade", older, 0) is None
    assert n.accept("bnbbtc@depth10@100ms", DEPTH, 1) is not None
    assert n.accept("bnbbtc@depth10@100ms", DEPTH, 2) is None
    assert n.accept("bnbbtc@kline_1m", KLINE, 0) is not None
    final = KLINE.replace(b'"x":false', b'"x":true')
    assert n.accept("bnbbtc@kline_1m", final, 0) is not None  # same E, now final: new
    assert n.accept("bnbbtc@kline_1m", KLINE, 0) is None
    n.forget("bnbbtc@trade")
    assert n.accept("bnbbtc@trade", older, 0) is not None


def test_rest_bodies() -> None:
    n = Normalizer()
    body = json.dumps({
        "symbol": "BNBBTC", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
        "weightedAvgPrice": "0.29628482", "prevClosePrice": "0.10002000", "lastPrice": "4.00000200",
        "lastQty": "200.00000000", "bidPrice": "4.00000000", "bidQty": "100.00000000",
        "askPrice": "4.00000200", "askQty": "100.00000000", "openPrice": "99.00000000",
        "highPrice": "100.00000000", "lowPrice": "0.10000000",
        "volume": "8913.30000000", "quoteVolume": "15.30000000", "openTime": 1499783499040,
        "closeTime": 1499869899040, "firstId": 28385, "lastId": 28460, "count": 76,
    }).encode()  # fmt: skip
    t = n.accept_rest("bnbbtc@ticker", body, 5)
    assert isinstance(t, Ticker) and str(t.price) == "4.00000200" and t.event_time == 1499869899040
    assert n.accept("bnbbtc@ticker", TICKER, 0) is not None  # the stream is newer
    assert n.accept_rest("bnbbtc@ticker", body, 5) is None  # and a late REST body never steps back
    rows = b'[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]'  # noqa: E501
    k = n.accept_rest("bnbbtc@kline_1d", rows, 1499644800000)
    assert isinstance(k, Kline) and k.final and str(k.volume) == "148976.11427815" and k.interval == "1d"
    assert n.accept_rest("bnbbtc@kline_1m", b"[]", 0) is None
    depth = b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00"]]}'
    d = n.accept_rest("bnbbtc@depth10@100ms", depth, 7)
    assert isinstance(d, Depth) and d.last_update_id == 1027024 and str(d.bids[0][1]) == "431.00000000"
    with pytest.raises(UpstreamError):
        n.accept_rest("bnbbtc@depth10@100ms", b'{"lastUpdateId":"x"}', 0)
    info = b'{"timezone":"UTC","serverTime":1,"rateLimits":[],"symbols":[{"symbol":"ETHBTC","status":"TRADING"},{"symbol":"X","status":"BREAK"}]}'  # noqa: E501
    assert parse_exchange_info(info) == {"ETHBTC": "TRADING", "X": "BREAK"}


def test_real_capture_frames_parse() -> None:
    """Every frame of the committed capture excerpt goes through the live parser."""
    n = Normalizer()
    lines = [json.loads(line) for line in (DATA / "session.capture.jsonl").read_text().splitlines()]
    kinds: dict[str, int] = {}
    for line in lines:
        if "ws" in line:
            f = parse_frame(line["ws"])
            assert isinstance(f, DataFrame)
            ev = n.accept(f.stream, f.data, line["t"])
            assert ev is not None
            kinds[type(ev).__name__] = kinds.get(type(ev).__name__, 0) + 1
    assert kinds == {"Trade": 60, "Kline": 20, "Ticker": 8, "Depth": 8}


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = backoff(initial=1.0, factor=2.0, max_delay=10.0, jitter=0.5, rng=rng)
    got = [next(delays) for _ in range(12)]
    assert 0 <= got[0] <= 1.0
    assert all(0 < d <= 10.0 for d in got[1:])
    assert got[-1] >= 5.0  # at the cap, shortened by at most half
    assert got[1] <= 1.0 and got[3] <= 4.0
    again = backoff(initial=1.0, max_delay=10.0, rng=random.Random(7))
    assert [next(again) for _ in range(12)] == got  # the rng is injected: deterministic


def test_connect_budget_slides() -> None:
    budget = ConnectBudget(limit=3, window=300.0)
    for t in (0.0, 10.0, 20.0):
        assert budget.delay(t) == 0
        budget.record(t)
    assert budget.delay(30.0) == pytest.approx(270.0)
    assert budget.used(30.0) == 3
    assert budget.delay(300.0) == 0
    assert budget.used(300.0) == 2
