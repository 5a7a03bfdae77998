"""Stall detection: per-kind thresholds scaled to the venue's cadence, trades by their observed rate."""

from __future__ import annotations

import asyncio
import math

from tickwire.sources.binance.watchdog import StallThresholds, StreamWatch

from .fake_binance import FakeBinance, Recorder, binance_gateway
from .helpers import Client, eventually


QUIET = {"stall_trades_min": 30.0, "stall_ticker": 30.0, "stall_kline": 30.0, "stall_depth": 30.0}


# -- the pure watch -------------------------------------------------------------------------


def test_fixed_cadence_streams_have_fixed_thresholds() -> None:
    limits = StallThresholds()
    assert StreamWatch("btcusdt@ticker", limits, 0.0).limit() == 5.0
    assert StreamWatch("btcusdt@kline_1m", limits, 0.0).limit() == 10.0
    assert StreamWatch("btcusdt@depth10@100ms", limits, 0.0).limit() == 2.0
    assert all(v <= 10.0 for v in (limits.ticker, limits.kline, limits.depth))  # stale within 10 s
    watch = StreamWatch("btcusdt@ticker", limits, 100.0)
    watch.seen(101.0)
    assert not watch.overdue(106.0) and watch.overdue(106.01)
    assert watch.silent_for(106.0) == 5.0


def test_trade_threshold_follows_the_observed_rate_between_floor_and_cap() -> None:
    limits = StallThresholds(trades_min=10.0, trades_max=300.0, trades_factor=20.0, trades_samples=3)
    busy = StreamWatch("btcusdt@trade", limits, 0.0)
    assert busy.limit() == 300.0  # no rate known yet: the cap
    for i in range(1, 50):
        busy.seen(i * 0.1)
    assert busy.limit() == 10.0  # 20 gaps of 0.1 s is 2 s: the floor wins
    slow = StreamWatch("lrcbtc@trade", limits, 0.0)
    for i in range(1, 50):
        slow.seen(i * 2.0)
    assert math.isclose(slow.limit(), 40.0)  # 20 mean gaps of 2 s
    assert not slow.overdue(98.0 + 39.0)  # a naturally slow stream is not flagged at the floor
    rare = StreamWatch("xyzbtc@trade", limits, 0.0)
    for i in range(1, 10):
        rare.seen(i * 60.0)
    assert rare.limit() == 300.0  # the cap


def test_duplicates_and_resubscribes_are_not_rate_samples() -> None:
    limits = StallThresholds(trades_min=1.0, trades_factor=10.0, trades_samples=3)
    watch = StreamWatch("btcusdt@trade", limits, 0.0)
    for i in range(1, 6):
        watch.seen(float(i))
        watch.seen(float(i) + 0.001, sample=False)  # the rotation overlap's copy
    assert math.isclose(watch.limit(), 10.0, rel_tol=0.01)  # 10 gaps of ~1 s, not of 1 ms
    watch.restart(100.0)  # reconnected: the gap across it is not a sample
    watch.seen(100.5)
    assert math.isclose(watch.limit(), 10.0, rel_tol=0.01) and watch.silent_for(100.5) == 0.0


# -- against the fake Binance ------------------------------------------------------------------


async def test_a_frozen_ticker_is_stale_within_its_threshold_and_live_when_it_resumes() -> None:
    async with (
        FakeBinance() as fake,
        binance_gateway(fake, **{**QUIET, "stall_ticker": 0.5}) as (gw, _),
        Client.connect(gw.ws_url) as client,
    ):
        await client.subscribe("price:BTCUSDT", "price:ETHUSDT")
        rec = Recorder(client)
        try:
            await eventually(lambda: all(len(rec.data(c)) >= 5 for c in ("price:BTCUSDT", "price:ETHUSDT")))
            loop = asyncio.get_running_loop()
            fake.paused.add("btcusdt@ticker")
            frozen = loop.time()
            await eventually(lambda: rec.statuses("price:BTCUSDT") == ["stale"], timeout=3)
            took = loop.time() - frozen
            assert 0.4 <= took <= 0.5 + 0.5, took  # the threshold, plus a watchdog tick and some slack
            assert "stalled" in rec.of("price:BTCUSDT", "status")[0]["reason"]
            eth = len(rec.data("price:ETHUSDT"))
            await eventually(lambda: len(rec.data("price:ETHUSDT")) >= eth + 10)
            assert rec.statuses("price:ETHUSDT") == []  # the replacement connection carried it on
            assert rec.statuses("price:BTCUSDT") == ["stale"]  # still frozen: no reconnect loop
            fake.paused.discard("btcusdt@ticker")
            await eventually(lambda: rec.statuses("price:BTCUSDT") == ["stale", "live"])
            btc = len(rec.data("price:BTCUSDT"))
            await eventually(lambda: len(rec.data("price:BTCUSDT")) >= btc + 5)
        finally:
            await rec.stop()


async def _trickle(fake: FakeBinance, stream: str, every: float, stop: asyncio.Event) -> None:
    """Publish ``stream`` by hand every ``every`` seconds: a naturally slow symbol."""
    while not stop.is_set():
        await fake.publish(stream, fake.next_payload(stream))
        await asyncio.sleep(every)


async def test_a_busy_trade_stream_that_stops_is_stale_quickly_and_a_slow_one_is_not() -> None:
    floor = 0.6
    busy, slow = "trades:BTCUSDT", "trades:ETHUSDT"
    options = {**QUIET, "stall_trades_min": floor, "stall_trades_factor": 10.0}
    async with (
        FakeBinance() as fake,
        binance_gateway(fake, **options) as (gw, _),
        Client.connect(gw.ws_url) as client,
    ):
        fake.paused.add("ethusdt@trade")  # the feeder leaves it alone: it trades every 0.3 s below
        stop_slow = asyncio.Event()
        trickle = asyncio.get_running_loop().create_task(_trickle(fake, "ethusdt@trade", 0.3, stop_slow))
        await client.subscribe(busy, slow)
        rec = Recorder(client)
        try:
            await eventually(lambda: len(rec.data(busy)) >= 20 and len(rec.data(slow)) >= 6, timeout=8)
            loop = asyncio.get_running_loop()
            fake.paused.add("btcusdt@trade")
            stop_slow.set()
            stopped = loop.time()
            await eventually(lambda: rec.statuses(busy) == ["stale"], timeout=3)
            took = loop.time() - stopped
            assert took <= floor + 0.6, took  # 10 gaps of 50 ms is under the floor: the floor decides
            await asyncio.sleep(max(0.0, stopped + 2.5 * floor - loop.time()))  # under test: a window
            assert rec.statuses(slow) == []  # 10 gaps of 0.3 s: not stale at the busy stream's limit
            await eventually(lambda: rec.statuses(slow) == ["stale"], timeout=6)
            assert loop.time() - stopped >= 2.5  # about 10 of its own gaps
        finally:
            stop_slow.set()
            await trickle
            await rec.stop()
