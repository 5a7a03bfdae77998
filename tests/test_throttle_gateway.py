"""Throttle per subscription over real sockets: a gateway on 127.0.0.1 port 0, a FakeSource
the test feeds, and clients written from docs/protocol.md (tests.helpers.Client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import aiohttp
import pytest

from tickwire.events import Kline, Ticker, Trade

from .helpers import Client, FakeSource, Running, eventually, running_gateway


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Running, FakeSource]]:
    source = FakeSource()
    async with running_gateway(source=source) as running:
        yield running, source


def ticker(n: int) -> Ticker:
    return Ticker(symbol="BTCUSDT", price=D(n), open=D(1), high=D(n), low=D(1), change=D(0),
                  change_percent=D(0), volume=D(1), quote_volume=D(1), trades=n, bid=D(n),
                  bid_qty=D(1), ask=D(n), ask_qty=D(1), event_time=n)  # fmt: skip


def kline(n: int, *, final: bool) -> Kline:
    return Kline(symbol="BTCUSDT", interval="1m", open_time=60_000, open=D(1), high=D(n), low=D(1),
                 close=D(n), volume=D(n), final=final, event_time=n)  # fmt: skip


def trade(n: int) -> Trade:
    return Trade(symbol="BTCUSDT", id=n, price=D(n), quantity=D(1), buyer_taker=True, event_time=n)


class Reader:
    """Reads one client's frames in the background, with their arrival times."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.got: list[tuple[float, dict[str, Any]]] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            msg = await self.client.recv(timeout=60)
            self.got.append((loop.time(), msg))

    def of(self, msg_type: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.got if m["type"] == msg_type]

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


async def answers(client: Client, count: int) -> list[dict[str, Any]]:
    got = [await client.recv_until(lambda m: m["type"] in ("subscribed", "error")) for _ in range(count)]
    return got


