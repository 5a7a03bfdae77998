"""Market data over HTTP (docs/protocol.md): /api/v1/klines and /api/v1/symbols over real sockets,
for each source (simulated, replay, Binance through a fake, a --role gateway follower), and the
client library's ``feed.klines()`` / ``feed.symbols()``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tickwire import client
from tickwire.client.market import http_base
from tickwire.marketdata import decimals
from tickwire.sources.replay import ReplaySource, read_capture
from tickwire.sources.simulated import SimulatedSource

from .fake_binance import FakeBinance, binance_gateway, now_ms
from .helpers import Client, Running, eventually, running_gateway


SESSION = Path(__file__).parent / "data" / "binance" / "session.capture.jsonl"
START_MS = 1_733_486_400_000  # 2024-12-06 12:00 UTC: the frozen clock of the simulated market


async def get(url: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def klines(gw: Running, query: str) -> list[dict[str, Any]]:
    status, body, _ = await get(f"{gw.url}/api/v1/klines?{query}")
    assert status == 200 and body["success"] is True, body
    data: list[dict[str, Any]] = body["data"]
    return data


async def refused(gw: Running, query: str, status: int = 400) -> dict[str, Any]:
    got, body, _ = await get(f"{gw.url}/api/v1/klines?{query}")
    assert got == status and body["success"] is False, (query, got, body)
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def same_shape(candle: dict[str, Any]) -> None:
    assert list(candle) == ["time", "open", "high", "low", "close", "volume", "isFinal"]
    assert candle["low"] <= min(candle["open"], candle["close"]) <= max(candle["open"], candle["close"])
    assert max(candle["open"], candle["close"]) <= candle["high"]


# --- simulated ------------------------------------------------------------------------------


@pytest.fixture
async def frozen() -> AsyncIterator[tuple[Running, list[int]]]:
    """A simulated gateway whose market clock moves only when the test moves it."""
    clock = [START_MS + 17_000]
    source = SimulatedSource(seed=7, clock_ms=lambda: clock[0])
    async with running_gateway(source=source, linger=0.2) as gw:
        yield gw, clock


async def test_simulated_history_is_full_ordered_and_ends_with_the_channel_candle(
    frozen: tuple[Running, list[int]],
) -> None:
    gw, clock = frozen
    candles = await klines(gw, "symbol=BTCUSDT&interval=1m")  # default limit: 500
    assert len(candles) == 500
    for candle in candles:
        same_shape(candle)
    times = [c["time"] for c in candles]
    assert times == list(range(times[0], times[0] + 60 * 500, 60))
    assert times[-1] == START_MS // 1000  # the minute in progress...
    assert [c["isFinal"] for c in candles] == [True] * 499 + [False]  # ...is the only open one
    async with Client.connect(gw.ws_url) as ws:
        await ws.subscribe("klines:btcusdt:1m")
        snapshot = await ws.recv_until(lambda m: m.get("type") == "kline")
        assert snapshot["snapshot"] is True and snapshot["data"] == candles[-1]
        # a minute later the candle closes: the history then holds the very bar the channel closed
        clock[0] += 60_000
        final = await ws.recv_until(lambda m: m.get("type") == "kline" and m["data"]["isFinal"])
        live = await ws.recv_until(lambda m: m.get("type") == "kline" and not m["data"]["isFinal"])
    after = await klines(gw, "symbol=BTCUSDT&interval=1m&limit=3")
    assert after[0] == candles[-2]
    assert after[1] == final["data"] and after[1]["time"] == candles[-1]["time"]
    assert after[2] == live["data"] and after[2]["time"] == candles[-1]["time"] + 60


async def test_simulated_limit_end_time_and_longer_intervals(frozen: tuple[Running, list[int]]) -> None:
    gw, _ = frozen
    minutes = await klines(gw, "symbol=ETHUSDT&interval=1m&limit=1000")
    assert len(minutes) == 1000
    end = minutes[-10]["time"] * 1000
    assert await klines(gw, f"symbol=ETHUSDT&interval=1m&limit=5&endTime={end + 59_999}") == minutes[-14:-9]
    assert await klines(gw, "symbol=ETHUSDT&interval=1m&limit=1") == minutes[-1:]
    # an hour is the OHLCV of its minutes (the hours wholly inside the 1000 minutes)
    hours = await klines(gw, "symbol=ethusdt&interval=1h&limit=20")
    assert [h["time"] - hours[0]["time"] for h in hours] == [3600 * i for i in range(20)]
    checked = 0
    for hour in hours[:-1]:
        inside = [m for m in minutes if hour["time"] <= m["time"] < hour["time"] + 3600]
        if len(inside) < 60:
            continue
        checked += 1
        assert hour["open"] == inside[0]["open"] and hour["close"] == inside[-1]["close"]
        assert hour["high"] == max(m["high"] for m in inside)
        assert hour["low"] == min(m["low"] for m in inside)
        assert hour["volume"] == pytest.approx(sum(m["volume"] for m in inside), abs=1e-3)
    assert checked >= 10


async def test_bad_requests_are_400_with_the_publish_error_shape(frozen: tuple[Running, list[int]]) -> None:
    gw, _ = frozen
    assert (await refused(gw, "symbol=NOPEUSDT&interval=1m"))["code"] == "UNKNOWN_SYMBOL"
    assert (await refused(gw, "symbol=BTC-USDT&interval=1m"))["code"] == "INVALID_CHANNEL"
    assert "unknown interval" in (await refused(gw, "symbol=BTCUSDT&interval=7m"))["message"]
    assert (await refused(gw, "symbol=BTCUSDT&interval=1m&limit=0"))["code"] == "INVALID_MESSAGE"
    assert "1,000" in (await refused(gw, "symbol=BTCUSDT&interval=1m&limit=1001"))["message"]
    await refused(gw, "symbol=BTCUSDT&interval=1m&limit=ten")
    await refused(gw, "symbol=BTCUSDT&interval=1m&endTime=-1")
    assert "required" in (await refused(gw, "symbol=BTCUSDT"))["message"]


async def test_simulated_symbols(frozen: tuple[Running, list[int]]) -> None:
    gw, _ = frozen
    status, body, _ = await get(gw.url + "/api/v1/symbols")
    assert status == 200 and body["success"] is True
    symbols = {s["symbol"]: s for s in body["data"]}
    assert len(symbols) == 8
    assert symbols["BTCUSDT"] == {
        "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "status": "TRADING",
        "precision": {"price": 2, "qty": 5},
    }  # fmt: skip
    assert symbols["DOGEUSDT"]["precision"] == {"price": 5, "qty": 0}


# --- replay ---------------------------------------------------------------------------------


def capture_candles(symbol: str, interval: str) -> list[dict[str, Any]]:
    """The capture's candles, read straight from its kline frames: the last version of each wins."""
    by_time: dict[int, dict[str, Any]] = {}
    for line in SESSION.read_text().splitlines():
        record = json.loads(line)
        frame = json.loads(record.get("ws", "{}"))
        k = frame.get("data", {}).get("k")
        if k is not None and k["s"] == symbol and k["i"] == interval:
            by_time[k["t"]] = k
    return [by_time[t] for t in sorted(by_time)]


