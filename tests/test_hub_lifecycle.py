"""Demand, linger and clean-up: after any number of cycles nothing is left behind."""

from __future__ import annotations

import asyncio
import random

from .helpers import Client, eventually, running_gateway


async def test_connect_subscribe_disconnect_cycles_leave_no_entries() -> None:
    rng = random.Random(7)
    channels = [
        "price:BTCUSDT", "ticker:ETHUSDT", "klines:SOLUSDT:1m", "klines:SOLUSDT:1s", "trades:BTCUSDT",
        "depth:XRPUSDT", "price:DOGEUSDT", "signals:BTCUSDT",
    ]  # fmt: skip
    async with running_gateway(linger=0.1, resume_window=0.1) as gw:
        for _ in range(15):
            async with Client.connect(gw.ws_url) as a, Client.connect(gw.ws_url) as b:
                await a.subscribe(*rng.sample(channels, 4))
                await b.subscribe(*rng.sample(channels, 3))
                if rng.random() < 0.5:
                    await a.send({"type": "unsubscribe", "channels": channels[:2]})
                assert gw.gateway.hub.channel_count > 0
        await eventually(lambda: not gw.gateway.sessions, what="every session gone")
        assert gw.gateway.hub.channel_count == 0
        assert gw.gateway.hub.subscription_count == 0
        await eventually(lambda: not gw.gateway.ingest.open_channels, what="every channel released")
        assert gw.gateway.source.streams() == []


async def test_linger_keeps_upstream_open_across_a_reload() -> None:
    async with running_gateway(linger=0.6) as gw:
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe("price:BTCUSDT")
        await eventually(lambda: gw.gateway.hub.channel_count == 0, what="the channel unsubscribed")
        assert gw.gateway.ingest.open_channels == ["price:BTCUSDT"]  # lingering
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe("price:BTCUSDT")
            snapshot = await client.recv()
            assert snapshot.get("snapshot") is True  # the reload is served from the cache at once
            await asyncio.sleep(0.8)  # the window under test: longer than the linger, nothing closes
            assert gw.gateway.ingest.open_channels == ["price:BTCUSDT"]  # re-wanted: the timer was cancelled
        await eventually(lambda: gw.gateway.ingest.open_channels == [], what="the linger over")
        assert gw.gateway.source.streams() == []


async def test_stats_and_metrics_report_clients_channels_and_counts() -> None:
    async with running_gateway() as gw:
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe("price:BTCUSDT", "trades:BTCUSDT", "prices:X")
            await client.recv_until(lambda m: m["type"] == "trade")
            async with client._session.get(gw.url + "/api/v1/ws/stats") as resp:
                body = await resp.json()
            data = body["data"]
            assert body["success"] is True
            assert data["connectedClients"] == 1
            assert data["activeChannels"] == ["price:BTCUSDT", "trades:BTCUSDT"]
            assert data["quoteStreams"] == 1 and data["signalStreams"] == 0
            assert data["binanceStreams"] == 0 and data["binanceActiveStreams"] == []
            assert data["source"] == "simulated"
            assert data["upstreamActiveStreams"] == ["price:BTCUSDT", "trades:BTCUSDT"]
            assert data["priceCache"] >= 1
            assert data["messagesIn"] == 1 and data["messagesOut"] >= 2
            async with client._session.get(gw.url + "/metrics") as resp:
                text = await resp.text()
                assert resp.headers["Content-Type"].startswith("text/plain")
            assert "tickwire_connections 1.0" in text
            assert 'tickwire_subscriptions{kind="trades"} 1.0' in text
            assert 'tickwire_errors_total{code="INVALID_CHANNEL"} 1.0' in text
            assert 'tickwire_upstream_up{source="simulated"} 1.0' in text
            async with client._session.get(gw.url + "/health") as resp:
                health = await resp.json()
                assert resp.status == 200
            assert health["status"] == "ok"
            assert health["upstream"]["source"] == "simulated" and health["upstream"]["simulated"] is True
            async with client._session.get(gw.url + "/") as resp:
                assert resp.status == 200 and "tickwire" in await resp.text()
