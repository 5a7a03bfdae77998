"""The write path: one node-level flush per loop iteration, parking on a full socket, write delay.

Sessions over :class:`tests.helpers.FakeTransport` (which buffers like an
asyncio transport and reports ``writing_paused`` over its high-water mark),
fed by a real :class:`Hub` over a :class:`MemoryBus`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tickwire.bus.memory import MemoryBus
from tickwire.channels import Channel, parse_channel
from tickwire.errors import CloseCode
from tickwire.flusher import Flusher
from tickwire.hub import Hub
from tickwire.publications import Publication
from tickwire.session import Limits, Session
from tickwire.stats import Stats

from .helpers import FakeTransport, eventually


NOW_MS = 1_700_000_000_000


async def _any(channel: Channel) -> None:
    return None


def pub(channel: str, seq: int, *, final: bool) -> Publication:
    payload = json.dumps({"type": "x", "channel": channel, "seq": seq}).encode()
    return Publication(channel, seq, payload, final, NOW_MS)


class Rig:
    """A hub, a flusher and ``n`` sessions on the same channels."""

    def __init__(self, n: int = 1, *, write_delay: float = 0.0, **limits: Any) -> None:
        self.bus = MemoryBus()
        self.hub = Hub(self.bus, clock_ms=lambda: NOW_MS)
        self.stats = Stats(clock_ms=lambda: NOW_MS)
        self.flusher = Flusher(write_delay=write_delay, on_flush=self.stats.count_flush)
        self.transports = [FakeTransport() for _ in range(n)]
        self.sessions = [
            Session(
                f"c{i}",
                t,
                self.hub,
                limits=Limits(**limits),
                stats=self.stats,
                clock=lambda: 0.0,
                clock_ms=lambda: NOW_MS,
                validate=_any,
                flusher=self.flusher,
            )
            for i, t in enumerate(self.transports)
        ]
        for session in self.sessions:
            session.start()

    async def join(self, channel: str) -> None:
        for session in self.sessions:
            await self.hub.subscribe(session, channel)
            session.subscriptions[channel] = parse_channel(channel)

    def seqs(self, i: int = 0) -> list[tuple[str, int]]:
        return [(m["channel"], m["seq"]) for m in self.transports[i].read_all()]


async def iterations(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_one_write_per_session_per_iteration_and_no_task_per_delivery() -> None:
    rig = Rig(50)
    await rig.join("trades:BTCUSDT")
    tasks_before = len(asyncio.all_tasks())
    for seq in range(1, 21):  # 20 finals in one iteration
        rig.bus.publish(pub("trades:BTCUSDT", seq, final=True))
    assert len(asyncio.all_tasks()) == tasks_before  # the fan-out made no task, future or await
    assert all(not t.writes for t in rig.transports)  # written in the next iteration, not inline
    await iterations()
    for i, transport in enumerate(rig.transports):
        assert len(transport.writes) == 1  # all 20 frames in one write
        assert rig.seqs(i) == [("trades:BTCUSDT", s) for s in range(1, 21)]
    assert rig.stats.writes == 50 and rig.stats.bytes_out > 0


async def test_frames_of_one_iteration_each_reach_the_socket_in_the_next() -> None:
    rig = Rig(1)
    await rig.join("trades:BTCUSDT")
    for seq in range(1, 4):
        rig.bus.publish(pub("trades:BTCUSDT", seq, final=True))
        await iterations(2)  # hub -> session in this iteration, flush in the next
        assert rig.seqs() == [("trades:BTCUSDT", seq)]


async def test_a_parked_client_conflates_keeps_order_and_resumes_when_the_transport_drains() -> None:
    rig = Rig(2, high_water=0)  # any unsent byte pauses writing
    await rig.join("price:BTCUSDT")
    await rig.join("trades:BTCUSDT")
    slow, fast = rig.transports
    slow.stall()  # this client stops reading
    rig.bus.publish(pub("trades:BTCUSDT", 1, final=True))
    await iterations()
    assert rig.sessions[0]._parked is not None  # parked after its first write
    for seq in range(2, 40):
        rig.bus.publish(pub("price:BTCUSDT", seq, final=False))
        if seq % 5 == 0:
            rig.bus.publish(pub("trades:BTCUSDT", seq, final=True))
        await iterations(2)
        fast.read_all()  # the other client keeps up: it is never held back
    assert len(slow.writes) == 1  # nothing written while parked
    assert rig.sessions[0].queued <= 1 + 7 * 2  # the latest values conflated; finals and pins queued
    slow.release()  # the client reads again: the transport resumes writing
    await eventually(lambda: len(slow.writes) >= 2, what="the parked client's next write")
    got = rig.seqs(0)
    by_channel: dict[str, list[int]] = {}
    for channel, seq in got:
        by_channel.setdefault(channel, []).append(seq)
    assert by_channel["trades:BTCUSDT"] == [1, 5, 10, 15, 20, 25, 30, 35]  # every final, in order
    prices = by_channel["price:BTCUSDT"]
    assert prices == sorted(prices) and prices[-1] == 39  # in order, ending with the newest value
    assert len(prices) < 38  # fewer, fresher values
    assert rig.sessions[0]._parked is None and not rig.sessions[0].closed


async def test_a_parked_client_over_the_final_bound_is_closed_with_4008() -> None:
    rig = Rig(1, high_water=0, max_queue=10)
    await rig.join("trades:BTCUSDT")
    rig.transports[0].stall()
    for seq in range(1, 30):
        rig.bus.publish(pub("trades:BTCUSDT", seq, final=True))
        await iterations(2)
    assert rig.transports[0].closed is not None and rig.transports[0].closed[0] == CloseCode.SLOW_CONSUMER
    assert rig.stats.slow_disconnects == 1
    await rig.sessions[0].cleanup()  # the parked task ends with the session
    assert rig.sessions[0]._parked is None


@pytest.mark.parametrize("delay_ms", [20, 60])
async def test_write_delay_holds_frames_at_most_that_long_and_writes_them_together(delay_ms: int) -> None:
    rig = Rig(1, write_delay=delay_ms / 1000)
    await rig.join("trades:BTCUSDT")
    loop = asyncio.get_running_loop()
    start = loop.time()
    for seq in range(1, 6):
        rig.bus.publish(pub("trades:BTCUSDT", seq, final=True))
        await asyncio.sleep(0.002)  # spread over a few ms, as a live feed is
    transport = rig.transports[0]
    assert not transport.writes  # held
    await eventually(lambda: bool(transport.writes), timeout=1.0, what="the delayed write")
    waited = loop.time() - start
    assert waited >= delay_ms / 1000 * 0.9  # not written before the delay
    assert waited < delay_ms / 1000 + 0.25  # nor much after it (scheduling slack on a busy machine)
    assert len(transport.writes) == 1
    assert rig.seqs() == [("trades:BTCUSDT", s) for s in range(1, 6)]


async def test_acks_errors_and_pongs_go_out_in_order_with_data() -> None:
    rig = Rig(1)
    await rig.join("trades:BTCUSDT")
    session = rig.sessions[0]
    rig.bus.publish(pub("trades:BTCUSDT", 1, final=True))
    await session.receive(json.dumps({"type": "ping", "id": "p"}))
    rig.bus.publish(pub("trades:BTCUSDT", 2, final=True))
    await session.receive("not json")
    await iterations()
    got = rig.transports[0].read_all()
    assert [m.get("seq", m["type"]) for m in got] == [1, "pong", 2, "error"]


async def test_flusher_cancel_forgets_pending_sessions() -> None:
    flushed: list[int] = []

    class Probe:
        high_water = 100
        socket = FakeTransport()

        def take(self) -> bytes:
            flushed.append(1)
            return b"x" * 10

        def park(self) -> None:
            raise AssertionError("10 bytes are under the high-water mark")

    counts: list[tuple[int, int]] = []
    flusher = Flusher(on_flush=lambda writes, nbytes: counts.append((writes, nbytes)))
    flusher.mark(Probe())
    flusher.mark(Probe())
    await iterations()
    assert flushed == [1, 1] and counts == [(2, 20)]  # one stats call per flush
    flusher.mark(Probe())
    flusher.cancel()
    await iterations()
    assert flushed == [1, 1]