async def test_replay_serves_the_candles_played_and_the_symbols_seen() -> None:
    source = ReplaySource(read_capture(SESSION), speed=50, start_delay=0.05)
    async with running_gateway(source=source, linger=0.2) as gw:
        assert await klines(gw, "symbol=VETETH&interval=1m") == []  # nothing played yet
        async with Client.connect(gw.ws_url) as ws:
            await ws.subscribe("trades:BTCUSDT")
            await eventually(lambda: source.finished, timeout=10)
        for symbol in ("VETETH", "ONTTRY", "SWRVBUSD"):
            expected = capture_candles(symbol, "1m")
            got = await klines(gw, f"symbol={symbol}&interval=1m")
            assert [c["time"] for c in got] == [k["t"] // 1000 for k in expected]
            assert [Decimal(str(c["close"])) for c in got] == [Decimal(k["c"]) for k in expected]
            assert [c["isFinal"] for c in got] == [k["x"] for k in expected]
        assert len(await klines(gw, "symbol=VETETH&interval=1m&limit=1")) == 1
        assert await klines(gw, "symbol=VETETH&interval=5m") == []
        assert (await refused(gw, "symbol=ETHUSDT&interval=1m"))["code"] == "UNKNOWN_SYMBOL"
        status, body, _ = await get(gw.url + "/api/v1/symbols")
    assert status == 200
    symbols = {s["symbol"]: s for s in body["data"]}
    assert set(symbols) == set(source.known_symbols() or [])
    assert (symbols["VETETH"]["base"], symbols["VETETH"]["quote"]) == ("VET", "ETH")
    assert (symbols["BUSDTRY"]["base"], symbols["BUSDTRY"]["quote"]) == ("BUSD", "TRY")
    lines = SESSION.read_text().splitlines()
    trades = [json.loads(json.loads(r)["ws"])["data"] for r in lines if "@trade" in r]
    assert symbols["BTCUSDT"]["precision"] == {
        "price": max(decimals(t["p"]) for t in trades),
        "qty": max(decimals(t["q"]) for t in trades),
    }


# --- Binance (fake) -------------------------------------------------------------------------


class FiltersFake(FakeBinance):
    """The fake, with the PRICE_FILTER and LOT_SIZE filters a real exchangeInfo carries."""

    async def _exchange_info(self, request: web.Request) -> web.Response:
        failed = self._rest(request, 20)
        if failed is not None:
            return failed
        filters = [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "stepSize": "0.00001000"},
        ]
        symbols = [
            {"symbol": s, "status": st, "baseAsset": s[:-4], "quoteAsset": s[-4:], "filters": filters}
            for s, st in self.symbols.items()
        ]
        return self._json({"timezone": "UTC", "serverTime": now_ms(), "symbols": symbols})