async def metric(running: Running, line_start: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(running.url + "/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start} in /metrics")


async def test_a_throttled_price_gets_at_most_one_frame_per_window_and_the_last_value(
    gateway: tuple[Running, FakeSource],
) -> None:
    running, source = gateway
    async with Client.connect(running.ws_url) as slow, Client.connect(running.ws_url) as fast:
        await slow.send({"type": "subscribe", "channels": ["price:BTCUSDT"], "options": {"throttleMs": 250}})
        (ack,) = await answers(slow, 1)
        assert ack["options"] == {"throttleMs": 250}
        await fast.subscribe("price:BTCUSDT")
        assert source.sink is not None
        throttled, unthrottled = Reader(slow), Reader(fast)
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while loop.time() - start < 1.5:  # an upstream ticking every ~5 ms for 1.5 s
            n += 1
            source.sink.on_event(ticker(n))
            await asyncio.sleep(0.005)
        took = loop.time() - start
        last = n

        def final_value_arrived() -> bool:
            prices = throttled.of("price")
            return bool(prices) and prices[-1][1]["data"]["price"] == last

        await eventually(final_value_arrived, what="the newest value of the burst")
        await eventually(lambda: unthrottled.of("price")[-1][1]["data"]["price"] == last)
        await throttled.stop()
        await unthrottled.stop()
    prices = throttled.of("price")
    seqs = [m["seq"] for _, m in prices]
    assert seqs == sorted(set(seqs))
    # one frame per 250 ms window, and the one after the last window
    assert len(prices) <= took / 0.25 + 2, [round(t - start, 3) for t, _ in prices]
    assert len(prices) >= 3  # throttled, not stopped
    assert len(unthrottled.of("price")) > 3 * len(prices)  # the same feed, unthrottled
    assert await metric(running, 'tickwire_throttled_messages_total{kind="price"}') > 0


async def test_trades_refuse_a_throttle_with_invalid_message_and_still_subscribe(
    gateway: tuple[Running, FakeSource],
) -> None:
    running, source = gateway
    async with Client.connect(running.ws_url) as client:
        await client.send(
            {"type": "subscribe", "id": 5, "channels": ["trades:BTCUSDT"], "options": {"throttleMs": 500}}
        )
        error, ack = await answers(client, 2)
        assert error["type"] == "error" and error["code"] == "INVALID_MESSAGE"
        assert error["channel"] == "trades:BTCUSDT" and error["id"] == 5
        assert ack["type"] == "subscribed" and ack["options"] == {"throttleMs": 0}
        assert source.sink is not None
        for n in range(1, 21):
            source.sink.on_event(trade(n))
        ids = [(await client.recv_until(lambda m: m["type"] == "trade"))["data"]["id"] for _ in range(20)]
        assert ids == list(range(1, 21))  # every trade, none held


async def test_the_ack_shows_the_rounded_value_and_throttle_0_removes_it(
    gateway: tuple[Running, FakeSource],
) -> None:
    running, source = gateway
    async with Client.connect(running.ws_url) as client:
        await client.send(
            {"type": "subscribe", "channels": ["price:BTCUSDT"], "options": {"throttleMs": 120}}
        )
        (ack,) = await answers(client, 1)
        assert ack["options"] == {"throttleMs": 150}
        await client.send({"type": "subscribe", "channels": ["price:BTCUSDT"], "options": {"throttleMs": 0}})
        (ack,) = await answers(client, 1)
        assert ack["options"] == {"throttleMs": 0}
        assert source.sink is not None
        reader = Reader(client)
        for n in range(1, 31):  # one value per loop iteration or so: nothing to conflate
            source.sink.on_event(ticker(n))
            await asyncio.sleep(0.002)
        await eventually(lambda: any(m["data"]["price"] == 30 for _, m in reader.of("price")))
        await reader.stop()
        assert len(reader.of("price")) >= 25  # far more than one per 150 ms: no throttle left


async def test_a_final_kline_is_not_held_by_a_long_throttle(gateway: tuple[Running, FakeSource]) -> None:
    running, source = gateway
    async with Client.connect(running.ws_url) as client:
        await client.send(
            {"type": "subscribe", "channels": ["klines:BTCUSDT:1m"], "options": {"throttleMs": 60_000}}
        )
        (ack,) = await answers(client, 1)
        assert ack["options"] == {"throttleMs": 60_000}
        assert source.sink is not None
        source.sink.on_event(kline(1, final=False))
        await asyncio.sleep(0)
        source.sink.on_event(kline(2, final=True))
        loop = asyncio.get_running_loop()
        start = loop.time()
        final = await client.recv_until(lambda m: m["type"] == "kline" and m["data"]["isFinal"], timeout=5)
        assert final["data"]["close"] == 2 and loop.time() - start < 5  # not 60 s


async def test_a_throttled_book_gets_snapshots_only_at_most_one_per_window() -> None:
    async with (
        running_gateway() as running,  # the simulated source: a book changing every 100 ms
        Client.connect(running.ws_url) as slow,
        Client.connect(running.ws_url) as fast,
    ):
        await slow.send(
            {"type": "subscribe", "channels": ["book:BTCUSDT:20"], "options": {"throttleMs": 500}}
        )
        (ack,) = await answers(slow, 1)
        assert ack["options"] == {"throttleMs": 500}
        await fast.subscribe("book:BTCUSDT:20")
        throttled, unthrottled = Reader(slow), Reader(fast)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await eventually(lambda: len(throttled.of("book")) >= 4, timeout=10, what="four book snapshots")
        took = loop.time() - start
        await throttled.stop()
        await unthrottled.stop()
    books = throttled.of("book")
    assert all(m.get("snapshot") is True for _, m in books)  # never a diff
    seqs = [m["seq"] for _, m in books]
    assert seqs == sorted(set(seqs))
    assert len(books) <= took / 0.5 + 2
    diffs = [m for _, m in unthrottled.of("book") if not m.get("snapshot")]
    assert len(diffs) > len(books)  # the same book, unthrottled: diffs
