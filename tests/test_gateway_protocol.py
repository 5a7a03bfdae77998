"""The client protocol of docs/protocol.md over real sockets, against the default gateway."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from .helpers import Client, Running, eventually, running_gateway


async def test_welcome_shape(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        welcome = client.welcome
        assert welcome["type"] == "connected" and welcome["authenticated"] is False
        assert welcome["clientId"].startswith("ws_")
        assert welcome["timestamp"].endswith("Z")


async def test_acks_in_request_order_with_id_and_errors_per_channel(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        answers = await client.subscribe(
            "price:btcusdt",
            "prices:BTCUSDT",
            "klines:ETHUSDT:5m",
            "klines:ETHUSDT:7m",
            "trades:NOPEUSDT",
            "orders:u1",
            id="req-1",
        )
        assert [(a["type"], a.get("code"), a["channel"]) for a in answers] == [
            ("subscribed", None, "price:BTCUSDT"),
            ("error", "INVALID_CHANNEL", "prices:BTCUSDT"),
            ("subscribed", None, "klines:ETHUSDT:5m"),
            ("error", "INVALID_CHANNEL", "klines:ETHUSDT:7m"),
            ("error", "UNKNOWN_SYMBOL", "trades:NOPEUSDT"),
            ("error", "UNAUTHORIZED", "orders:u1"),
        ]
        assert all(a["id"] == "req-1" for a in answers)
        await client.send({"type": "list", "id": 5})
        listing = await client.recv_until(lambda m: m["type"] == "subscriptions")
        assert listing == {
            "type": "subscriptions",
            "channels": ["price:BTCUSDT", "klines:ETHUSDT:5m"],
            "id": 5,
        }


async def test_snapshot_follows_ack_for_second_subscriber(running: Running) -> None:
    async with Client.connect(running.ws_url) as first:
        await first.subscribe("ticker:ETHUSDT")
        update = await first.recv_until(lambda m: m["type"] == "ticker")
        async with Client.connect(running.ws_url) as second:
            [ack] = await second.subscribe("ticker:ethusdt")
            assert ack["type"] == "subscribed"
            snapshot = await second.recv()
            assert snapshot["snapshot"] is True and snapshot["type"] == "ticker"
            assert snapshot["seq"] >= update["seq"]
            assert set(snapshot["data"]) == set(update["data"])


async def test_ping_pong_and_id_echo(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        await client.send({"type": "ping", "id": 42})
        pong = await client.recv()
        assert pong["type"] == "pong" and pong["id"] == 42 and isinstance(pong["timestamp"], int)


async def test_bad_frames_get_errors_and_connection_keeps_working(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        cases = [
            ("{not json", "INVALID_MESSAGE"),
            ("[]", "INVALID_MESSAGE"),
            ('{"type":"subscribe"}', "INVALID_MESSAGE"),
            ('{"type":"subscribe","channels":[]}', "INVALID_MESSAGE"),
            ('{"type":"subscribe","channels":"price:BTCUSDT"}', "INVALID_MESSAGE"),
            ('{"type":"unsubscribe","channels":[5]}', "INVALID_MESSAGE"),
            ('{"type":"dance"}', "UNKNOWN_TYPE"),
            ('{"type":"auth","token":"x"}', "UNAUTHORIZED"),
        ]
        for frame, code in cases:
            await client.send(frame)
            error = await client.recv()
            assert error["type"] == "error" and error["code"] == code, (frame, error)
        await client.send(b'{"type":"ping"}')  # JSON in a binary frame is accepted too
        assert (await client.recv())["type"] == "pong"
        await client.subscribe("price:BTCUSDT")
        assert (await client.recv_until(lambda m: m["type"] == "price"))["channel"] == "price:BTCUSDT"


async def test_unsubscribe_stops_data_after_ack(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        await client.subscribe("depth:BTCUSDT")
        await client.recv_until(lambda m: m["type"] == "depth")
        await client.send({"type": "unsubscribe", "channels": ["depth:btcusdt"], "id": 1})
        ack = await client.recv_until(lambda m: m["type"] == "unsubscribed")
        assert ack["channel"] == "depth:BTCUSDT" and ack["id"] == 1
        # depth ticks every 100 ms: half a second of silence means nothing leaked after the ack
        await client.send({"type": "ping", "id": "after"})
        late = []
        try:
            while True:
                msg = await client.recv(timeout=0.5)
                if msg["type"] != "pong":
                    late.append(msg)
        except TimeoutError:
            pass
        assert late == []


async def test_subscription_limit() -> None:
    async with running_gateway(max_subscriptions=3) as gw, Client.connect(gw.ws_url) as client:
        answers = await client.subscribe("price:BTCUSDT", "price:ETHUSDT", "price:SOLUSDT", "price:BNBUSDT")
        assert [a["type"] for a in answers] == ["subscribed"] * 3 + ["error"]
        assert answers[3]["code"] == "SUBSCRIPTION_LIMIT"
        more = await client.subscribe("price:XRPUSDT", "price:ADAUSDT", id=2)
        assert [(a["code"], a["id"]) for a in more] == [("SUBSCRIPTION_LIMIT", 2)] * 2
        await client.send({"type": "subscribe", "channels": ["price:BTCUSDT"] * 101, "id": 3})
        whole = await client.recv_until(lambda m: m["type"] == "error")
        assert whole["code"] == "SUBSCRIPTION_LIMIT" and whole["id"] == 3 and "channel" not in whole
        # re-subscribing an existing channel does not count twice
        [again] = await client.subscribe("price:BTCUSDT")
        assert again["type"] == "subscribed"


async def test_rate_limit_answers_and_recovers() -> None:
    async with running_gateway(rate=5, burst=5) as gw, Client.connect(gw.ws_url) as client:
        for i in range(8):
            await client.send({"type": "ping", "id": i})
        answers = [await client.recv() for _ in range(8)]
        assert [a["type"] for a in answers[:5]] == ["pong"] * 5
        assert all(a["type"] == "error" and a["code"] == "RATE_LIMITED" for a in answers[5:])
        await asyncio.sleep(0.5)  # under test: the bucket refills with time (5/s); no event to poll
        await client.send({"type": "ping", "id": "later"})
        assert (await client.recv())["type"] == "pong"


async def test_persistent_abuse_is_closed_with_1008() -> None:
    async with running_gateway(rate=1, burst=1) as gw, Client.connect(gw.ws_url) as client:
        for _ in range(150):
            await client.send({"type": "ping"})
        code, _ = await client.closed()
        assert code == 1008


async def test_oversize_frame_gets_error_then_1009() -> None:
    async with running_gateway(max_message_size=1024) as gw, Client.connect(gw.ws_url) as client:
        await client.send(json.dumps({"type": "ping", "pad": "x" * 2000}))
        error = await client.recv()
        assert error["type"] == "error" and error["code"] == "MESSAGE_TOO_LARGE"
        code, _ = await client.closed()
        assert code == 1009


async def test_heartbeat_closes_a_client_that_never_answers_pings() -> None:
    async with running_gateway(ping_interval=0.4) as gw:
        async with aiohttp.ClientSession() as http:
            # autoping=False: this client never answers the server's ping frames
            async with http.ws_connect(gw.ws_url, autoping=False) as ws:
                saw_ping = False
                while True:
                    msg = await ws.receive(timeout=5)
                    if msg.type is aiohttp.WSMsgType.PING:
                        saw_ping = True
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        break
                assert saw_ping
        await eventually(lambda: not gw.gateway.sessions, what="the session gone")
        assert gw.gateway.hub.channel_count == 0