def kline_calls(fake: FakeBinance) -> list[dict[str, str]]:
    return [query for _, path, query, _ in fake.rest_log if path == "/api/v3/klines"]


async def test_binance_klines_from_rest_with_closed_candles_cached() -> None:
    async with binance_gateway() as (gw, fake):
        candles = await klines(gw, "symbol=BTCUSDT&interval=1m&limit=5")
        assert len(candles) == 5
        times = [c["time"] for c in candles]
        assert times == list(range(times[0], times[0] + 300, 60))
        for candle in candles:
            same_shape(candle)
            row = fake.kline_row(candle["time"] * 1000, "1m")
            assert Decimal(str(candle["close"])) == Decimal(row[4])
        assert [c["isFinal"] for c in candles] == [True] * 4 + [False]
        assert kline_calls(fake)[-1] == {"symbol": "BTCUSDT", "interval": "1m", "limit": "5"}
        calls = len(kline_calls(fake))
        # again: the closed candles come from the cache, only the live one is asked for (weight 2)
        again = await klines(gw, "symbol=BTCUSDT&interval=1m&limit=5")
        if again[0]["time"] == times[0]:  # the minute did not turn in between
            assert again == candles
            assert len(kline_calls(fake)) - calls <= 1
            assert all(q["limit"] == "1" for q in kline_calls(fake)[calls:])
            # a window of closed candles only: no REST at all
            calls = len(kline_calls(fake))
            past = await klines(gw, f"symbol=BTCUSDT&interval=1m&limit=2&endTime={times[2] * 1000 + 1}")
            assert past == candles[1:3] and len(kline_calls(fake)) == calls
        # endTime goes to Binance when the cache cannot answer
        old = (times[0] - 3600) * 1000
        before = await klines(gw, f"symbol=BTCUSDT&interval=1m&limit=3&endTime={old}")
        assert [c["time"] * 1000 for c in before] == [old - 120_000, old - 60_000, old]
        assert kline_calls(fake)[-1]["endTime"] == str(old)
        assert (await refused(gw, "symbol=NOPEUSDT&interval=1m"))["code"] == "UNKNOWN_SYMBOL"
        assert (await refused(gw, "symbol=HALTUSDT&interval=1m"))["code"] == "UNKNOWN_SYMBOL"


