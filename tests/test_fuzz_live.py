"""Property test: arbitrary frames thrown at a live gateway each get a protocol answer,
and the connection keeps serving data afterwards (docs/protocol.md, "Errors")."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from .helpers import running_gateway


DIRECT = {"error", "subscribed", "unsubscribed", "pong", "subscriptions", "authenticated"}


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    """One gateway on its own loop in a thread, shared by every example."""
    ready = threading.Event()
    stop: dict[str, Any] = {}

    async def main() -> None:
        async with running_gateway(rate=10_000, burst=10_000, max_message_size=65536) as gw:
            stop["url"] = gw.ws_url
            stop["event"] = asyncio.Event()
            stop["loop"] = asyncio.get_running_loop()
            ready.set()
            await stop["event"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield stop["url"]
    stop["loop"].call_soon_threadsafe(stop["event"].set)
    thread.join(10)


channel_names = st.one_of(
    st.sampled_from(["price:BTCUSDT", "klines:ETHUSDT:1m", "trades:solusdt", "depth:BTCUSDT", "orders:u1"]),
    st.text(max_size=40),
    st.from_regex(
        r"(price|ticker|klines|trades|depth|signals|orders|nope):[A-Za-z0-9:|]{0,12}", fullmatch=True
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "ping", "auth", "list", "bogus"])},
    optional={
        "channels": st.one_of(st.lists(channel_names, max_size=6), json_values),
        "id": st.one_of(st.integers(), st.text(max_size=10), json_values),
        "token": st.one_of(st.text(max_size=30), json_values),
    },
)
frames = st.one_of(
    messages.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)


async def _exchange(url: str, batch: list[str | bytes]) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "connected"
        for n, frame in enumerate(batch):
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            marker = f"marker-{n}"
            await ws.send_str(json.dumps({"type": "ping", "id": marker}))
            direct = 0
            while True:
                msg = await ws.receive(timeout=5)
                assert msg.type is aiohttp.WSMsgType.TEXT, (frame, msg)
                data = json.loads(msg.data)
                if data.get("type") == "pong" and data.get("id") == marker:
                    break
                direct += data.get("type") in DIRECT
            assert direct >= 1, f"no answer to {frame!r}"
        await ws.send_str(json.dumps({"type": "subscribe", "channels": ["trades:BTCUSDT"]}))
        while True:  # the connection still serves data
            data = json.loads((await ws.receive(timeout=5)).data)
            if data.get("type") == "trade":
                break


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=5))
def test_arbitrary_frames_get_answers_and_connection_survives(
    live_url: str, batch: list[str | bytes]
) -> None:
    asyncio.run(_exchange(live_url, batch))
