"""tickwire.node: the composition root builds the parts the settings name, wires data
forward and demand back, starts and stops them in order, and reports upstream health."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tickwire.bus.memory import MemoryBus
from tickwire.bus.redis import RedisBus
from tickwire.config import Settings, replace
from tickwire.node import Node
from tickwire.publications import ChannelStatus
from tickwire.sources.base import SourceKind
from tickwire.sources.binance import BinanceSource
from tickwire.sources.follower import FollowerSource
from tickwire.sources.replay import ReplaySource
from tickwire.sources.simulated import SimulatedSource

from .helpers import FakeSource, eventually
from .redis_server import RedisServer


CAPTURE = Path(__file__).parent / "data" / "binance" / "session.capture.jsonl"


class Subscriber:
    """A hub subscriber that counts the frames pushed to it."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []

    def push_latest(self, channel: str, frame: bytes) -> None:
        self.frames.append((channel, frame))

    def push_final(self, channel: str, frame: bytes) -> None:
        self.frames.append((channel, frame))

    def push_state(self, channel: str, frame: bytes, snapshot: bool, view: object) -> None:
        self.frames.append((channel, frame))


class LoggedBus(MemoryBus):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def start(self) -> None:
        self.log.append("bus start")

    async def close(self) -> None:
        self.log.append("bus close")
        await super().close()


class LoggedSource(FakeSource):
    def __init__(self, log: list[str], *, crash: bool = False) -> None:
        super().__init__("logged")
        self.log = log
        self.crash = crash

    async def run(self) -> None:
        self.log.append("source run")
        if self.crash:
            raise RuntimeError("upstream exploded")
        try:
            await super().run()
        except asyncio.CancelledError:
            self.log.append("source cancelled")
            raise


def test_default_settings_build_the_simulated_source_on_the_memory_bus() -> None:
    node = Node(Settings())
    assert isinstance(node.source, SimulatedSource) and isinstance(node.bus, MemoryBus)
    assert node.ingest.source is node.source


@pytest.mark.parametrize(
    ("changes", "cls"),
    [
        ({"source": "replay", "replay_file": str(CAPTURE)}, ReplaySource),
        ({"source": "binance"}, BinanceSource),  # built, not started: nothing connects
    ],
)
def test_the_settings_name_the_source(changes: dict[str, str], cls: type) -> None:
    node = Node(replace(Settings(), **changes))
    assert isinstance(node.source, cls) and node.source.name == changes["source"]


async def test_demand_flows_back_and_data_forward() -> None:
    node = Node(replace(Settings(), linger=0.05, resume_window=0.05, seed=3))
    sub = Subscriber()
    await node.start()
    try:
        await node.hub.subscribe(sub, "trades:BTCUSDT")
        assert node.ingest.open_channels == ["trades:BTCUSDT"]  # hub -> bus -> ingest -> source
        await eventually(lambda: len(sub.frames) >= 3, what="simulated trades")  # source -> ... -> hub
        assert {channel for channel, _ in sub.frames} == {"trades:BTCUSDT"}
        assert node.stats.messages_out >= 3  # the hub reports deliveries to the node's stats
        node.hub.unsubscribe(sub, "trades:BTCUSDT")
        assert node.hub.idle_channels() == ["trades:BTCUSDT"]  # kept for resumes, then let go
        await eventually(lambda: node.ingest.open_channels == [], what="the resume window and the linger")
        assert node.hub.idle_channels() == []
    finally:
        await node.stop()


async def test_start_and_stop_in_order() -> None:
    log: list[str] = []
    source = LoggedSource(log)
    node = Node(replace(Settings(), linger=0.05), source=source, bus=LoggedBus(log))
    await node.start()
    assert log == ["bus start"]  # the bus is up before the source's task runs
    await eventually(lambda: "source run" in log, what="the source task")
    await node.hub.subscribe(Subscriber(), "price:BTCUSDT")
    assert source.open_now == ["price:BTCUSDT"]
    await node.stop()
    assert log == ["bus start", "source run", "source cancelled", "bus close"]


async def test_stop_cancels_the_linger_timers() -> None:
    source = FakeSource()
    node = Node(replace(Settings(), linger=0.05), source=source)
    await node.start()
    sub = Subscriber()
    await node.hub.subscribe(sub, "price:BTCUSDT")
    node.hub.unsubscribe(sub, "price:BTCUSDT")  # lingering
    await node.stop()
    await asyncio.sleep(0.15)  # under test: the linger passes after the stop and nothing fires
    assert source.closed == []


async def test_a_crashing_source_is_logged_and_stop_still_completes(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    node = Node(Settings(), source=LoggedSource(log, crash=True), bus=LoggedBus(log))
    with caplog.at_level(logging.ERROR, logger="tickwire.node"):
        await node.start()
        await eventually(lambda: "source logged stopped" in caplog.text, what="the crash logged")
    assert "upstream exploded" in caplog.text
    await node.stop()
    assert log == ["bus start", "source run", "bus close"]


async def test_upstream_health_lists_the_stale_channels_the_hub_knows() -> None:
    source = FakeSource("fake")
    node = Node(Settings(), source=source)
    await node.hub.subscribe(Subscriber(), "price:BTCUSDT")
    await node.hub.subscribe(Subscriber(), "depth:ETHUSDT")
    assert node.upstream_health().stale_channels == []
    node.bus.publish_status(ChannelStatus("price:BTCUSDT", False, "upstream disconnected", 1))
    node.bus.publish_status(ChannelStatus("trades:SOLUSDT", False, "nobody subscribed", 1))
    health = node.upstream_health()
    assert health.stale_channels == ["price:BTCUSDT"]
    assert (health.source, health.live, health.streams) == ("fake", True, 2)  # the rest is the source's
    node.bus.publish_status(ChannelStatus("price:BTCUSDT", True, None, 2))
    assert node.upstream_health().stale_channels == []


async def test_role_gateway_on_redis_follows_the_leading_ingest(redis_server: RedisServer) -> None:
    base = replace(Settings(), redis_url=redis_server.url, redis_prefix="test-node", linger=0.2)
    gateway = Node(replace(base, role="gateway"))
    assert isinstance(gateway.bus, RedisBus) and not gateway.bus.can_lead
    assert isinstance(gateway.source, FollowerSource)
    assert (gateway.source.name, gateway.source.kind) == ("simulated", SourceKind.SIMULATED)
    await gateway.start()
    try:
        bus = gateway.bus
        await eventually(lambda: bus.connected, what="the gateway on redis")
        health = gateway.upstream_health()
        assert health.follower and not health.live and health.reason == "no ingest leader"
        ingest = Node(replace(base, role="ingest"))
        assert isinstance(ingest.source, SimulatedSource)  # the ingest role holds the upstream
        await ingest.start()
        try:
            await eventually(lambda: gateway.upstream_health().live, what="the leader's health")
            assert gateway.upstream_health().follower
        finally:
            await ingest.stop()
    finally:
        await gateway.stop()
