from __future__ import annotations

from tickwire.server import Gateway

from .helpers import Client


async def test_subscribe_gets_ack_snapshot_and_updates(gateway: Gateway) -> None:
    async with Client.connect(gateway.ws_url) as client:  # type: ignore[attr-defined]
        assert client.welcome["type"] == "connected"
        [ack] = await client.subscribe("price:btcusdt", id=3)
        assert ack == {
            "type": "subscribed",
            "channel": "price:BTCUSDT",
            "timestamp": ack["timestamp"],
            "id": 3,
        }
        first = await client.recv()
        assert first["type"] == "price" and first["channel"] == "price:BTCUSDT"
        update = await client.recv_until(lambda m: m["type"] == "price" and not m.get("snapshot"))
        assert update["seq"] > first["seq"]
