"""The Binance source against the fake server: mapping, demand, sharding, pacing, snapshots."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from .fake_binance import FakeBinance, binance_gateway
from .helpers import TIMEOUT, Client, Running, eventually


async def recv_raw(client: Client, timeout: float = TIMEOUT) -> tuple[dict[str, Any], str]:
    """The next message parsed with Decimal numbers, and its raw text (to check digits)."""
    msg = await client.ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data, parse_float=Decimal), msg.data


async def collect(client: Client, predicate: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The next ``count`` messages that match ``predicate``."""
    out: list[dict[str, Any]] = []

    async def one_more() -> bool:
        msg, _ = await recv_raw(client)
        if predicate(msg):
            out.append(msg)
        return len(out) >= count

    await eventually(one_more, timeout=timeout, what=f"{count} matching messages", interval=0)
    return out


QUIET = {"stall_trades_min": 30.0, "stall_ticker": 30.0, "stall_kline": 30.0, "stall_depth": 30.0}
"""Watchdogs for tests whose fake feeds nothing on purpose."""

TICKER_FIELDS = [
    ("price", "c"), ("bid", "b"), ("ask", "a"), ("bidQty", "B"), ("askQty", "A"), ("open24h", "o"),
    ("high24h", "h"), ("low24h", "l"), ("change24h", "p"), ("changePercent24h", "P"), ("volume24h", "v"),
    ("quoteVolume24h", "q"),
]  # fmt: skip


def same(a: Decimal, b: str) -> bool:
    """Same value and the same digits as the upstream's decimal string."""
    return isinstance(a, Decimal) and str(a) == str(Decimal(b))


async def test_every_channel_kind_is_relayed_unchanged() -> None:
    async with binance_gateway() as (gw, fake), Client.connect(gw.ws_url) as client:
        channels = ["price:BTCUSDT", "ticker:BTCUSDT", "klines:BTCUSDT:1m", "trades:BTCUSDT", "depth:BTCUSDT"]
        answers = await client.subscribe(*channels)
        assert [a["type"] for a in answers] == ["subscribed"] * 5
        seen: dict[str, list[dict[str, Any]]] = {c: [] for c in channels}

        async def twelve_live_each() -> bool:
            msg, _ = await recv_raw(client)
            if "seq" in msg:
                seen[msg["channel"]].append(msg)
            return all(len([m for m in v if not m.get("snapshot")]) >= 12 for v in seen.values())

        await eventually(twelve_live_each, what="12 live messages on every channel", interval=0)
        trades = {p["t"]: p for p in fake.sent["btcusdt@trade"]}
        for msg in seen["trades:BTCUSDT"]:
            p = trades[msg["data"]["id"]]
            d = msg["data"]
            assert msg["symbol"] == "BTCUSDT" and msg["type"] == "trade"
            assert same(d["price"], p["p"]) and same(d["quantity"], p["q"]) and d["timestamp"] == p["T"]
            assert d["side"] == ("sell" if p["m"] else "buy")  # m: the buyer was the maker, so the taker sold
        tickers = {p["E"]: p for p in fake.sent["btcusdt@ticker"]}
        for msg in seen["ticker:BTCUSDT"]:
            if msg.get("snapshot") or msg["data"]["timestamp"] not in tickers:
                continue  # the REST snapshot, checked in its own test
            p, d = tickers[msg["data"]["timestamp"]], msg["data"]
            for ours, theirs in TICKER_FIELDS:
                assert same(d[ours], p[theirs]), (ours, d[ours], p[theirs])
            assert d["trades24h"] == p["n"]
        prices = [m for m in seen["price:BTCUSDT"] if m["data"]["timestamp"] in tickers]
        assert prices
        for msg in prices:
            p, d = tickers[msg["data"]["timestamp"]], msg["data"]
            assert set(d) == {
                "price",
                "change24h",
                "changePercent24h",
                "high24h",
                "low24h",
                "volume24h",
                "timestamp",
            }
            assert same(d["price"], p["c"]) and same(d["change24h"], p["p"]) and same(d["volume24h"], p["v"])
        klines = {p["E"]: p for p in fake.sent["btcusdt@kline_1m"]}
        checked = 0
        for msg in seen["klines:BTCUSDT:1m"]:
            d = msg["data"]
            sent = [
                k["k"]
                for k in klines.values()
                if k["k"]["t"] // 1000 == d["time"] and same(d["close"], k["k"]["c"])
            ]
            if not sent:
                continue
            k = sent[0]
            assert msg["interval"] == "1m"
            assert d["time"] == k["t"] // 1000  # seconds
            assert same(d["open"], k["o"]) and same(d["high"], k["h"]) and same(d["low"], k["l"])
            assert same(d["volume"], k["v"])
            checked += 1
        assert checked >= 5
        books = {p["lastUpdateId"]: p for p in fake.sent["btcusdt@depth10@100ms"]}
        live_books = [m for m in seen["depth:BTCUSDT"] if m["data"]["lastUpdateId"] in books]
        assert live_books
        for msg in live_books:
            p, d = books[msg["data"]["lastUpdateId"]], msg["data"]
            assert len(d["bids"]) == 10 and len(d["asks"]) == 10
            assert all(
                same(a, b)
                for lvl, up in zip(d["bids"], p["bids"], strict=True)
                for a, b in zip(lvl, up, strict=True)
            )
            assert all(
                same(a, b)
                for lvl, up in zip(d["asks"], p["asks"], strict=True)
                for a, b in zip(lvl, up, strict=True)
            )
            assert isinstance(d["timestamp"], int)  # stamped on receipt: partial depth has no E
        for msgs in seen.values():
            seqs = [m["seq"] for m in msgs if not m.get("snapshot")]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert fake.violations == 0
        assert len(fake.conns) == 1  # one connection for all four streams


