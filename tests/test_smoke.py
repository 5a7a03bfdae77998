from __future__ import annotations

from .helpers import Client, Running


async def test_subscribe_gets_ack_snapshot_and_updates(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        assert client.welcome["type"] == "connected"
        [ack] = await client.subscribe("price:btcusdt", id=3)
        assert ack == {
            "type": "subscribed",
            "channel": "price:BTCUSDT",
            "timestamp": ack["timestamp"],
            "id": 3,
            "epoch": ack["epoch"],  # the channel's position (v1.1): its history's name, its last seq
            "seq": ack["seq"],
            "recoverable": True,
        }
        assert isinstance(ack["epoch"], str) and len(ack["epoch"]) >= 8 and isinstance(ack["seq"], int)
        first = await client.recv()
        assert first["type"] == "price" and first["channel"] == "price:BTCUSDT"
        update = await client.recv_until(lambda m: m["type"] == "price" and not m.get("snapshot"))
        assert update["seq"] > first["seq"]
