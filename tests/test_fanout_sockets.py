"""Fan-out behaviours over real sockets: a gateway on 127.0.0.1, real clients.

A "stalled" client is a raw socket with a tiny receive buffer that stops
reading after its subscribe was acknowledged, so the gateway's socket
buffer really fills up.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tickwire.publications import Publication
from tickwire.server import Gateway

from .helpers import TIMEOUT, Client, FakeSource, Running, eventually, running_gateway


@pytest.fixture
async def quiet() -> AsyncIterator[Running]:
    async with running_gateway(source=FakeSource(), max_queue=16, linger=0.0) as gw:
        yield gw


def publish(gw: Gateway, channel: str, *, final: bool, pad: int = 0) -> int:
    seq = gw.ingest.next_seq(channel)
    kind = channel.partition(":")[0]
    body = {"type": kind, "channel": channel, "seq": seq, "data": {"pad": "x" * pad}}
    gw.bus.publish(Publication(channel, seq, json.dumps(body).encode(), final, 0))
    return seq


class StalledClient:
    """A raw WebSocket client that reads its subscribe answer and then stops reading."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, ws_url: str, *channels: str) -> StalledClient:
        host, port = ws_url.removeprefix("ws://").split("/")[0].split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        client = cls(reader, writer)
        client.send({"type": "subscribe", "channels": list(channels)})
        for _ in range(len(channels) + 1):  # connected + one ack per channel
            await client.recv_text()
        return client

    def send(self, msg: dict[str, Any]) -> None:
        data = json.dumps(msg).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        assert len(data) < 126
        self.writer.write(bytes((0x81, 0x80 | len(data))) + mask + masked)

    async def recv_frame(self) -> tuple[int, bytes]:
        head = await self.reader.readexactly(2)
        n = head[1] & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return head[0] & 0x0F, await self.reader.readexactly(n)

    async def recv_text(self) -> dict[str, Any]:
        while True:
            opcode, data = await self.recv_frame()
            if opcode == 1:
                msg = json.loads(data)
                assert isinstance(msg, dict)
                return msg
            if opcode == 8:
                raise ConnectionError(struct.unpack("!H", data[:2])[0])

    async def close_code(self, timeout: float = TIMEOUT) -> int:
        """Read (skipping data) until the close frame; its code."""
        async with asyncio.timeout(timeout):
            while True:
                opcode, data = await self.recv_frame()
                if opcode == 8:
                    code: int = struct.unpack("!H", data[:2])[0]
                    return code

    def abort(self) -> None:
        self.writer.transport.abort()


def only_session(gw: Gateway) -> Any:
    [session] = gw.sessions
    return session


async def test_overflow_closes_a_stalled_client_with_4008_and_counts_it(quiet: Running) -> None:
    stalled = await StalledClient.connect(quiet.ws_url, "trades:BTCUSDT")
    for _ in range(400):  # ~8 MB: more than the socket buffers, high-water mark and 16 frames
        publish(quiet.gateway, "trades:BTCUSDT", final=True, pad=20_000)
        await asyncio.sleep(0)
        if quiet.gateway.stats.slow_disconnects:
            break
    assert quiet.gateway.stats.slow_disconnects == 1
    assert await stalled.close_code() == 4008
    async with aiohttp.ClientSession() as http:
        async with http.get(quiet.url + "/metrics") as resp:
            text = await resp.text()
    assert "tickwire_slow_consumer_disconnects_total 1.0" in text
    await eventually(lambda: not quiet.gateway.sessions, what="the session gone")
    assert quiet.gateway.hub.channel_count == 0
    stalled.abort()