async def stats(gw: Running) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(gw.url + "/api/v1/ws/stats") as resp:
        body = await resp.json()
        return dict(body["data"])


async def test_upstream_subscriptions_follow_demand() -> None:
    async with binance_gateway() as (gw, fake), Client.connect(gw.ws_url) as client:
        await client.subscribe("price:BTCUSDT")
        await eventually(lambda: fake.subscriptions() == {"btcusdt@ticker"})
        body = await stats(gw)
        assert body["binanceStreams"] == 1 and body["binanceActiveStreams"] == ["btcusdt@ticker"]
        before = len(fake.control_messages())
        await client.subscribe("ticker:BTCUSDT")  # shares btcusdt@ticker: nothing new upstream
        await client.subscribe("trades:ETHUSDT")
        await eventually(lambda: fake.subscriptions() == {"btcusdt@ticker", "ethusdt@trade"})
        controls = fake.control_messages()[before:]
        assert [c["method"] for c in controls] == ["SUBSCRIBE"] and controls[0]["params"] == ["ethusdt@trade"]
        assert len(fake.live_conns()) == 1  # live SUBSCRIBE on the open connection
        await client.send({"type": "unsubscribe", "channels": ["price:BTCUSDT"]})
        await asyncio.sleep(0.5)  # under test: for longer than the linger (0.2 s), nothing changes
        assert "btcusdt@ticker" in fake.subscriptions()  # ticker:BTCUSDT still wants it
        await client.send({"type": "unsubscribe", "channels": ["ticker:BTCUSDT"]})
        await asyncio.sleep(0.1)  # under test: within the linger (0.2 s), the stream stays
        assert "btcusdt@ticker" in fake.subscriptions()
        await eventually(lambda: fake.subscriptions() == {"ethusdt@trade"})
        assert fake.control_messages()[-1] == {"method": "UNSUBSCRIBE", "params": ["btcusdt@ticker"], "id": 2}
        assert (await stats(gw))["binanceActiveStreams"] == ["ethusdt@trade"]
        await client.send({"type": "unsubscribe", "channels": ["trades:ETHUSDT"]})
        await eventually(lambda: not fake.live_conns())  # no demand, no connection
        body = await stats(gw)
        assert body["binanceStreams"] == 0 and body["binanceActiveStreams"] == []
        assert fake.violations == 0


