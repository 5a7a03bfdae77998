"""The client library's face of throttle: ``subscribe(..., throttle_ms=)`` against a real gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tickwire import client
from tickwire.session import Session
from tickwire.throttle import Held

from . import test_throttle_gateway as throttle_gateway
from .helpers import TIMEOUT, FakeSource, Running, eventually


FAST: dict[str, Any] = {"min_delay": 0.05, "max_delay": 0.2}


gateway = throttle_gateway.gateway  # the same fixture: a gateway fed by a FakeSource
ticker = throttle_gateway.ticker


def hub_subscribers(running: Running, channel: str) -> list[Any]:
    return list(running.gateway.hub._channels[channel].subscribers)


async def test_throttle_ms_is_sent_acked_and_yields_no_gaps(gateway: tuple[Running, FakeSource]) -> None:
    running, source = gateway
    async with client.connect(running.ws_url) as feed:
        assert await feed.subscribe("price:btcusdt", throttle_ms=120) == ["price:BTCUSDT"]
        assert feed.options("price:BTCUSDT") == client.SubscribeOptions(throttleMs=150)  # the gateway's
        assert source.sink is not None
        for n in range(1, 101):
            source.sink.on_event(ticker(n))
            await asyncio.sleep(0.002)
        got: list[Any] = []
        async with asyncio.timeout(TIMEOUT):
            async for msg in feed:
                got.append(msg)
                if isinstance(msg, client.Price) and msg.data.price == 100:
                    break
    prices = [m for m in got if isinstance(m, client.Price)]
    assert not any(isinstance(m, client.Gap) for m in got)  # seq skips by design, not gaps
    assert feed.gaps == 0 and 1 <= len(prices) < 20
    assert [p.seq for p in prices] == sorted({p.seq for p in prices})


async def test_bad_throttles_raise_before_anything_is_sent(gateway: tuple[Running, FakeSource]) -> None:
    running, _ = gateway
    async with client.connect(running.ws_url) as feed:
        with pytest.raises(ValueError, match="trades:BTCUSDT"):
            await feed.subscribe("price:BTCUSDT", "trades:BTCUSDT", throttle_ms=500)
        with pytest.raises(ValueError, match="100 to 60000"):
            await feed.subscribe("price:BTCUSDT", throttle_ms=99)
        with pytest.raises(TypeError):
            await feed.subscribe("price:BTCUSDT", throttle_ms=1.5)  # type: ignore[arg-type]
        assert feed.channels == ()
        assert await feed.subscribe("trades:BTCUSDT", throttle_ms=0) == ["trades:BTCUSDT"]  # 0 is no throttle
    assert running.gateway.stats.errors == {}


async def test_the_throttle_is_subscribed_again_after_a_reconnect(
    gateway: tuple[Running, FakeSource],
) -> None:
    running, _ = gateway
    async with client.connect(running.ws_url, **FAST) as feed:
        await feed.subscribe("price:BTCUSDT", "depth:BTCUSDT", throttle_ms=500)
        await feed.subscribe("trades:BTCUSDT")
        await feed.subscribe("depth:BTCUSDT", throttle_ms=0)  # removed again
        assert feed.options("depth:BTCUSDT").throttleMs == 0
        (first,) = running.gateway.sessions
        first.close(1001, "restarting")
        await eventually(lambda: feed.connections == 2 and len(running.gateway.sessions) == 1)
        second = next(iter(running.gateway.sessions))

        def resubscribed() -> bool:
            return second is not first and set(second.subscriptions) == {
                "price:BTCUSDT",
                "depth:BTCUSDT",
                "trades:BTCUSDT",
            }

        await eventually(resubscribed, what="the three channels subscribed again")
        (price,) = hub_subscribers(running, "price:BTCUSDT")
        assert isinstance(price, Held)
        assert hub_subscribers(running, "trades:BTCUSDT") == [second]
        assert hub_subscribers(running, "depth:BTCUSDT") == [second]
        assert isinstance(second, Session)
        assert feed.options("price:BTCUSDT").throttleMs == 500
        await feed.unsubscribe("price:BTCUSDT")
        assert feed.options("price:BTCUSDT").throttleMs == 0
