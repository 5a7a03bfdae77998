"""Faults injected into the fake Binance: every one ends with data flowing again, honestly reported."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tickwire.sources.binance.connection import Connection

from .fake_binance import FakeBinance, Recorder, binance_gateway
from .helpers import Client, Running, eventually, health


TRADES = "trades:BTCUSDT"
PRICE = "price:BTCUSDT"


def trade_ids(rec: Recorder) -> list[int]:
    return [m["data"]["id"] for m in rec.data(TRADES)]


def assert_no_duplicates(rec: Recorder, *, gapless: bool) -> None:
    """Seqs go up by exactly one per channel; trade ids never repeat (nor skip, when ``gapless``)."""
    for channel in (TRADES, PRICE):
        seqs = [m["seq"] for m in rec.data(channel)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), channel
    ids = trade_ids(rec)
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    if gapless:
        assert ids == list(range(ids[0], ids[0] + len(ids)))


async def flowing(rec: Recorder, more: int = 5) -> None:
    """Wait for ``more`` new trades and prices."""
    trades, prices = len(rec.data(TRADES)), len(rec.data(PRICE))
    await eventually(lambda: len(rec.data(TRADES)) >= trades + more and len(rec.data(PRICE)) >= prices + more)


async def stale_then_live(rec: Recorder, gw: Running, reason_part: str) -> None:
    await eventually(lambda: all(rec.statuses(c)[:1] == ["stale"] for c in (TRADES, PRICE)))
    stale = rec.of(TRADES, "status")[0]
    assert reason_part in stale["reason"], stale
    status, body = await health(gw)
    if rec.statuses(TRADES) == ["stale"]:  # not yet recovered: /health says so
        assert status == 503 and body["status"] == "degraded" and body["upstream"]["live"] is False
    await eventually(lambda: all(rec.statuses(c) == ["stale", "live"] for c in (TRADES, PRICE)), timeout=8)
    await flowing(rec)
    status, body = await health(gw)
    assert status == 200 and body["upstream"]["source"] == "binance" and body["upstream"]["live"] is True


async def run_fault(fake: FakeBinance, inject: Any, reason: str, **source: Any) -> tuple[Recorder, Running]:
    async with binance_gateway(fake, **source) as (gw, _), Client.connect(gw.ws_url) as client:
        await client.subscribe(TRADES, PRICE)
        rec = Recorder(client)
        try:
            await flowing(rec)
            await inject()
            await stale_then_live(rec, gw, reason)
        finally:
            await rec.stop()
        return rec, gw


async def test_abrupt_drop() -> None:
    async with FakeBinance() as fake:
        rec, _ = await run_fault(fake, _sync(fake.drop_all), "upstream")
        assert_no_duplicates(rec, gapless=False)
        assert len(fake.conns) >= 2


async def test_silent_stall_is_caught_by_the_watchdog() -> None:
    async with FakeBinance() as fake:
        rec, _ = await run_fault(fake, _sync(fake.stall_all), "stalled")
        assert_no_duplicates(rec, gapless=False)
        await eventually(lambda: not any(c.stalled for c in fake.live_conns()))  # the stalled one was closed


async def test_refused_connects_back_off_and_recover() -> None:
    async with FakeBinance() as fake:

        async def inject() -> None:
            fake.refuse = 3
            fake.drop_all()

        rec, _ = await run_fault(fake, inject, "upstream")
        assert fake.refuse == 0 and fake.connect_attempts >= 5
        assert_no_duplicates(rec, gapless=False)


async def test_policy_close_1008_reconnects() -> None:
    async with FakeBinance() as fake:

        async def inject() -> None:
            await fake.close_all(1008, "Too many requests")

        rec, _ = await run_fault(fake, inject, "1008")
        assert_no_duplicates(rec, gapless=False)


async def test_policy_close_1008_waits_the_policy_backoff() -> None:
    """After a 1008 the reconnect waits ``policy_backoff``, far longer than the ordinary backoff."""
    policy = 1.5
    async with FakeBinance() as fake, binance_gateway(fake, policy_backoff=policy) as (gw, _):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing_trades(rec, 5)
            loop = asyncio.get_running_loop()
            closed = loop.time()
            await fake.close_all(1008, "Too many requests")
            await eventually(lambda: len(fake.conns) == 2, timeout=policy + 3)
            waited = fake.conns[1].opened - closed  # the fake's clock is this loop's monotonic clock
            assert policy <= waited <= policy + 1.0, waited  # the ordinary backoff here is at most 0.3 s
            await flowing_trades(rec, 5)
            await rec.stop()
            assert fake.connect_attempts == 2


async def test_a_control_task_that_fails_is_logged_and_the_connection_restarts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    injected = RuntimeError("injected control failure")
    real = Connection._send_control
    calls = 0

    async def failing_once(self: Connection, ws: Any, method: str, params: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise injected
        await real(self, ws, method, params)

    quiet = {"stall_trades_min": 30.0, "stall_ticker": 30.0}  # only the restart can bring PRICE
    caplog.set_level(logging.INFO, "tickwire.upstream.binance")
    async with (
        FakeBinance() as fake,
        binance_gateway(fake, **quiet) as (gw, _),
        Client.connect(gw.ws_url) as client,
    ):
        await client.subscribe(TRADES)  # in the connect URL: no control message yet
        rec = Recorder(client)
        await flowing_trades(rec, 5)
        monkeypatch.setattr(Connection, "_send_control", failing_once)
        await client.send(
            {"type": "subscribe", "channels": [PRICE]}
        )  # a live SUBSCRIBE: the control task dies
        await eventually(lambda: len(fake.conns) == 2)
        [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "control task failed" in failure.getMessage() and failure.exc_info is not None
        assert failure.exc_info[1] is injected
        assert fake.conns[1].url_streams == ["btcusdt@ticker", "btcusdt@trade"]  # back, with both
        await flowing(rec)
        await rec.stop()
        _, body = await health(gw)
        assert body["upstream"]["controlFailures"] == 1 and body["upstream"]["live"] is True
        assert body["upstream"]["connects"] == 2


async def test_garbage_frames_are_skipped_without_an_outage() -> None:
    async with FakeBinance() as fake, binance_gateway(fake) as (gw, _), Client.connect(gw.ws_url) as client:
        await client.subscribe(TRADES, PRICE)
        rec = Recorder(client)
        await flowing(rec)
        await fake.garbage(
            "not json", b"\x00\xff", '{"stream":"btcusdt@trade","data":{"e":"trade"}}', "[1,2]"
        )
        await flowing(rec, 10)
        await rec.stop()
        assert rec.statuses(TRADES) == [] and rec.statuses(PRICE) == []
        _, body = await health(gw)
        assert body["upstream"]["garbageFrames"] == 4 and body["upstream"]["live"] is True
        assert_no_duplicates(rec, gapless=True)


async def test_server_shutdown_rotates_without_gap_or_duplicate() -> None:
    async with FakeBinance() as fake, binance_gateway(fake) as (gw, _), Client.connect(gw.ws_url) as client:
        await client.subscribe(TRADES, PRICE)
        rec = Recorder(client)
        await flowing(rec)
        await fake.server_shutdown(close_after=0.6)
        await eventually(lambda: len(fake.conns) == 2)
        await eventually(lambda: fake.conns[0].closed, what="the old connection to close")
        await flowing(rec, 10)
        await rec.stop()
        assert rec.statuses(TRADES) == [] and rec.statuses(PRICE) == []  # make-before-break
        assert_no_duplicates(rec, gapless=True)
        assert len(fake.live_conns()) == 1
        _, body = await health(gw)
        assert body["upstream"]["rotations"] == 1 and body["upstream"]["duplicatesDropped"] > 0


async def test_rotation_before_the_connection_lifetime() -> None:
    async with FakeBinance(lifetime=1.2) as fake:  # the venue's 24 h cut, shortened
        async with binance_gateway(fake, rotate_after=0.5) as (gw, _), Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES, PRICE)
            rec = Recorder(client)
            await eventually(lambda: len(fake.conns) >= 4 and len(trade_ids(rec)) >= 30, what="rotations")
            await rec.stop()
            assert len(fake.conns) >= 4
            assert not any(c.close_code == 1001 for c in fake.conns)  # never cut by the server
            assert rec.statuses(TRADES) == [] and rec.statuses(PRICE) == []
            assert_no_duplicates(rec, gapless=True)
            assert len(trade_ids(rec)) >= 30


@pytest.mark.parametrize("form", ["nested", "flat"])
async def test_refused_subscription_is_reported_stale(form: str) -> None:
    async with FakeBinance(error_form=form) as fake:
        async with binance_gateway(fake) as (gw, _), Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await eventually(lambda: len(rec.data(TRADES)) >= 3)
            fake.reject_next = (4, "Too many subscriptions")
            await client.send({"type": "subscribe", "channels": ["trades:ETHUSDT"]})
            await eventually(lambda: rec.statuses("trades:ETHUSDT") == ["stale"])
            assert "Too many subscriptions" in rec.of("trades:ETHUSDT", "status")[0]["reason"]
            await flowing_trades(rec, 5)
            assert rec.statuses(TRADES) == []
            status, body = await health(gw)
            assert status == 503 and body["upstream"]["refusedSubscriptions"] == 1
            await rec.stop()


async def flowing_trades(rec: Recorder, more: int) -> None:
    n = len(rec.data(TRADES))
    await eventually(lambda: len(rec.data(TRADES)) >= n + more)


def _sync(fn: Any) -> Any:
    async def call() -> None:
        fn()

    return call