async def test_a_stalled_client_on_latest_value_channels_is_conflated_and_bounded(quiet: Running) -> None:
    channels = ["price:BTCUSDT", "price:ETHUSDT", "depth:BTCUSDT"]
    stalled = await StalledClient.connect(quiet.ws_url, *channels)
    session = only_session(quiet.gateway)
    high_water = quiet.gateway.limits.high_water
    last: dict[str, int] = {}
    peak_buffer = 0
    for _ in range(600):  # ~36 MB offered to a client that reads nothing
        for channel in channels:
            last[channel] = publish(quiet.gateway, channel, final=False, pad=20_000)
        await asyncio.sleep(0)
        assert session.queued <= len(channels)
        peak_buffer = max(peak_buffer, session._transport.get_write_buffer_size())
    assert not session.closed  # latest-value data never closes a client
    assert quiet.gateway.stats.conflated > 0
    # one coalesced write (at most one frame per channel) past the high-water mark
    assert peak_buffer <= high_water + len(channels) * 20_200
    # when the client reads again it catches up to the newest value of each channel
    seen: dict[str, int] = {}
    async with asyncio.timeout(TIMEOUT):
        while any(seen.get(c) != last[c] for c in channels):
            msg = await stalled.recv_text()
            assert msg["seq"] > seen.get(msg["channel"], 0)  # never out of order
            seen[msg["channel"]] = msg["seq"]
    stalled.abort()


async def test_fast_clients_are_unaffected_by_a_stalled_one(quiet: Running) -> None:
    url = quiet.ws_url
    stalled = await StalledClient.connect(url, "trades:BTCUSDT")
    async with Client.connect(url) as a, Client.connect(url) as b:
        await a.subscribe("trades:BTCUSDT")
        await b.subscribe("trades:BTCUSDT")
        sent: list[int] = []
        got: dict[int, list[int]] = {0: [], 1: []}

        async def read(i: int, client: Client) -> None:
            while len(got[i]) < 300:
                msg = await client.recv()
                if msg["type"] == "trades" and not msg.get("snapshot"):
                    got[i].append(msg["seq"])

        readers = [asyncio.ensure_future(read(0, a)), asyncio.ensure_future(read(1, b))]
        for _ in range(300):
            sent.append(publish(quiet.gateway, "trades:BTCUSDT", final=True, pad=20_000))
            await asyncio.sleep(0.001)  # pacing, not a barrier: a live feed spreads messages out
        await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT)
        assert got[0] == sent and got[1] == sent  # all, in order, nothing lost
        assert await stalled.close_code() == 4008
        assert quiet.gateway.stats.slow_disconnects == 1
    stalled.abort()


async def test_coalesced_writes_keep_order_and_seq_per_channel() -> None:
    async with (
        running_gateway(source=FakeSource()) as quiet,
        Client.connect(quiet.ws_url) as client,
    ):
        await client.subscribe("trades:BTCUSDT", "trades:ETHUSDT", "klines:BTCUSDT:1m")
        sent: dict[str, list[int]] = {"trades:BTCUSDT": [], "trades:ETHUSDT": [], "klines:BTCUSDT:1m": []}
        for i in range(200):  # all in one loop iteration: coalesced into one write
            sent["trades:BTCUSDT"].append(publish(quiet.gateway, "trades:BTCUSDT", final=True))
            sent["trades:ETHUSDT"].append(publish(quiet.gateway, "trades:ETHUSDT", final=True))
            final = i % 50 == 49
            seq = publish(quiet.gateway, "klines:BTCUSDT:1m", final=final)
            if final:
                sent["klines:BTCUSDT:1m"].append(seq)
        last_kline = seq
        got: dict[str, list[int]] = {k: [] for k in sent}
        while len(got["trades:BTCUSDT"]) < 200 or last_kline not in got["klines:BTCUSDT:1m"]:
            msg = await client.recv()
            got[msg["channel"]].append(msg["seq"])
        assert got["trades:BTCUSDT"] == sent["trades:BTCUSDT"]
        assert got["trades:ETHUSDT"] == sent["trades:ETHUSDT"]
        klines = got["klines:BTCUSDT:1m"]
        assert klines == sorted(klines) and set(sent["klines:BTCUSDT:1m"]) <= set(klines)
        assert klines[-1] == last_kline
