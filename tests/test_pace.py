"""The pace of latest values: after a long flush the hub holds them, so a burst conflates.

A flush of many clients is mostly ``send`` system calls; while it ran, the
loop read nothing. :meth:`Flusher.hold` then asks the hub to wait as long
before fanning out the newest latest value, so a burst that spans many loop
iterations costs a few writes per client instead of one per iteration
(docs/fanout.md, "Bursts"). Final frames and statuses are never held, and
every delivery-class rule of DESIGN.md holds.
"""

from __future__ import annotations

import asyncio
import time

from tickwire.flusher import Flusher
from tickwire.hub import BURST_AUDIENCE
from tickwire.publications import ChannelStatus
from tickwire.session import Limits, Session

from .helpers import FakeTransport, eventually
from .test_flusher import NOW_MS, Rig, iterations, pub


class SlowTransport(FakeTransport):
    """A socket whose every ``write`` costs ``cost`` seconds of CPU, like a ``send`` on a busy VM."""

    cost = 0.0001

    def write(self, data: bytes) -> None:
        until = time.perf_counter() + self.cost
        while time.perf_counter() < until:
            pass
        super().write(data)


class Probe:
    """A flushable session with one pending write on ``socket``."""

    high_water = 1 << 20

    def __init__(self, socket: FakeTransport) -> None:
        self.socket = socket

    def take(self) -> bytes:
        return b"x"

    def park(self) -> None:
        raise AssertionError("one byte is under the high-water mark")


async def test_a_long_flush_asks_for_a_hold_as_long_as_it_took_and_a_short_one_for_none() -> None:
    flusher = Flusher(slow_flush=0.004, max_hold=1.0)
    flusher.mark(Probe(FakeTransport()))
    await iterations()
    assert flusher.hold() == 0.0  # a fast flush: latest values go out in the next iteration

    slow = SlowTransport()
    slow.cost = 0.008
    flusher.mark(Probe(slow))
    await iterations()
    assert slow.writes
    hold = flusher.hold()
    assert 0.0 < hold <= 0.008 * 2  # about as long as the flush took, counted from its end
    await asyncio.sleep(hold + 0.002)
    assert flusher.hold() == 0.0  # and then no longer


async def test_the_hold_is_capped_by_max_hold() -> None:
    flusher = Flusher(slow_flush=0.001, max_hold=0.002)
    slow = SlowTransport()
    slow.cost = 0.02
    flusher.mark(Probe(slow))
    await iterations()
    assert 0.0 < flusher.hold() <= 0.002


async def test_held_latest_values_conflate_to_the_newest_while_finals_and_statuses_go_out_at_once() -> None:
    rig = Rig(1)
    holding = [True]
    rig.hub.hold = lambda _at: 0.1 if holding[0] else 0.0
    await rig.join("price:BTCUSDT")
    await rig.join("trades:BTCUSDT")
    transport = rig.transports[0]
    for seq in range(1, 6):  # five latest values over five iterations
        rig.bus.publish(pub("price:BTCUSDT", seq, final=False))
        await iterations(2)
    assert transport.writes == []  # held
    rig.bus.publish(pub("trades:BTCUSDT", 1, final=True))
    await iterations(2)
    assert rig.seqs() == [("trades:BTCUSDT", 1)]  # a final is never held
    holding[0] = False
    await eventually(lambda: bool(transport.writes), timeout=2.0, what="the held value")
    assert rig.seqs() == [("price:BTCUSDT", 5)]  # only the newest of the burst

    holding[0] = True
    rig.bus.publish(pub("price:BTCUSDT", 6, final=False))
    await iterations(2)
    rig.bus.publish_status(ChannelStatus("price:BTCUSDT", False, "upstream down", NOW_MS))
    await iterations(2)
    got = transport.read_all()
    # data that came before the status goes out before it, at once
    assert [(m["type"], m.get("seq")) for m in got] == [("x", 6), ("status", None)]


async def test_a_final_on_a_channel_with_a_held_latest_value_supersedes_it_in_order() -> None:
    rig = Rig(1)
    until = time.perf_counter() + 0.2  # a hold that ends, as every real one does
    rig.hub.hold = lambda _at: max(0.0, until - time.perf_counter())
    await rig.join("klines:BTCUSDT:1m")
    rig.bus.publish(pub("klines:BTCUSDT:1m", 1, final=False))  # the candle in progress
    await iterations(2)
    rig.bus.publish(pub("klines:BTCUSDT:1m", 2, final=True))  # the candle closes
    await iterations(2)
    assert rig.seqs() == [("klines:BTCUSDT:1m", 2)]  # at once; the older in-progress value dropped
    rig.bus.publish(pub("klines:BTCUSDT:1m", 3, final=False))
    await eventually(lambda: bool(rig.transports[0].writes), timeout=2.0, what="the next candle")
    assert rig.seqs() == [("klines:BTCUSDT:1m", 3)]


