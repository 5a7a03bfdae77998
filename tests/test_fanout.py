"""Fan-out behaviours at unit level: Hub and Session over a fake transport.

The fake transport buffers like an asyncio transport: ``write`` adds to its
buffer and only the "client" (the test) empties it with :meth:`read_all`.
A client that never reads is a stalled client.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tickwire.bus.memory import MemoryBus
from tickwire.channels import Channel, parse_channel
from tickwire.errors import CloseCode
from tickwire.frames import text_frame
from tickwire.hub import Hub
from tickwire.publications import Publication
from tickwire.session import Limits, Session
from tickwire.stats import Stats

from .helpers import FakeTransport


def _ms() -> int:
    return 1_700_000_000_000


async def _any_channel(channel: Channel) -> None:
    return None


def payload(channel: str, seq: int, **extra: Any) -> bytes:
    return json.dumps({"type": "x", "channel": channel, "seq": seq, **extra}).encode()


def pub(channel: str, seq: int, *, final: bool = False, **extra: Any) -> Publication:
    return Publication(channel, seq, payload(channel, seq, **extra), final, _ms())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def make_session(hub: Hub, stats: Stats, **limits: Any) -> tuple[Session, FakeTransport]:
    transport = FakeTransport()
    session = Session(
        "c1",
        transport,
        hub,
        limits=Limits(**limits),
        stats=stats,
        clock=lambda: 0.0,
        clock_ms=_ms,
        validate=_any_channel,
    )
    return session, transport


async def join(hub: Hub, session: Session, channel: str) -> None:
    """Subscribe as the session does after its checks (no ack: the tests read data only)."""
    await hub.subscribe(session, channel)
    session.subscriptions[channel] = parse_channel(channel)


@pytest.fixture
def hub() -> Hub:
    return Hub(MemoryBus(), clock_ms=_ms)


async def test_conflation_keeps_the_newest_value_for_a_slow_client(hub: Hub) -> None:
    stats = Stats()
    session, transport = make_session(hub, stats, high_water=0)
    await join(hub, session, "price:BTCUSDT")
    session.start()
    hub.on_publication(pub("price:BTCUSDT", 1))
    await settle()
    assert [m["seq"] for m in transport.read_all()] == [1]
    # the client is behind: its buffer holds one write and it does not read
    hub.on_publication(pub("price:BTCUSDT", 2))
    await settle()
    for seq in range(3, 50):
        hub.on_publication(pub("price:BTCUSDT", seq))
        await asyncio.sleep(0)  # one per loop iteration: the hub fans each out, the session conflates
    await settle()
    assert session.queued == 1
    assert [m["seq"] for m in transport.read_all()] == [2]
    await settle()
    assert [m["seq"] for m in transport.read_all()] == [49]  # the newest, never a backlog
    assert stats.conflated == 46
    await session.cleanup()


async def test_every_message_overflow_closes_with_4008_and_counts_it(hub: Hub) -> None:
    stats = Stats()
    session, transport = make_session(hub, stats, high_water=0, max_queue=8)
    await join(hub, session, "trades:BTCUSDT")
    session.start()
    hub.on_publication(pub("trades:BTCUSDT", 1, final=True))
    await settle()  # written; the client does not read, so the writer waits for drain
    for seq in range(2, 10):
        hub.on_publication(pub("trades:BTCUSDT", seq, final=True))
    assert transport.closed is None and session.queued == 8  # max_queue frames may wait
    hub.on_publication(pub("trades:BTCUSDT", 10, final=True))  # one more may not
    assert transport.closed is not None and transport.closed[0] == CloseCode.SLOW_CONSUMER == 4008
    assert stats.slow_disconnects == 1
    assert session.closed and session.queued == 0
    hub.on_publication(pub("trades:BTCUSDT", 11, final=True))  # ignored once closed
    assert stats.slow_disconnects == 1 and session.queued == 0
    await session.cleanup()
    assert hub.channel_count == 0


async def test_coalescing_preserves_order_and_seq_per_channel(hub: Hub) -> None:
    stats = Stats()
    session, transport = make_session(hub, stats)
    for channel in ("trades:BTCUSDT", "trades:ETHUSDT", "price:BTCUSDT"):
        await join(hub, session, channel)
    session.start()
    for seq in range(1, 21):
        hub.on_publication(pub("trades:BTCUSDT", seq, final=True))
        hub.on_publication(pub("price:BTCUSDT", seq))
        hub.on_publication(pub("trades:ETHUSDT", seq, final=True))
    await settle()
    # finals go out in the iteration's write; the hub fans latest values out at the end of
    # the iteration, so they may take a second write, never one per message
    assert len(transport.writes) <= 2
    messages = transport.read_all()
    by_channel: dict[str, list[int]] = {}
    for m in messages:
        by_channel.setdefault(m["channel"], []).append(m["seq"])
    assert by_channel["trades:BTCUSDT"] == list(range(1, 21))
    assert by_channel["trades:ETHUSDT"] == list(range(1, 21))
    assert by_channel["price:BTCUSDT"] == [20]  # conflated within the iteration, newest kept
    await session.cleanup()


async def test_a_final_kline_is_never_dropped_while_in_progress_candles_conflate(hub: Hub) -> None:
    stats = Stats()
    session, transport = make_session(hub, stats, high_water=0)
    channel = "klines:BTCUSDT:1m"
    await join(hub, session, channel)
    session.start()
    hub.on_publication(pub(channel, 1, open=0))
    await settle()
    transport.read_all()
    hub.on_publication(pub(channel, 2, open=0))
    await settle()  # written, client now behind
    # one publication per loop iteration, as a live feed sends them: the hub fans each out,
    # and the stalled client's outbox does the conflating
    for seq in range(3, 10):
        hub.on_publication(pub(channel, seq, open=0))
        await asyncio.sleep(0)
    hub.on_publication(pub(channel, 10, final=True, open=0))  # the candle closes
    for seq in range(11, 20):
        hub.on_publication(pub(channel, seq, open=60))
        await asyncio.sleep(0)
    await settle()
    assert [m["seq"] for m in transport.read_all()] == [2]
    await settle()
    got = [m["seq"] for m in transport.read_all()]
    # the newest in-progress candle before the close, the final candle, the newest after it
    assert got == [9, 10, 19]
    await session.cleanup()


async def test_memory_bound_holds_for_a_client_that_stops_reading(hub: Hub) -> None:
    """Pending frames stay at one per latest-value channel plus < max_queue finals, and the
    transport buffer at one coalesced write past the high-water mark."""
    stats = Stats()
    high_water, max_queue = 4096, 16
    session, transport = make_session(hub, stats, high_water=high_water, max_queue=max_queue)
    channels = [f"price:S{i}USDT" for i in range(5)]
    for channel in channels:
        await join(hub, session, channel)
    session.start()
    big = "x" * 500
    frame_size = len(text_frame(payload(channels[0], 100000, pad=big)))
    for seq in range(1, 2001):
        for channel in channels:
            hub.on_publication(pub(channel, seq, pad=big))
        if seq % 50 == 0:
            await settle()
        assert session.queued <= len(channels)
    assert not session.closed  # latest-value data alone never closes a client
    assert transport.max_buffered <= high_water + len(channels) * frame_size
    # final frames are bounded by max_queue: one over closes the client
    await join(hub, session, "trades:BTCUSDT")
    for seq in range(1, max_queue + 1):
        hub.on_publication(pub("trades:BTCUSDT", seq, final=True))
        assert session.queued <= len(channels) + max_queue
    assert not session.closed
    hub.on_publication(pub("trades:BTCUSDT", max_queue + 1, final=True))
    assert session.closed and transport.closed is not None and transport.closed[0] == 4008
    await session.cleanup()


async def test_fast_clients_are_unaffected_by_a_stalled_one(hub: Hub) -> None:
    stats = Stats()
    stalled, stalled_transport = make_session(hub, stats, high_water=0, max_queue=32)
    fast = [make_session(hub, stats, high_water=0, max_queue=32) for _ in range(3)]
    for session in [stalled, *(s for s, _ in fast)]:
        await join(hub, session, "trades:BTCUSDT")
        session.start()
    received: list[list[int]] = [[] for _ in fast]
    for seq in range(1, 201):
        hub.on_publication(pub("trades:BTCUSDT", seq, final=True))
        await settle()
        for i, (_, transport) in enumerate(fast):
            received[i] += [m["seq"] for m in transport.read_all()]
    assert all(r == list(range(1, 201)) for r in received)
    assert stalled.closed and stalled_transport.closed is not None
    assert stalled_transport.closed[0] == 4008 and stats.slow_disconnects == 1
    for session in [stalled, *(s for s, _ in fast)]:
        await session.cleanup()
    assert hub.channel_count == 0


async def test_status_changes_are_final_and_keep_order_with_data(hub: Hub) -> None:
    from tickwire.publications import ChannelStatus

    stats = Stats()
    session, transport = make_session(hub, stats)
    await join(hub, session, "price:BTCUSDT")
    session.start()
    hub.on_publication(pub("price:BTCUSDT", 1))
    hub.on_status(ChannelStatus("price:BTCUSDT", False, "upstream disconnected", _ms()))
    hub.on_publication(pub("price:BTCUSDT", 2))
    await settle()
    got = [(m["type"], m.get("seq"), m.get("status")) for m in transport.read_all()]
    assert got == [("x", 1, None), ("status", None, "stale"), ("x", 2, None)]
    await session.cleanup()


async def test_a_live_status_carries_the_gap_the_upstream_lost(hub: Hub) -> None:
    from tickwire.publications import ChannelStatus

    session, transport = make_session(hub, Stats())
    await join(hub, session, "trades:BTCUSDT")
    session.start()
    hub.on_status(ChannelStatus("trades:BTCUSDT", False, "upstream disconnected", _ms()))
    hub.on_status(ChannelStatus("trades:BTCUSDT", True, None, _ms(), (101, 104)))
    await settle()
    got = [(m["status"], m.get("gap")) for m in transport.read_all()]
    assert got == [("stale", None), ("live", {"from": 101, "to": 104})]
    await session.cleanup()


async def test_a_burst_within_one_loop_iteration_is_fanned_out_once(hub: Hub) -> None:
    stats = Stats()
    hub = Hub(MemoryBus(), clock_ms=_ms, on_deliver=stats.on_deliver, on_conflated=stats.count_conflated)
    sessions = [make_session(hub, stats) for _ in range(3)]
    for session, _ in sessions:
        await join(hub, session, "price:BTCUSDT")
        session.start()
    for seq in range(1, 1001):  # a burst: no loop iteration in between
        hub.on_publication(pub("price:BTCUSDT", seq))
    await settle()
    for _, transport in sessions:
        assert [m["seq"] for m in transport.read_all()] == [1000]  # the newest value, once
    assert stats.messages_out == 3
    assert stats.conflated == 999 * 3  # every superseded value, counted per subscriber
    assert sum(stats.publications_by_kind.values()) == 1000
    for session, _ in sessions:
        await session.cleanup()


async def test_a_final_kline_supersedes_a_pending_live_candle_in_order(hub: Hub) -> None:
    stats = Stats()
    session, transport = make_session(hub, stats)
    await join(hub, session, "klines:BTCUSDT:1m")
    session.start()
    hub.on_publication(pub("klines:BTCUSDT:1m", 1))
    hub.on_publication(pub("klines:BTCUSDT:1m", 2, final=True))
    hub.on_publication(pub("klines:BTCUSDT:1m", 3))
    await settle()
    assert [m["seq"] for m in transport.read_all()] == [2, 3]
    await session.cleanup()
