"""The client library against a real gateway: typed messages, requests, gaps, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from aiohttp import web

from tickwire import client
from tickwire.channels import parse_channel
from tickwire.errors import ErrorCode, ProtocolError

from .helpers import TIMEOUT, Running, publish_now, running_gateway


async def next_of(
    feed: client.Feed, kind: type[Any] | tuple[type[Any], ...], timeout: float = TIMEOUT
) -> Any:
    """The next message of ``kind`` (skipping others); fails after ``timeout``."""
    async with asyncio.timeout(timeout):
        async for msg in feed:
            if isinstance(msg, kind):
                return msg
    raise AssertionError("the feed ended")


def test_import_pulls_no_server_dependency() -> None:
    code = (
        "import sys, tickwire.client\n"
        "bad = [m for m in ('tickwire.server', 'tickwire.hub', 'tickwire.session', 'prometheus_client',"
        " 'jwt', 'redis', 'uvloop') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_exports_match_all() -> None:
    for name in client.__all__:
        assert hasattr(client, name), name


def test_ws_url_accepts_http_base() -> None:
    assert client.ws_url("http://127.0.0.1:3000") == "ws://127.0.0.1:3000/ws"
    assert client.ws_url("https://example.test/") == "wss://example.test/ws"
    assert client.ws_url("ws://h:1/ws?x=1") == "ws://h:1/ws?x=1"
    with pytest.raises(ValueError):
        client.ws_url("ftp://h/")


async def test_typed_market_messages(running: Running) -> None:
    channels = ["price:btcusdt", "ticker:BTCUSDT", "klines:BTCUSDT:1s", "trades:BTCUSDT", "depth:BTCUSDT"]
    async with client.connect(running.url) as feed:
        assert feed.connected
        names = await feed.subscribe(*channels)
        assert names[0] == "price:BTCUSDT"
        assert feed.channels == tuple(names)
        seen: dict[type[Any], Any] = {}
        async with asyncio.timeout(TIMEOUT):
            async for msg in feed:
                if isinstance(msg, client.DataMessage):
                    seen.setdefault(type(msg), msg)
                if len(seen) == 5:
                    break
    price = seen[client.Price]
    assert price.channel == "price:BTCUSDT" and price.symbol == "BTCUSDT"
    assert isinstance(price.data.price, Decimal) and price.data.price > 0
    assert price.data.timestamp > 1_600_000_000_000
    assert isinstance(seen[client.Ticker].data.bid, Decimal)
    kline = seen[client.Kline]
    assert kline.interval == "1s" and kline.data.low <= kline.data.close <= kline.data.high
    assert kline.data.time < 10_000_000_000  # seconds, not ms
    assert seen[client.Trade].data.side in ("buy", "sell")
    depth = seen[client.Depth]
    assert depth.data.bids[0][0] < depth.data.asks[0][0]
    # the encoder keeps numbers as numbers (watch --json)
    assert b'"price":' in client.encode(price) and b'"price":"' not in client.encode(price)


async def test_subscribe_errors(running: Running) -> None:
    async with client.connect(running.ws_url) as feed:
        with pytest.raises(ProtocolError) as bad:
            await feed.subscribe("prices:BTCUSDT")
        assert bad.value.code is ErrorCode.INVALID_CHANNEL
        with pytest.raises(client.SubscriptionError) as refused:
            await feed.subscribe("price:BTCUSDT", "price:NOPEUSDT", "orders:u1")
        codes = {e.channel: e.code for e in refused.value.errors}
        assert codes == {"price:NOPEUSDT": "UNKNOWN_SYMBOL", "orders:u1": "UNAUTHORIZED"}
        assert feed.channels == ("price:BTCUSDT",)  # the accepted one is kept
        assert await feed.ping() < TIMEOUT


async def test_unsubscribe_stops_messages(running: Running) -> None:
    async with client.connect(running.ws_url) as feed:
        await feed.subscribe("depth:BTCUSDT", "depth:ETHUSDT")
        await next_of(feed, client.Depth)
        assert await feed.unsubscribe("depth:btcusdt") == ["depth:BTCUSDT"]
        assert feed.channels == ("depth:ETHUSDT",)
        seen: list[str] = []
        async with asyncio.timeout(TIMEOUT):
            async for msg in feed:
                if isinstance(msg, client.Depth):
                    seen.append(msg.channel)
                    if len(seen) == 5:  # the book updates every 100 ms
                        break
        assert set(seen) == {"depth:ETHUSDT"}


async def test_signal_and_gap_marker(running: Running) -> None:
    channel = parse_channel("signals:BTCUSDT")
    async with client.connect(running.ws_url) as feed:
        await feed.subscribe(channel.name)
        publish_now(running.gateway, channel, msgspec.Raw(b'{"side":"long","score":0.9}'))
        first = await next_of(feed, client.Signal)
        assert first.data == {"side": "long", "score": 0.9} and first.symbol == "BTCUSDT"
        running.gateway.ingest.next_seq(channel.name)  # a message this client never sees
        running.gateway.ingest.next_seq(channel.name)
        publish_now(running.gateway, channel, msgspec.Raw(b'{"n":4}'))
        gap = await next_of(feed, (client.Gap, client.Signal))
        assert isinstance(gap, client.Gap)
        assert (gap.channel, gap.after, gap.seq, gap.missed) == (channel.name, first.seq, first.seq + 3, 2)
        after = await next_of(feed, client.Signal)
        assert after.seq == first.seq + 3 and after.data == {"n": 4}
        assert feed.gaps == 1


# --- a scripted server: exact frames and close codes ---------------------------------


class Script:
    """A WebSocket server on 127.0.0.1 that plays ``plan(ws, n)`` for its n-th connection."""

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self.connections: list[web.Request] = []

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections.append(request)
        await ws.send_json({"type": "connected", "clientId": f"c{len(self.connections)}",
                            "authenticated": False, "timestamp": "2024-01-01T00:00:00.000Z"})  # fmt: skip
        await self.plan(ws, len(self.connections))
        return ws


@contextlib.asynccontextmanager
async def scripted(plan: Any) -> AsyncIterator[tuple[Script, str]]:
    script = Script(plan)
    app = web.Application()
    app.router.add_get("/ws", script.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield script, f"ws://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


def price(seq: int, snapshot: bool = False, channel: str = "price:BTCUSDT") -> dict[str, Any]:
    data = {"price": 1.5, "change24h": 0, "changePercent24h": 0, "high24h": 2, "low24h": 1,
            "volume24h": 3, "timestamp": 1}  # fmt: skip
    msg = {"type": "price", "channel": channel, "symbol": "BTCUSDT", "seq": seq, "data": data}
    return {"snapshot": True, **msg} if snapshot else msg


async def test_gaps_snapshots_and_restarted_sequences() -> None:
    async def plan(ws: web.WebSocketResponse, n: int) -> None:
        async for frame in ws:
            request = frame.json()
            await ws.send_json(
                {"type": "subscribed", "channel": "price:BTCUSDT", "timestamp": "", "id": request["id"]}
            )
            for seq, snap in [
                (1, False),
                (2, False),
                (5, False),
                (9, True),
                (10, False),
                (2, False),
                (3, False),
            ]:
                await ws.send_json(price(seq, snap))
            await ws.send_json({"type": "novel", "x": 1})  # a future message type
            await ws.send_json(price(5, channel="price:ETHUSDT"))  # never subscribed: not yielded

    async with scripted(plan) as (_, url), client.connect(url) as feed:
        await feed.subscribe("price:BTCUSDT")
        got: list[Any] = []
        async with asyncio.timeout(TIMEOUT):
            async for msg in feed:
                if not isinstance(msg, client.Connected):
                    got.append(msg)
                if isinstance(msg, client.Unknown):
                    break
    kinds = [(type(m).__name__, getattr(m, "seq", None)) for m in got]
    assert kinds == [
        ("Price", 1), ("Price", 2), ("Gap", 5), ("Price", 5), ("Price", 9), ("Price", 10),
        ("Price", 2), ("Price", 3), ("Unknown", None),
    ]  # fmt: skip
    gap = got[2]
    assert gap.after == 2 and gap.missed == 2
    assert got[-1].type == "novel"


FAST = {"min_delay": 0.05, "max_delay": 0.2, "rng": __import__("random").Random(1)}


def close_with(code: int, reason: str = "bye") -> Any:
    async def plan(ws: web.WebSocketResponse, n: int) -> None:
        if n == 1:
            await ws.close(code=code, message=reason.encode())
        else:
            async for _ in ws:
                pass

    return plan


@pytest.mark.parametrize("code", [1008, 1009])
async def test_policy_violation_codes_raise(code: int) -> None:
    async with scripted(close_with(code, "abuse")) as (script, url), client.connect(url, **FAST) as feed:
        with pytest.raises(client.ConnectionClosed) as closed:
            await next_of(feed, client.Price)
        assert closed.value.code == code and closed.value.reason == "abuse"
        await asyncio.sleep(0.3)  # under test: no reconnect comes in this window
        assert len(script.connections) == 1  # never retried
        with pytest.raises(client.ConnectionClosed):
            await feed.subscribe("price:BTCUSDT")


async def test_going_away_reconnects_soon() -> None:
    async with scripted(close_with(1001)) as (_, url), client.connect(url, **FAST) as feed:
        lost = await next_of(feed, client.Disconnected)
        assert lost.code == 1001 and lost.retry_in is not None and lost.retry_in <= 0.05
        again = await next_of(feed, client.Connected)
        assert again.resumed and again.clientId == "c2"
        assert feed.connections == 2


@pytest.mark.parametrize("code", [4008, 4029])
async def test_slow_down_codes_back_off_longer(code: int) -> None:
    loop = asyncio.get_running_loop()
    async with (
        scripted(close_with(code)) as (script, url),
        client.connect(url, long_delay=0.4, **FAST) as feed,
    ):
        lost = await next_of(feed, client.Disconnected)
        start = loop.time()
        assert lost.code == code and 0.4 <= lost.retry_in <= 0.6
        await next_of(feed, client.Connected)
        assert loop.time() - start >= 0.35
        assert len(script.connections) == 2


async def test_expired_token_waits_for_a_new_one() -> None:
    async with scripted(close_with(4001, "token expired")) as (script, url):
        async with client.connect(url, token="old", **FAST) as feed:
            lost = await next_of(feed, client.Disconnected)
            assert lost.code == 4001 and lost.retry_in is None
            await asyncio.sleep(0.4)  # under test: no reconnect comes in this window
            assert len(script.connections) == 1  # waits: the old token would fail again
            feed.set_token("new")
            await next_of(feed, client.Connected)
    assert [r.query.get("token") for r in script.connections] == ["old", "new"]


async def test_first_connect_failure_raises() -> None:
    async with scripted(close_with(1001)) as (_, url):
        pass  # the port is free again
    with pytest.raises(OSError):
        async with client.connect(url, open_timeout=2):
            pass


# --- a real gateway stopped and started again on the same port -----------------------


def gateway_on(port: int) -> contextlib.AbstractAsyncContextManager[Running]:
    return running_gateway(port=port, linger=0.2, shutdown_timeout=1.0)


async def test_reconnect_and_resubscribe_after_gateway_restart() -> None:
    first = gateway_on(0)
    gw1 = await first.__aenter__()
    port = gw1.port
    try:
        async with client.connect(f"ws://127.0.0.1:{port}/ws", **FAST) as feed:
            await feed.subscribe("price:BTCUSDT", "trades:ETHUSDT")
            await next_of(feed, client.Price)
            await first.__aexit__(None, None, None)  # stop mid-stream: clients get 1001
            lost = await next_of(feed, client.Disconnected)
            assert lost.code == 1001
            await next_of(feed, client.Disconnected)  # the port is closed: refused, backing off
            async with gateway_on(port) as gw2:
                welcome = await next_of(feed, client.Connected)
                assert welcome.resumed
                price = await next_of(feed, client.Price)
                trade = await next_of(feed, client.Trade)
                assert price.channel == "price:BTCUSDT" and trade.channel == "trades:ETHUSDT"
                assert set(gw2.gateway.hub.channels()) == {"price:BTCUSDT", "trades:ETHUSDT"}
                assert feed.channels == ("price:BTCUSDT", "trades:ETHUSDT")
    finally:
        with contextlib.suppress(Exception):
            await first.__aexit__(None, None, None)


async def test_example_runs(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    example = runpy.run_path(
        str(__import__("pathlib").Path(__file__).parent.parent / "examples" / "client_feed.py")
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.5):
            await example["main"](running.ws_url, "ETHUSDT")
    out = capsys.readouterr().out
    assert "ETHUSDT" in out and "trade" in out
