"""Honest health: not live before the venue was reached and exchangeInfo answered; exchangeInfo backs off."""

from __future__ import annotations

import itertools
import re
from typing import Any

from .fake_binance import FakeBinance, Recorder, binance_gateway
from .helpers import Client, Running, eventually, health


async def health_becomes(gw: Running, status: int, timeout: float = 5.0) -> dict[str, Any]:
    """Poll ``/health`` until it answers ``status``; its body."""

    async def answered() -> dict[str, Any] | None:
        code, body = await health(gw)
        return body if code == status else None

    body: dict[str, Any] = await eventually(answered, timeout, f"/health to answer {status}", interval=0.05)
    return body


def exchange_info_requests(fake: FakeBinance) -> list[float]:
    return [t for t, path, _, _ in fake.rest_log if path == "/api/v3/exchangeInfo"]


async def test_an_upstream_never_reached_is_degraded_until_it_answers() -> None:
    async with FakeBinance() as fake:
        fake.rest_down = "reset"  # REST drops every connection unanswered
        fake.refuse = 10**9  # and every WebSocket handshake is refused
        async with binance_gateway(fake) as (gw, _), Client.connect(gw.ws_url) as client:
            await eventually(lambda: len(exchange_info_requests(fake)) >= 1)
            status, body = await health(gw)
            assert status == 503 and body["status"] == "degraded"
            upstream = body["upstream"]
            assert upstream["live"] is False and upstream["reason"].startswith("upstream never reached")
            assert upstream["symbols"] is None
            await client.subscribe("price:BTCUSDT")  # unchecked (no list): a connection is tried
            await eventually(lambda: fake.connect_attempts >= 2)
            status, body = await health(gw)
            assert status == 503 and body["upstream"]["reason"].startswith("upstream never reached")
            fake.rest_down, fake.refuse = None, 0
            body = await health_becomes(gw, 200, timeout=8)
            assert body["status"] == "ok" and body["upstream"]["live"] is True
            assert "reason" not in body["upstream"] and body["upstream"]["symbols"] == len(fake.symbols)
            rec = Recorder(client)
            await eventually(lambda: len(rec.data("price:BTCUSDT")) >= 3)
            await rec.stop()


async def test_exchange_info_failing_is_degraded_with_its_reason() -> None:
    async with FakeBinance() as fake:
        fake.rest_down = "500"
        async with binance_gateway(fake) as (gw, _), Client.connect(gw.ws_url) as client:
            await eventually(lambda: len(exchange_info_requests(fake)) >= 2)
            await client.subscribe("trades:BTCUSDT")  # the stream itself works
            rec = Recorder(client)
            await eventually(lambda: len(rec.data("trades:BTCUSDT")) >= 3)
            status, body = await health(gw)
            assert status == 503 and body["status"] == "degraded"
            assert body["upstream"]["live"] is False
            assert body["upstream"]["reason"].startswith("exchangeInfo failing"), body
            assert "HTTP 500" in body["upstream"]["reason"]
            fake.rest_down = None
            body = await health_becomes(gw, 200)
            assert body["upstream"]["live"] is True and body["upstream"]["symbols"] == len(fake.symbols)
            await rec.stop()


async def test_exchange_info_retries_back_off_capped() -> None:
    initial, cap = 0.1, 0.8
    async with FakeBinance() as fake:
        fake.rest_down = "500"
        async with binance_gateway(fake, exchange_info_retry=initial, exchange_info_retry_max=cap) as (gw, _):
            await eventually(lambda: len(exchange_info_requests(fake)) >= 8, timeout=15)
            times = exchange_info_requests(fake)[:8]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            # The k-th retry waits at least half of min(initial * 2**(k-1), cap) (jitter takes up
            # to half off), so the gaps grow; one request per watchdog tick would not.
            for k, gap in enumerate(gaps[1:], start=1):
                assert gap >= 0.5 * min(initial * 2 ** (k - 1), cap) - 0.02, (k, gaps)
            assert min(gaps[4:]) >= 0.5 * cap - 0.02, gaps
            tick = 0.25  # the watchdog checks whether a retry is due every tick (FAST: 1 s / 4)
            assert max(gaps) <= cap + tick + 0.3, gaps  # capped
            _, body = await health(gw)
            found = re.match(r"exchangeInfo failing \((\d+) attempts\): HTTP 500", body["upstream"]["reason"])
            assert found is not None and int(found.group(1)) >= 8, body


def test_liveness_rules_in_order() -> None:
    from tickwire.sources.binance.health import liveness

    ok: dict[str, Any] = {"reached": True, "unreached_because": None, "symbols_problem": None, "wanted": True,
          "stream_up": True, "stale": {}}  # fmt: skip
    assert liveness(**ok) == (True, None)
    assert liveness(**{**ok, "reached": False, "unreached_because": "ClientConnectorError: refused"}) == (
        False,
        "upstream never reached: ClientConnectorError: refused",
    )
    failing = "exchangeInfo failing (3 attempts): HTTP 500"
    assert liveness(**{**ok, "symbols_problem": failing}) == (False, failing)
    assert liveness(**{**ok, "stream_up": False}) == (False, "no stream connection up yet")
    assert liveness(**{**ok, "stream_up": False, "wanted": False}) == (True, None)  # REST answered, no demand
    stale = {"ethusdt@trade": "upstream stalled", "btcusdt@ticker": "upstream closed"}
    assert liveness(**{**ok, "stale": stale}) == (False, "2 stale (first btcusdt@ticker: upstream closed)")