async def test_a_burst_over_many_iterations_costs_few_writes_when_flushes_are_slow() -> None:
    """The W5 shape: the real flusher paces the real hub; writes cost CPU as on a busy node."""
    rig = Rig(0)
    rig.flusher = Flusher(slow_flush=0.002, on_flush=rig.stats.count_flush)
    rig.hub.hold = rig.flusher.hold
    rig.transports = [SlowTransport() for _ in range(60)]  # 60 x 0.1 ms: a 6 ms flush
    rig.sessions = [rig_session(rig, i, t) for i, t in enumerate(rig.transports)]
    await rig.join("price:BTCUSDT")
    for seq in range(1, 41):  # one update per iteration, spread over >= 40 ms
        rig.bus.publish(pub("price:BTCUSDT", seq, final=False))
        await asyncio.sleep(0.001)
    await eventually(
        lambda: all(t.written.endswith(b'"seq": 40}') for t in rig.transports), timeout=3.0, what="the newest"
    )
    for i in range(len(rig.transports)):
        seqs = [s for _, s in rig.seqs(i)]
        assert seqs == sorted(seqs) and seqs[-1] == 40  # in order, ending with the newest
        assert len(seqs) <= 15  # without the hold: 40 writes, one per iteration


async def _any_channel(channel: object) -> None:
    return None


def rig_session(rig: Rig, i: int, transport: FakeTransport) -> Session:
    session = Session(
        f"c{i}",
        transport,
        rig.hub,
        limits=Limits(),
        stats=rig.stats,
        clock=lambda: 0.0,
        clock_ms=lambda: NOW_MS,
        validate=_any_channel,
        flusher=rig.flusher,
    )
    session.start()
    return session


async def test_past_its_length_a_hold_lasts_while_values_keep_coming_until_a_pause_or_max_hold() -> None:
    flusher = Flusher(slow_flush=0.001, max_hold=0.08, quiet=0.01)
    slow = SlowTransport()
    slow.cost = 0.004
    flusher.mark(Probe(slow))
    await iterations()
    took = flusher.hold()
    assert 0.0 < took <= 0.008
    await asyncio.sleep(took + 0.001)
    assert flusher.hold() == 0.0 or flusher.hold(time.perf_counter() - 0.02) == 0.0  # no value lately: over

    flusher.mark(Probe(slow))  # a second long flush, then a burst that goes on
    await iterations()
    await asyncio.sleep(flusher.hold() + 0.001)
    burst_at = time.perf_counter()
    wait = flusher.hold(burst_at)  # a value just came: hold until a pause of `quiet`
    assert 0.005 < wait <= 0.01
    ended = time.perf_counter() + 0.1
    while time.perf_counter() < ended and flusher.hold(time.perf_counter()):
        await asyncio.sleep(0.002)  # values keep coming every 2 ms
    held = time.perf_counter() - burst_at
    assert held < 0.08  # never past max_hold after the flush, however long the burst
    assert flusher.hold(time.perf_counter()) == 0.0  # and then the newest goes out


async def test_a_burst_braces_the_pace_even_after_an_old_one_ended_unasked() -> None:
    flusher = Flusher(slow_flush=0.001, max_hold=0.02, quiet=0.01)
    slow = SlowTransport()
    slow.cost = 0.002
    flusher.mark(Probe(slow))
    await iterations()  # a long flush: a pace, which nobody asks about until it is over
    await asyncio.sleep(0.05)
    flusher.brace()  # a burst, long after
    assert 0.005 < flusher.hold(time.perf_counter()) <= 0.01  # held until it pauses


def paced_rig(n: int) -> Rig:
    """``n`` sessions on the real flusher, which paces the real hub as in the gateway."""
    rig = Rig(0)
    rig.flusher = Flusher(on_flush=rig.stats.count_flush, quiet=0.005)
    rig.hub.hold, rig.hub.on_burst = rig.flusher.hold, rig.flusher.brace
    rig.transports = [FakeTransport() for _ in range(n)]
    rig.sessions = [rig_session(rig, i, t) for i, t in enumerate(rig.transports)]
    return rig


async def test_a_burst_to_a_big_audience_is_held_from_its_start_and_written_once() -> None:
    """Two values in one iteration to BURST_AUDIENCE clients: the burst has begun, and its
    first value is not a flush of its own; the newest goes out once the burst pauses."""
    rig = paced_rig(BURST_AUDIENCE)
    await rig.join("price:BTCUSDT")
    seq = 0
    for _ in range(8):  # 8 ticks of 10 values, 1 ms apart (W5's shape, smaller)
        for _ in range(10):
            seq += 1
            rig.bus.publish(pub("price:BTCUSDT", seq, final=False))
        await asyncio.sleep(0.001)
    await eventually(lambda: all(t.writes for t in rig.transports), timeout=2.0, what="the newest value")
    for i in range(len(rig.transports)):
        assert rig.seqs(i) == [("price:BTCUSDT", seq)]  # one write, of the newest


async def test_below_the_audience_a_burst_goes_out_at_once_and_finals_are_never_held() -> None:
    rig = paced_rig(3)
    await rig.join("price:BTCUSDT")
    await rig.join("trades:BTCUSDT")
    for seq in (1, 2, 3):
        rig.bus.publish(pub("price:BTCUSDT", seq, final=False))
    await iterations(3)
    assert rig.seqs(0) == [("price:BTCUSDT", 3)]  # the next iteration: no pace for 3 clients

    big = paced_rig(BURST_AUDIENCE)
    await big.join("price:BTCUSDT")
    await big.join("trades:BTCUSDT")
    for seq in (1, 2):
        big.bus.publish(pub("price:BTCUSDT", seq, final=False))
    big.bus.publish(pub("trades:BTCUSDT", 1, final=True))
    await iterations(3)
    assert big.seqs(0) == [("trades:BTCUSDT", 1)]  # the final at once; the burst's price is held
    transport = big.transports[0]
    await eventually(lambda: bool(transport.writes), timeout=2.0, what="the held price")
    assert big.seqs(0) == [("price:BTCUSDT", 2)]  # the newest, once the burst paused