async def test_binance_klines_are_503_while_rest_fails() -> None:
    async with binance_gateway() as (gw, fake):
        await klines(gw, "symbol=ETHUSDT&interval=1m&limit=2")  # the symbol list is loaded
        fake.rest_fail = [(500, 0)]
        error = await refused(gw, "symbol=ETHUSDT&interval=5m", 503)
        assert error["code"] == "UNAVAILABLE" and "did not answer" in error["message"]
        fake.rest_fail = [(429, 30)]
        url = f"{gw.url}/api/v1/klines?symbol=ETHUSDT&interval=15m"
        status, body, headers = await get(url)
        assert status == 503 and headers["Retry-After"] == "30"
        assert "retry in 30 s" in body["error"]["message"]
        sent = len(fake.rest_log)
        await refused(gw, "symbol=ETHUSDT&interval=1h", 503)  # blocked here: Binance is not asked
        assert len(fake.rest_log) == sent


async def test_binance_symbols_with_precision_from_filters() -> None:
    async with FiltersFake() as fake:
        async with binance_gateway(fake) as (gw, _):
            status, body, _ = await get(gw.url + "/api/v1/symbols")
            assert status == 200
            symbols = {s["symbol"]: s for s in body["data"]}
            assert set(symbols) == set(fake.symbols)
            assert symbols["BTCUSDT"] == {
                "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "status": "TRADING",
                "precision": {"price": 2, "qty": 5},
            }  # fmt: skip
            assert symbols["HALTUSDT"]["status"] == "HALT"
            infos = sum(1 for _, path, _, _ in fake.rest_log if path == "/api/v3/exchangeInfo")
            await get(gw.url + "/api/v1/symbols")
            assert sum(1 for _, path, _, _ in fake.rest_log if path == "/api/v3/exchangeInfo") == infos


async def test_binance_symbols_503_when_never_loaded() -> None:
    async with FakeBinance() as fake:
        fake.rest_fail = [(500, 0)] * 3
        async with binance_gateway(fake) as (gw, _):
            status, body, _ = await get(gw.url + "/api/v1/symbols")
            assert status == 503 and body["error"]["code"] == "UNAVAILABLE"


# --- follower and client ----------------------------------------------------------------------


async def test_a_role_gateway_process_answers_503(redis_server: Any) -> None:
    async with running_gateway(role="gateway", redis_url=redis_server.url, linger=0.2) as gw:
        error = await refused(gw, "symbol=BTCUSDT&interval=1m", 503)
        assert "--role gateway" in error["message"]
        status, body, _ = await get(gw.url + "/api/v1/symbols")
        assert status == 503 and "ingest" in body["error"]["message"]


async def test_client_klines_and_symbols(frozen: tuple[Running, list[int]]) -> None:
    gw, _ = frozen
    async with client.connect(gw.ws_url) as feed:
        candles = await feed.klines("btcusdt", "1m", limit=10)
        assert len(candles) == 10 and all(isinstance(c, client.KlineData) for c in candles)
        assert isinstance(candles[-1].close, Decimal) and candles[-1].isFinal is False
        assert candles[-1].time == START_MS // 1000
        older = await feed.klines("BTCUSDT", "1m", limit=3, end_time=candles[5].time * 1000)
        assert older == candles[3:6]
        symbols = await feed.symbols()
        assert all(isinstance(s, client.SymbolInfo) for s in symbols)
        btc = next(s for s in symbols if s.symbol == "BTCUSDT")
        assert (btc.base, btc.quote, btc.precision) == ("BTC", "USDT", client.Precision(2, 5))
        with pytest.raises(client.MarketDataError) as refused_info:
            await feed.klines("NOPEUSDT", "1m")
        assert refused_info.value.status == 400 and refused_info.value.code == "UNKNOWN_SYMBOL"
        assert isinstance(refused_info.value, client.ClientError)
    assert http_base("wss://example.test:8443/ws?token=x") == "https://example.test:8443"