async def test_streams_are_sharded_over_connections() -> None:
    async with binance_gateway(max_streams=2) as (gw, fake), Client.connect(gw.ws_url) as client:
        symbols = ["BTCUSDT", "ETHUSDT", "BNBBTC", "XRPUSDT", "ADAUSDT"]
        await client.subscribe(*[f"trades:{s}" for s in symbols])
        wanted = {f"{s.lower()}@trade" for s in symbols}
        await eventually(lambda: fake.subscriptions() == wanted)
        assert len(fake.live_conns()) == 3
        assert all(len(c.streams) <= 2 for c in fake.live_conns())
        body = await stats(gw)
        assert body["binanceStreams"] == 5 and set(body["binanceActiveStreams"]) == wanted
        await collect(client, lambda m: m.get("channel") == "trades:ADAUSDT", 3)


async def test_fake_closes_a_connection_over_five_messages_per_second() -> None:
    """The limit the pacing test relies on is real."""
    async with FakeBinance() as fake:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(fake.ws_url + "/stream?streams=btcusdt@trade") as ws,
        ):
            for i in range(6):
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
            closed = None
            for _ in range(20):
                msg = await ws.receive(timeout=2)
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    closed = ws.close_code
                    break
            assert closed == 1008 and fake.violations == 1


async def test_control_messages_are_paced_and_batched() -> None:
    async with FakeBinance(ping_interval=0.5) as fake:
        async with binance_gateway(fake) as (gw, _), Client.connect(gw.ws_url) as client:
            channels = [f"klines:BTCUSDT:{i}" for i in ("1s", "1m", "3m", "5m", "15m", "30m", "1h")]
            channels += [f"trades:{s}" for s in ("ETHUSDT", "BNBBTC", "XRPUSDT", "ADAUSDT", "SOLUSDT")]
            for channel in channels:  # one by one, faster than 5/s
                await client.send({"type": "subscribe", "channels": [channel]})
                await asyncio.sleep(0.05)  # the client's pace, not a wait for anything
            await eventually(lambda: len(fake.subscriptions()) == len(channels), timeout=8)
            await eventually(lambda: sum(c.pongs for c in fake.live_conns()) >= 2, what="two pongs")
            assert fake.violations == 0
            [conn] = fake.live_conns()
            assert conn.pongs >= 2
            subscribes = [c for c in conn.controls if c["method"] == "SUBSCRIBE"]
            assert 1 <= len(subscribes) < len(channels) - 1  # batched
            assert len(conn.url_streams) == 1


async def test_unknown_or_halted_symbol_opens_nothing() -> None:
    async with binance_gateway() as (gw, fake), Client.connect(gw.ws_url) as client:
        unknown, halted = await client.subscribe("price:NOPEUSDT", "trades:HALTUSDT")
        assert unknown["type"] == "error" and unknown["code"] == "UNKNOWN_SYMBOL"
        assert unknown["channel"] == "price:NOPEUSDT"
        assert halted["code"] == "UNKNOWN_SYMBOL" and "HALT" in halted["message"]
        await asyncio.sleep(0.3)  # under test: for a while after the errors, nothing connects
        assert fake.connect_attempts == 0
        assert (await stats(gw))["binanceStreams"] == 0
        assert [p for _, p, _, _ in fake.rest_log] == ["/api/v3/exchangeInfo"]  # cached after the first


async def test_rest_snapshot_without_waiting_for_the_stream() -> None:
    async with FakeBinance() as fake:
        fake.feeding = False  # the stream says nothing: only REST can answer
        async with binance_gateway(fake, **QUIET) as (gw, _):
            async with Client.connect(gw.ws_url) as first:
                await first.subscribe("ticker:BTCUSDT", "klines:ETHUSDT:1m", "depth:BNBBTC")
                got = {m["channel"]: m for m in await collect(first, lambda m: "seq" in m, 3)}
            rest = fake.rest_ticker("BTCUSDT")
            t = got["ticker:BTCUSDT"]["data"]
            assert same(t["price"], rest["lastPrice"]) and same(t["bid"], rest["bidPrice"])
            assert same(t["changePercent24h"], rest["priceChangePercent"]) and t["trades24h"] == rest["count"]
            assert t["timestamp"] == rest["closeTime"]
            k = got["klines:ETHUSDT:1m"]["data"]
            assert same(k["open"], "0.01634790") and same(k["close"], "0.01577100") and k["isFinal"] is False
            d = got["depth:BNBBTC"]["data"]
            assert d["lastUpdateId"] == 1027024 and same(d["bids"][0][1], "431.00000000")
            paths = {(p, q.get("limit")) for _, p, q, _ in fake.rest_log}
            assert {("/api/v3/ticker/24hr", None), ("/api/v3/klines", "1"), ("/api/v3/depth", "10")} <= paths
            async with Client.connect(gw.ws_url) as second:  # linger keeps the value: a snapshot at once
                await second.subscribe("ticker:BTCUSDT")
                snap, _ = await recv_raw(second)
                assert snap["snapshot"] is True and snap["data"] == t


