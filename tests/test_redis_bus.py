"""The bus behaviour suite, run against MemoryBus and RedisBus (real redis-server), plus
what only the Redis bus does: leases, leader election, the seq guard, outages."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tickwire.bus.base import Bus
from tickwire.bus.memory import MemoryBus
from tickwire.bus.redis import RedisBus, decode_message, encode_publication, encode_status
from tickwire.publications import ChannelStatus, Publication
from tickwire.sources import SourceHealth

from .helpers import FACTOR, HubRecorder, eventually, free_port
from .redis_server import RedisServer


class FakeIngest:
    def __init__(self) -> None:
        self.demand: dict[str, bool] = {}
        self.resumed: dict[str, int] = {}

    def on_demand(self, channel: str, wanted: bool) -> None:
        self.demand[channel] = wanted

    def resume_seq(self, channel: str, seq: int) -> None:
        self.resumed[channel] = seq

    def upstream_health(self) -> SourceHealth:
        return SourceHealth(source="fake", live=True, stream_names=sorted(self.demand))

    def known_symbols(self) -> list[str] | None:
        return ["BTCUSDT"]

    def book_snapshot(self, channel: str) -> Publication | None:
        return None


def pub(channel: str, seq: int, *, final: bool = False) -> Publication:
    payload = b'{"type":"price","channel":"%s","seq":%d,"data":{}}' % (channel.encode(), seq)
    return Publication(channel, seq, payload, final, 1_700_000_000_000 + seq)


def fast_redis_bus(url: str, **kwargs: Any) -> RedisBus:
    options: dict[str, Any] = {"lease_ttl": 1.5, "lock_ttl": 1.5, "reconcile_interval": 0.2}
    options.update(kwargs)
    return RedisBus(url, **options)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def node(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, HubRecorder, FakeIngest]]:
    """One node (hub + ingest) on each bus kind; the Redis one leads its upstream."""
    bus: Bus
    if request.param == "memory":
        bus = MemoryBus()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        bus = fast_redis_bus(server.url)
    hub, ingest = HubRecorder(), FakeIngest()
    bus.attach_hub(hub)
    bus.attach_ingest(ingest)
    await bus.start()
    try:
        if isinstance(bus, RedisBus):
            await eventually(lambda: bus.connected and bus.leading, what="the bus to connect and lead")
        yield bus, hub, ingest
    finally:
        await bus.close()


async def test_demand_reaches_the_ingest_and_goes_away(node: tuple[Bus, HubRecorder, FakeIngest]) -> None:
    bus, _, ingest = node
    bus.want("price:BTCUSDT")
    await eventually(lambda: ingest.demand.get("price:BTCUSDT") is True, what="demand")
    bus.unwant("price:BTCUSDT")
    await eventually(lambda: ingest.demand.get("price:BTCUSDT") is False, what="release")


async def test_publications_reach_the_hub_in_order_and_become_the_snapshot(
    node: tuple[Bus, HubRecorder, FakeIngest],
) -> None:
    bus, hub, _ = node
    bus.want("price:BTCUSDT")
    assert await bus.last("price:BTCUSDT") == (None, None)
    for seq in (1, 2, 3):
        bus.publish(pub("price:BTCUSDT", seq))
    await eventually(lambda: len(hub.pubs) == 3, what="three publications")
    assert hub.pubs == [pub("price:BTCUSDT", s) for s in (1, 2, 3)]
    last, status = await bus.last("price:BTCUSDT")
    assert last == pub("price:BTCUSDT", 3) and status is None


async def test_status_is_delivered_and_kept(node: tuple[Bus, HubRecorder, FakeIngest]) -> None:
    bus, hub, _ = node
    bus.want("trades:ETHUSDT")
    await bus.last("trades:ETHUSDT")
    stale = ChannelStatus("trades:ETHUSDT", False, "upstream disconnected", 1_700_000_000_000)
    bus.publish_status(stale)
    await eventually(lambda: hub.statuses == [stale], what="the status")
    assert (await bus.last("trades:ETHUSDT"))[1] == stale


async def test_forget_drops_the_last_value(node: tuple[Bus, HubRecorder, FakeIngest]) -> None:
    bus, hub, _ = node
    bus.want("depth:BTCUSDT")
    await bus.last("depth:BTCUSDT")
    bus.publish(pub("depth:BTCUSDT", 1))
    await eventually(lambda: len(hub.pubs) == 1, what="the publication")
    bus.forget("depth:BTCUSDT")

    async def forgotten() -> bool:
        return await bus.last("depth:BTCUSDT") == (None, None)

    await eventually(forgotten, what="the last value to be forgotten")


async def test_publish_data_numbers_messages_once(node: tuple[Bus, HubRecorder, FakeIngest]) -> None:
    bus, hub, _ = node
    bus.want("signals:BTCUSDT")
    await bus.last("signals:BTCUSDT")

    def encode(seq: int) -> bytes:
        return b'{"type":"signal","channel":"signals:BTCUSDT","seq":%d,"data":{"seq":1}}' % seq

    seqs = [await bus.publish_data("signals:BTCUSDT", encode, event_time=5) for _ in range(3)]
    assert seqs == [1, 2, 3]
    await eventually(lambda: len(hub.pubs) == 3, what="three publications")
    assert [p.seq for p in hub.pubs] == [1, 2, 3]
    assert [p.payload for p in hub.pubs] == [encode(s) for s in (1, 2, 3)]
    assert all(p.final and p.event_time == 5 for p in hub.pubs)


async def test_nothing_arrives_for_a_channel_not_wanted(node: tuple[Bus, HubRecorder, FakeIngest]) -> None:
    bus, hub, _ = node
    bus.want("price:ETHUSDT")
    await bus.last("price:ETHUSDT")
    bus.unwant("price:ETHUSDT")
    if isinstance(bus, RedisBus):  # the memory bus hands every publication to the hub, which filters
        bus.want("price:BTCUSDT")
        await bus.last("price:BTCUSDT")  # subscribed
        bus.publish(pub("price:ETHUSDT", 1))
        # The bus writes its outbox in order and reads one pub/sub connection, so once this
        # later publication has arrived, the one on the unwanted channel would have too.
        bus.publish(pub("price:BTCUSDT", 1))
        await eventually(lambda: hub.pubs, what="the publication on the wanted channel")
        assert hub.pubs == [pub("price:BTCUSDT", 1)]


# -- the wire format ------------------------------------------------------------------


def test_messages_round_trip_including_newlines_in_the_payload() -> None:
    p = Publication("orders:auth0|a:b", 7, b'{"a":"x\ny"}', True, 12)
    assert decode_message(encode_publication(p)) == p
    for reason in ("upstream disconnected", None, "two\nlines"):
        s = ChannelStatus("price:BTCUSDT", False, reason, 99)
        assert decode_message(encode_status(s)) == s
    with pytest.raises(ValueError):
        decode_message(b"X1\n2")


# -- Redis only -----------------------------------------------------------------------


@pytest.mark.redis
async def test_two_nodes_leases_and_snapshot_from_redis(redis_server: RedisServer) -> None:
    ingest_bus = fast_redis_bus(redis_server.url)
    gateway_bus = fast_redis_bus(redis_server.url, can_lead=False)
    ingest, hub = FakeIngest(), HubRecorder()
    ingest_bus.attach_hub(HubRecorder())
    ingest_bus.attach_ingest(ingest)
    gateway_bus.attach_hub(hub)
    gateway_bus.attach_ingest(FakeIngest())
    await ingest_bus.start()
    await gateway_bus.start()
    try:
        await eventually(lambda: ingest_bus.leading and gateway_bus.connected, what="leader and gateway")
        assert not gateway_bus.leading
        gateway_bus.want("price:BTCUSDT")
        await eventually(lambda: ingest.demand.get("price:BTCUSDT") is True, what="cluster demand")
        assert ingest.resumed["price:BTCUSDT"] == 0
        await gateway_bus.last("price:BTCUSDT")
        ingest_bus.publish(pub("price:BTCUSDT", 1))
        await eventually(lambda: len(hub.pubs) == 1, what="publication across nodes")
        # a second gateway that just gained the channel reads the snapshot from Redis at once
        late = fast_redis_bus(redis_server.url, can_lead=False)
        late.attach_hub(HubRecorder())
        await late.start()
        try:
            await eventually(lambda: late.connected, what="late gateway")
            late.want("price:BTCUSDT")
            assert (await late.last("price:BTCUSDT"))[0] == pub("price:BTCUSDT", 1)
        finally:
            await late.close()
        await eventually(lambda: (gateway_bus.health().cluster_demand or 0) >= 1, what="cluster demand stats")
        assert gateway_bus.health().node_demand == 1
        # the seq guard: a publication at or below the stored seq is refused; the ingest skips ahead
        ingest_bus.publish(pub("price:BTCUSDT", 1))
        await eventually(
            lambda: ingest.resumed.get("price:BTCUSDT") == 1 and ingest_bus.refused == 1, what="guard"
        )
        assert len(hub.pubs) == 1
        # a gateway that dies without releasing: its lease expires, then demand goes
        for task in gateway_bus._tasks:
            task.cancel()
        await eventually(lambda: ingest.demand.get("price:BTCUSDT") is False, timeout=6, what="lease expiry")
    finally:
        await gateway_bus.close()
        await ingest_bus.close()


@pytest.mark.redis
async def test_standby_takes_over_and_continues_the_seq(redis_server: RedisServer) -> None:
    a, b = fast_redis_bus(redis_server.url), fast_redis_bus(redis_server.url)
    ingest_a, ingest_b, hub = FakeIngest(), FakeIngest(), HubRecorder()
    gateway = fast_redis_bus(redis_server.url, can_lead=False)
    for bus, ingest in ((a, ingest_a), (b, ingest_b)):
        bus.attach_hub(HubRecorder())
        bus.attach_ingest(ingest)
    gateway.attach_hub(hub)
    for bus in (a, gateway):
        await bus.start()
    try:
        await eventually(lambda: a.leading and gateway.connected, what="a leads")
        await b.start()
        gateway.want("trades:BTCUSDT")
        await gateway.last("trades:BTCUSDT")
        await eventually(lambda: ingest_a.demand.get("trades:BTCUSDT") is True, what="demand at a")
        for seq in range(1, 6):
            a.publish(pub("trades:BTCUSDT", seq, final=True))
        await eventually(lambda: len(hub.pubs) == 5, what="five trades")
        assert not b.leading and "trades:BTCUSDT" not in ingest_b.demand
        # the leader dies: no release, its lock expires; b takes over within lock ttl + a step
        for task in a._tasks:
            task.cancel()
        started = time.monotonic()
        await eventually(lambda: b.leading, timeout=5, what="b leads")
        assert time.monotonic() - started < 3.0 * FACTOR
        await eventually(lambda: ingest_b.demand.get("trades:BTCUSDT") is True, what="demand at b")
        assert ingest_b.resumed["trades:BTCUSDT"] == 5  # continues after the last seq
    finally:
        for bus in (gateway, a, b):
            await bus.close()


@pytest.mark.redis
async def test_redis_restart_goes_stale_then_live_and_resubscribes(redis_server: RedisServer) -> None:
    leader, gateway = fast_redis_bus(redis_server.url), fast_redis_bus(redis_server.url, can_lead=False)
    hub = HubRecorder()
    leader.attach_hub(HubRecorder())
    leader.attach_ingest(FakeIngest())
    gateway.attach_hub(hub)
    await leader.start()
    await gateway.start()
    try:
        await eventually(lambda: leader.leading and gateway.connected, what="start")
        gateway.want("price:BTCUSDT")
        await gateway.last("price:BTCUSDT")
        leader.publish(pub("price:BTCUSDT", 1))
        await eventually(lambda: len(hub.pubs) == 1, what="first")
        redis_server.stop()
        await eventually(lambda: not gateway.connected, what="gateway notices")
        assert gateway.health().connected is False
        assert [(s.live, s.reason) for s in hub.statuses] == [(False, "bus disconnected")]
        assert (await gateway.last("price:BTCUSDT"))[1].live is False  # type: ignore[union-attr]
        redis_server.start()
        await eventually(lambda: gateway.connected and leader.leading, timeout=10, what="recovery")
        await eventually(lambda: len(hub.statuses) == 2, what="live again")
        assert hub.statuses[-1].live is True
        assert gateway.reconnects == 1
        leader.publish(pub("price:BTCUSDT", 2))
        await eventually(lambda: len(hub.pubs) == 2, what="data after the restart")
        assert hub.pubs[-1].seq == 2
    finally:
        await gateway.close()
        await leader.close()


# -- Redis unreachable: operators hear it ------------------------------------------------------


def _bus_log(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tickwire.bus.redis" and r.levelno == level]


def _attempts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The read loop's failed connection attempts, at either level."""
    return [
        m
        for m in _bus_log(caplog, logging.WARNING) + _bus_log(caplog, logging.DEBUG)
        if m.startswith(("redis bus cannot reach", "redis bus still down"))
    ]


@pytest.mark.parametrize("every", [30.0, 0.0])
async def test_an_unreachable_redis_is_a_warning_with_the_url_repeated_at_most_every_interval(
    every: float, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tickwire.bus.redis._hub._DOWN_WARNING_EVERY_S", every)
    port = free_port()  # nothing listens there
    bus = RedisBus(f"redis://:pw-of-the-test@127.0.0.1:{port}/0", can_lead=False, rng=random.Random(7))
    bus.attach_hub(HubRecorder())
    caplog.set_level(logging.DEBUG, logger="tickwire.bus.redis")
    await bus.start()
    try:
        await eventually(lambda: len(_attempts(caplog)) >= 3, what="three failed connection attempts")
    finally:
        await bus.close()
    warnings = _bus_log(caplog, logging.WARNING)
    assert warnings[0].startswith(f"redis bus cannot reach redis://:[redacted]@127.0.0.1:{port}/0 (")
    assert not bus.connected
    if every:  # within the interval, the retries after the first are DEBUG only
        assert len(warnings) == 1
    else:  # once the interval has passed, the next failure warns again
        assert len(warnings) >= 3
    assert "pw-of-the-test" not in caplog.text
