"""The client library resumes on every reconnect: positions, ``since``, Recovered / NotRecovered,
and ``tickwire probe``'s count of them (docs/resume.md)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tickwire import client
from tickwire.client.positions import Positions
from tickwire.tools.probe import Probe

from .helpers import TIMEOUT, FakeSource, eventually, running_gateway
from .test_resume_gateway import TRADES, Tape, flowing


FAST = {"min_delay": 0.05, "max_delay": 0.2, "rng": __import__("random").Random(1)}


def cut(feed: client.Feed) -> None:
    """Drop the feed's TCP connection without a close frame."""
    ws = feed._ws
    assert ws is not None
    transport = ws._writer.transport
    assert transport is not None
    transport.abort()


async def collect(feed: client.Feed, until: Any, timeout: float = TIMEOUT) -> list[client.Message]:
    got: list[client.Message] = []
    async with asyncio.timeout(timeout):
        async for msg in feed:
            got.append(msg)
            if until(msg):
                return got
    raise AssertionError("the feed ended")


async def test_a_feed_cut_off_resumes_every_missed_trade() -> None:
    tape = Tape(FakeSource())
    async with running_gateway(source=tape.source) as gw, client.connect(gw.ws_url, **FAST) as feed:
        await feed.subscribe(TRADES)
        async with flowing(tape):
            before = await collect(feed, lambda m: isinstance(m, client.Trade) and m.seq >= 20)
            position = feed.position("trades:btcusdt")
            assert position is not None and position[1] >= 20
            cut(feed)
            target = tape.next_id + 50  # trades published after the reconnect, live
            after = await collect(feed, lambda m: isinstance(m, client.Trade) and m.seq >= target)
    kinds = [type(m) for m in after]
    assert client.Disconnected in kinds and client.Connected in kinds and client.Gap not in kinds
    [resumed] = [m for m in after if isinstance(m, client.Recovered)]
    assert resumed.channel == TRADES and feed.resumes == [resumed]
    trades = [m for m in before + after if isinstance(m, client.Trade)]
    assert [t.seq for t in trades] == list(range(1, trades[-1].seq + 1))  # none lost, none twice
    assert [t.data.id for t in trades] == [t.seq for t in trades]
    assert gw.gateway.stats.resumes["recovered"] == 1
    assert feed.gaps == 0


async def test_a_restarted_gateway_is_not_recovered_epoch_changed() -> None:
    tape = Tape(FakeSource())
    first = running_gateway(source=tape.source, shutdown_timeout=1.0)
    gw1 = await first.__aenter__()
    try:
        async with client.connect(gw1.ws_url, **FAST) as feed:
            await feed.subscribe(TRADES)
            tape.trade(3)
            await collect(feed, lambda m: isinstance(m, client.Trade) and m.seq == 3)
            await first.__aexit__(None, None, None)
            tape = Tape(FakeSource())
            async with running_gateway(source=tape.source, port=gw1.port):
                lost = await collect(feed, lambda m: isinstance(m, client.NotRecovered))
                assert lost[-1] == client.NotRecovered(TRADES, "epoch_changed")
                await eventually(lambda: tape.source.open_now == [TRADES], what="subscribed again")
                tape.trade()
                [*_, trade] = await collect(feed, lambda m: isinstance(m, client.Trade))
                assert isinstance(trade, client.Trade) and trade.seq == 1
                assert feed.gaps == 0  # a seq that went back is a new start, not a gap
    finally:
        with contextlib.suppress(Exception):
            await first.__aexit__(None, None, None)


def ack(**fields: Any) -> client.Subscribed:
    return client.Subscribed(channel=TRADES, timestamp="", **fields)


def test_positions_follow_acks_and_data() -> None:
    positions = Positions()
    assert positions.acked(ack()) is None and positions.since([TRADES]) == {}  # a v1 gateway
    assert positions.acked(ack(epoch="E.1", seq=10, recoverable=True)) is None
    assert positions.seen(TRADES, 11) == 10
    assert positions.since([TRADES, "price:X1"]) == {TRADES: {"epoch": "E.1", "seq": 11}}
    event = positions.acked(
        ack(epoch="E.1", seq=40, recoverable=True, wasRecovering=True, recovered=True, replayed=29)
    )
    assert event == client.Recovered(TRADES, 29)
    assert positions.get(TRADES) == ("E.1", 11)  # the replay brings it up to 40
    event = positions.acked(
        ack(epoch="E.2", seq=3, recoverable=True, wasRecovering=True, recovered=False, reason="epoch_changed")
    )
    assert event == client.NotRecovered(TRADES, "epoch_changed")
    assert positions.get(TRADES) == ("E.2", 3)  # the snapshot starts again at the top
    positions.forget(TRADES)
    assert positions.get(TRADES) is None


def test_probe_counts_resumes() -> None:
    probe = Probe([TRADES, "signals:X1"])
    probe.add(client.Disconnected(1006, "", 0.1))
    probe.add(client.Recovered(TRADES, 41))
    probe.add(client.NotRecovered("signals:X1", "history_expired"))
    assert (probe.channels[TRADES].resumed, probe.channels[TRADES].replayed) == (1, 41)
    assert probe.channels["signals:X1"].lost == ["history_expired"]
    assert probe.resume_line() == "resumes: 1 recovered (41 replayed), 1 not recovered (history_expired)"