@pytest.mark.parametrize("status", [429, 418])
async def test_rest_retry_after_is_honoured(status: int) -> None:
    async with FakeBinance() as fake:
        fake.feeding = False
        async with binance_gateway(fake, **QUIET) as (gw, _), Client.connect(gw.ws_url) as client:
            await client.subscribe("trades:ETHUSDT")  # loads exchangeInfo
            fake.rest_fail = [(status, 1.0)]
            await client.subscribe("price:BTCUSDT")
            [msg] = await collect(client, lambda m: m.get("channel") == "price:BTCUSDT", 1, timeout=5)
            assert same(msg["data"]["price"], "4.00000200")
            tickers = [(t, s) for t, p, _, s in fake.rest_log if p == "/api/v3/ticker/24hr"]
            assert [s for _, s in tickers] == [status, 200]
            assert tickers[1][0] - tickers[0][0] >= 1.0
            async with aiohttp.ClientSession() as http, http.get(gw.url + "/health") as resp:
                upstream = (await resp.json())["upstream"]
                assert upstream["restLimited"] == 1
                assert upstream["restCalls"] == len(fake.rest_log)  # every request the fake saw
            async with aiohttp.ClientSession() as http, http.get(gw.url + "/metrics") as resp:
                text = await resp.text()
            series = 'tickwire_upstream_rest_requests_total{source="binance"}'
            assert f"{series} {len(fake.rest_log)}.0" in text


def test_settings_pick_the_urls_rotation_and_stall_thresholds() -> None:
    from tickwire.config import settings_from
    from tickwire.sources import make_source
    from tickwire.sources.binance import BinanceSource
    from tickwire.sources.binance.watchdog import StallThresholds

    env = {
        "TICKWIRE_SOURCE": "binance", "TICKWIRE_BINANCE_WS_URL": "ws://127.0.0.1:9",
        "TICKWIRE_BINANCE_REST_URL": "http://127.0.0.1:9", "TICKWIRE_BINANCE_ROTATE_AFTER": "60",
        "TICKWIRE_STALL_TICKER": "1.5", "TICKWIRE_STALL_KLINE": "3", "TICKWIRE_STALL_DEPTH": "0.5",
        "TICKWIRE_STALL_TRADES_MIN": "4",
    }  # fmt: skip
    source = make_source(settings_from(None, env))
    assert isinstance(source, BinanceSource)
    assert (source.ws_url, source.rest_url, source.rotate_after) == (
        "ws://127.0.0.1:9",
        "http://127.0.0.1:9",
        60.0,
    )
    assert source.stall == StallThresholds(ticker=1.5, kline=3.0, depth=0.5, trades_min=4.0)
    health = source.health()  # never run: nothing was reached, so not live
    assert health.live is False and health.reason == "upstream never reached"
    assert source.streams() == [] and source.known_symbols() is None


@pytest.mark.parametrize("name", ["stall_ticker", "stall_kline", "stall_depth", "stall_trades_min"])
@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_stall_settings_must_be_positive(name: str, value: str) -> None:
    from tickwire.config import settings_from
    from tickwire.errors import ConfigError

    with pytest.raises(ConfigError, match=f"TICKWIRE_{name.upper()}="):
        settings_from(None, {f"TICKWIRE_{name.upper()}": value})
