"""A client written from docs/protocol.md alone subscribes to every market channel kind
and checks that the data is well-formed and consistent across channels."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from .helpers import Client, Running


CHANNELS = [
    "price:BTCUSDT",
    "ticker:BTCUSDT",
    "klines:BTCUSDT:1s",
    "klines:BTCUSDT:1m",
    "trades:BTCUSDT",
    "depth:BTCUSDT",
]
NUMBER = (int, float)


async def _collect(client: Client, seconds: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            out.append(await client.recv(timeout=max(0.01, end - loop.time())))
        except TimeoutError:
            break
    return out


async def test_every_market_channel_kind_is_consistent(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        answers = await client.subscribe(*[c.lower() for c in CHANNELS])
        assert [a["channel"] for a in answers] == CHANNELS
        messages = await _collect(client, 3.2)
    by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        if "channel" in m and m["type"] not in ("subscribed", "status"):
            by_channel[m["channel"]].append(m)
    assert set(by_channel) == set(CHANNELS)

    for channel, msgs in by_channel.items():
        seqs = [m["seq"] for m in msgs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), channel
        assert all(m["symbol"] == "BTCUSDT" for m in msgs)
    prices = [m for m in by_channel["price:BTCUSDT"] if not m.get("snapshot")]
    assert len(prices) >= 3  # at least once a second
    for m in prices:
        d = m["data"]
        assert set(d) == {
            "price",
            "change24h",
            "changePercent24h",
            "high24h",
            "low24h",
            "volume24h",
            "timestamp",
        }
        assert all(isinstance(v, NUMBER) for v in d.values())
        assert d["low24h"] <= d["price"] <= d["high24h"]
    tickers = by_channel["ticker:BTCUSDT"]
    for m in tickers:
        d = m["data"]
        assert d["bid"] < d["price"] < d["ask"]
        assert abs(d["price"] - d["open24h"] - d["change24h"]) < 0.01
    trades = by_channel["trades:BTCUSDT"]
    assert trades and all(t["data"]["side"] in ("buy", "sell") for t in trades)
    ids = [t["data"]["id"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # every trade, none conflated
    seconds = [k for k in by_channel["klines:BTCUSDT:1s"] if k["data"]["isFinal"]]
    assert seconds, "a final 1s candle closes every second"
    first_trade_second = trades[0]["data"]["timestamp"] // 1000
    for candle in seconds:
        d = candle["data"]
        assert candle["interval"] == "1s"
        assert d["low"] <= min(d["open"], d["close"]) <= max(d["open"], d["close"]) <= d["high"]
        if d["time"] <= first_trade_second:
            continue  # may hold trades from before we subscribed
        inside = [t["data"] for t in trades if t["data"]["timestamp"] // 1000 == d["time"]]
        if inside:
            assert d["open"] == inside[0]["price"] and d["close"] == inside[-1]["price"]
            assert d["high"] == max(t["price"] for t in inside)
            assert abs(d["volume"] - sum(t["quantity"] for t in inside)) < 1e-6
    minute = by_channel["klines:BTCUSDT:1m"][-1]["data"]
    assert minute["time"] % 60 == 0
    for m in by_channel["depth:BTCUSDT"]:
        d = m["data"]
        assert len(d["bids"]) == 10 and len(d["asks"]) == 10
        assert d["bids"][0][0] < d["asks"][0][0]
        assert isinstance(d["lastUpdateId"], int)
