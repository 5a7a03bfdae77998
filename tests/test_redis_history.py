"""History and epochs in Redis: the scripts' semantics against a real redis-server, the
stream read back, pub/sub gaps filled from it, and epochs that change only when Redis
lost the channel's keys (bus/redis/_wire.py, "History in Redis")."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tickwire.bus.redis import RedisBus
from tickwire.bus.redis._hub import DOWN
from tickwire.bus.redis._wire import (
    EPOCH,
    PUBLISH,
    PUBLISH_NEXT,
    SEQ_TTL_MS,
    STATUS,
    Keys,
    decode_message,
    encode_publication,
    encode_status,
    stream_after,
)
from tickwire.publications import ChannelStatus, Publication

from .helpers import HubRecorder, eventually
from .redis_server import RedisServer


pytestmark = pytest.mark.redis

CH = "trades:BTCUSDT"
KEYS = Keys("tickwire", "simulated")  # the bus's defaults, so the bus tests read what the scripts wrote


def trade(seq: int, channel: str = CH) -> Publication:
    payload = b'{"type":"trade","channel":"%s","seq":%d,"data":{"id":%d}}' % (channel.encode(), seq, seq)
    return Publication(channel, seq, payload, True, 1_700_000_000_000 + seq)


def status(live: bool, time: int = 1_700_000_000_000, channel: str = CH) -> ChannelStatus:
    return ChannelStatus(channel, live, None if live else "upstream disconnected", time)


def ids(entries: list[Any]) -> list[str]:
    return [e[0].decode() for e in entries]


class Scripts:
    """The bus's scripts on one channel, called as the ingest calls them."""

    def __init__(self, redis: Redis, channel: str = CH, *, size: int = 100, ttl_ms: int = 60_000) -> None:
        self.r, self.ch, self.size, self.ttl_ms = redis, channel, size, ttl_ms
        k = KEYS
        self.keys = [k.seq(channel), k.last(channel), k.epoch(channel), k.hist(channel)]
        self._publish = redis.register_script(PUBLISH)
        self._next = redis.register_script(PUBLISH_NEXT)
        self._status = redis.register_script(STATUS)
        self._epoch = redis.register_script(EPOCH)

    async def publish(self, seq: int, token: str = "tok", *, pubch: str | None = None) -> Any:
        args: list[Any] = [
            pubch or KEYS.pub(self.ch),
            seq,
            encode_publication(trade(seq, self.ch)),
            SEQ_TTL_MS,
        ]
        return await self._publish(keys=self.keys, args=[*args, token, self.size, self.ttl_ms])

    async def status(self, st: ChannelStatus, token: str = "tok", *, pubch: str | None = None) -> Any:
        keys = [self.keys[0], KEYS.status(self.ch), *self.keys[2:]]
        args: list[Any] = [
            pubch or KEYS.pub(self.ch),
            encode_status(st),
            SEQ_TTL_MS,
            token,
            self.size,
            self.ttl_ms,
        ]
        return await self._status(keys=keys, args=args)

    async def publish_next(self, token: str = "tok") -> list[Any]:
        head, tail = b'{"type":"signal","seq":', b',"data":{}}'
        args: list[Any] = [
            KEYS.pub(self.ch),
            self.ch,
            5,
            head,
            tail,
            SEQ_TTL_MS,
            token,
            self.size,
            self.ttl_ms,
        ]
        result: list[Any] = await self._next(keys=self.keys, args=args)
        return result

    async def epoch(self, token: str) -> bytes:
        result: bytes = await self._epoch(keys=self.keys, args=[KEYS.pub(self.ch), token, SEQ_TTL_MS])
        return result

    async def stream(self, start: str = "-") -> list[Any]:
        entries: Any = await self.r.xrange(KEYS.hist(self.ch), start, "+")
        return list(entries)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


# -- the scripts ---------------------------------------------------------------------------


async def test_publish_appends_after_a_marker_and_makes_the_epoch_once(redis: Redis) -> None:
    s = Scripts(redis)
    assert await s.publish(1, "first") == b"first"  # published, and the epoch it made
    assert await s.publish(2, "second") == 0  # published; the epoch is kept, the token unused
    assert await s.publish(2, "third") == 2  # the seq guard: refused (the stored seq), nothing appended
    assert await redis.get(KEYS.epoch(CH)) == b"first"
    entries = await s.stream()
    assert ids(entries) == ["0-1", "1-0", "2-0"]  # the marker, then one entry per seq
    assert [e[1][b"m"][:1] for e in entries] == [b"M", b"P", b"P"]
    assert stream_after(entries, 0) == [trade(1), trade(2)]
    assert stream_after(await s.stream("1-0"), 1) == [trade(2)]
    assert 29 * 24 * 3600 * 1000 < await redis.pttl(KEYS.epoch(CH)) <= SEQ_TTL_MS  # lives as the seq
    assert 0 < await redis.pttl(KEYS.hist(CH)) <= 60_000  # the kind's expiry


async def test_a_new_epoch_is_announced_before_the_message_that_starts_it(redis: Redis) -> None:
    s = Scripts(redis)
    pubsub = redis.pubsub()
    await pubsub.subscribe(KEYS.pub(CH))
    try:
        await s.publish(1, "one")
        await s.publish(2, "unused")
        await redis.flushall()  # Redis lost the channel's keys
        assert await s.publish(3, "two") == b"two"
        got: list[bytes] = []
        while len(got) < 5:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
            if msg is not None:
                got.append(msg["data"])
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert got[0] == b"Eone" and got[3] == b"Etwo"
    assert [decode_message(m).seq for m in (got[1], got[2], got[4])] == [1, 2, 3]  # type: ignore[union-attr]
    entries = await s.stream()
    assert ids(entries) == ["2-0", "3-0"]  # a new history, whole from position 2 on
    assert stream_after(entries, 2) == [trade(3)]
    assert stream_after(entries, 1) is None  # before the epoch: not in this stream


async def test_maxlen_trims_oldest_first_and_a_trimmed_position_is_refused(redis: Redis) -> None:
    s = Scripts(redis, size=100)
    for seq in range(1, 1001):
        await s.publish(seq)
    length = await redis.xlen(KEYS.hist(CH))
    assert 100 <= length <= 300, length  # MAXLEN ~: at least 100, trimmed in whole nodes
    assert ids(await s.stream())[-1] == "1000-0"
    assert stream_after(await s.stream("5-0"), 5) is None  # 6 and more were trimmed
    tail = stream_after(await s.stream("950-0"), 950)
    assert tail == [trade(s) for s in range(951, 1001)]


async def test_a_status_enters_history_only_when_it_changes_the_state(redis: Redis) -> None:
    s = Scripts(redis)
    assert await s.status(status(True, 1)) == b"tok"  # it made the epoch; a first live status is no change
    await s.publish(1)
    assert await s.status(status(False, 2)) == 0
    await s.status(status(False, 3))  # still stale
    await s.status(status(True, 4))
    await s.publish(2)
    entries = await s.stream()
    assert ids(entries) == ["0-1", "1-0", "1-1", "1-2", "2-0"]
    assert stream_after(entries, 0) == [trade(1), status(False, 2), status(True, 4), trade(2)]
    assert await redis.get(KEYS.status(CH)) == encode_status(status(True, 4))  # the newest, as before


async def test_publish_next_numbers_and_remembers(redis: Redis) -> None:
    s = Scripts(redis, "signals:BTCUSDT")
    first, second = await s.publish_next("sig"), await s.publish_next("other")
    assert (first, second) == ([1, b"sig"], [2, b"sig"])
    found = stream_after(await s.stream(), 0)
    assert [(m.seq, m.payload) for m in found or []] == [  # type: ignore[union-attr]
        (1, b'{"type":"signal","seq":1,"data":{}}'),
        (2, b'{"type":"signal","seq":2,"data":{}}'),
    ]


async def test_the_epoch_script_makes_one_when_missing_and_keeps_it(redis: Redis) -> None:
    s = Scripts(redis)
    assert await s.epoch("a") == b"a"
    assert await s.epoch("b") == b"a"
    await s.publish(1)  # under epoch a
    await redis.delete(KEYS.epoch(CH))  # lost (or released): the history with it
    assert await s.epoch("c") == b"c"
    assert await redis.exists(KEYS.hist(CH)) == 0


async def test_a_stream_ahead_of_a_lost_seq_starts_again_from_a_marker(redis: Redis) -> None:
    s = Scripts(redis)
    for seq in range(1, 6):
        await s.publish(seq)
    await redis.delete(KEYS.seq(CH))  # the seq alone lost: a new leader starts lower
    assert await s.publish(3) == 0  # published (the epoch was kept)
    assert ids(await s.stream()) == ["0-1", "3-0"]  # never an entry out of order
    assert stream_after(await s.stream("2-0"), 2) is None  # 1 and 2 of before are not vouched for


def test_stream_after_refuses_holes_and_starts_it_cannot_vouch_for() -> None:
    def entry(entry_id: str, msg: Publication | ChannelStatus | None) -> list[Any]:
        raw = (
            b"M"
            if msg is None
            else encode_publication(msg)
            if isinstance(msg, Publication)
            else encode_status(msg)
        )
        return [entry_id.encode(), {b"m": raw}]

    whole = [entry("4-0", trade(4)), entry("4-1", status(False)), entry("5-0", trade(5))]
    assert stream_after(whole, 4) == [status(False), trade(5)]
    assert stream_after(whole[1:], 4) is None  # the publication at 4 was trimmed
    assert stream_after([entry("4-0", trade(4)), entry("6-0", trade(6))], 4) is None  # a hole
    assert stream_after([entry("0-1", None), entry("1-0", trade(1))], 0) == [trade(1)]
    assert stream_after([], 0) is None


# -- the bus ------------------------------------------------------------------------------------


def fast_bus(url: str, **kwargs: Any) -> RedisBus:
    options: dict[str, Any] = {"lease_ttl": 1.5, "lock_ttl": 1.5, "reconcile_interval": 0.2}
    return RedisBus(url, **(options | kwargs))


class Ingest:
    def __init__(self) -> None:
        self.resumed: dict[str, int] = {}

    def on_demand(self, channel: str, wanted: bool) -> None:
        pass

    def resume_seq(self, channel: str, seq: int) -> None:
        self.resumed[channel] = seq

    def upstream_health(self) -> Any:
        return None

    def known_symbols(self) -> list[str] | None:
        return None

    def book_snapshot(self, channel: str) -> Any:
        return None


@contextlib.asynccontextmanager
async def leader_and_gateway(
    url: str, *, want: bool = True, **gateway_options: Any
) -> AsyncIterator[tuple[RedisBus, RedisBus, HubRecorder]]:
    """A leading ingest's bus and a gateway's bus (wanting CH when ``want``), with the
    gateway's hub recorder."""
    leader, gateway, hub = (
        fast_bus(url),
        fast_bus(url, can_lead=False, **gateway_options),
        HubRecorder(),
    )
    leader.attach_hub(HubRecorder())
    leader.attach_ingest(Ingest())
    gateway.attach_hub(hub)
    await leader.start()
    await gateway.start()
    try:
        await eventually(lambda: leader.leading and gateway.connected, what="a leader and a gateway")
        if want:
            gateway.want(CH)
            await gateway.last(CH)
        yield leader, gateway, hub
    finally:
        await gateway.close()
        await leader.close()


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[RedisBus, RedisBus, HubRecorder]]:
    async with leader_and_gateway(redis_server.url) as buses:
        yield buses


async def test_a_gateway_reads_the_stream_of_its_epoch_only(
    pair: tuple[RedisBus, RedisBus, HubRecorder],
) -> None:
    leader, gateway, hub = pair
    epoch = await gateway.epoch(CH)
    assert await gateway.epoch(CH) == epoch  # kept in Redis, not per call
    for seq in range(1, 21):
        leader.publish(trade(seq))
    leader.publish_status(status(False))
    await eventually(lambda: len(hub.statuses) == 1, what="the trades, then the status")
    assert [p.seq for p in hub.pubs] == list(range(1, 21))
    assert await gateway.history(CH, epoch, 5, 500) == [*map(trade, range(6, 21)), status(False)]
    assert await gateway.history(CH, epoch, 20, 500) == [status(False)]
    assert len(await gateway.history(CH, epoch, 5, 10) or []) == 11  # limit + 1: too many
    assert await gateway.history(CH, "another", 5, 500) is None
    assert await gateway.history("trades:ETHUSDT", epoch, 0, 500) is None  # no stream at all


async def test_a_pubsub_gap_is_filled_from_the_stream_before_the_later_message(
    redis: Redis, pair: tuple[RedisBus, RedisBus, HubRecorder]
) -> None:
    leader, gateway, hub = pair
    await gateway.epoch(CH)
    for seq in (1, 2):
        leader.publish(trade(seq))
    await eventually(lambda: len(hub.pubs) == 2, what="two trades")
    lost = Scripts(redis)  # 3 and 4 reach Redis, but their pub/sub message is lost
    for seq in (3, 4):
        assert await lost.publish(seq, pubch="nobody-listens") == 0
    await lost.status(status(False), pubch="nobody-listens")  # a status in the gap, lost too
    for seq in (5, 6):
        leader.publish(trade(seq))
    leader.publish_status(status(True))
    await eventually(lambda: len(hub.pubs) == 6 and len(hub.statuses) == 2, what="all, filled")
    assert [p.seq for p in hub.pubs] == [1, 2, 3, 4, 5, 6]
    assert hub.pubs == [trade(s) for s in range(1, 7)]
    assert [s.live for s in hub.statuses] == [False, True]  # the lost stale came in its place
    health = gateway.health()
    assert (health.gaps_filled, health.gaps_unfilled) == (1, 0)


async def test_a_gap_after_a_pubsub_reconnect_is_filled_in_order(redis_server: RedisServer) -> None:
    """The gateway's pub/sub connection is cut while trades go on: the newest value re-read
    after the reconnect reveals the gap, and the stream fills it before it."""
    leader = fast_bus(redis_server.url)
    gateway = fast_bus(redis_server.url, can_lead=False, rng=random.Random(2))  # a first retry after ~0.19 s

    class Hub(HubRecorder):
        def on_status(self, st: ChannelStatus) -> None:
            super().on_status(st)
            if st.reason == DOWN:  # the gateway just lost pub/sub: trades go on meanwhile
                for seq in range(4, 9):
                    leader.publish(trade(seq))

    hub = Hub()
    leader.attach_hub(HubRecorder())
    leader.attach_ingest(Ingest())
    gateway.attach_hub(hub)
    await leader.start()
    await gateway.start()
    redis = Redis.from_url(redis_server.url)
    try:
        await eventually(lambda: leader.leading and gateway.connected, what="a leader and a gateway")
        gateway.want(CH)
        await gateway.last(CH)
        await gateway.epoch(CH)
        for seq in (1, 2, 3):
            leader.publish(trade(seq))
        await eventually(lambda: len(hub.pubs) == 3, what="three trades")
        await redis.client_kill_filter(_type="pubsub")
        await eventually(lambda: gateway.reconnects == 1 and len(hub.pubs) == 8, what="back, and filled")
        leader.publish(trade(9))
        await eventually(lambda: len(hub.pubs) == 9, what="live again")
    finally:
        await redis.aclose()
        await gateway.close()
        await leader.close()
    assert [p.seq for p in hub.pubs] == list(range(1, 10))
    assert [(s.live, s.reason) for s in hub.statuses] == [(False, DOWN), (True, None)]
    assert gateway.health().gaps_filled == 1


async def test_a_gap_the_stream_cannot_fill_is_delivered_as_is(
    redis: Redis, pair: tuple[RedisBus, RedisBus, HubRecorder]
) -> None:
    leader, gateway, hub = pair
    await gateway.epoch(CH)
    leader.publish(trade(1))
    await eventually(lambda: len(hub.pubs) == 1, what="a trade")
    await redis.delete(KEYS.hist(CH))  # the history of the gap is gone
    await Scripts(redis).publish(2, pubch="nobody-listens")
    await redis.delete(KEYS.hist(CH))
    leader.publish(trade(3))
    leader.publish(trade(4))
    await eventually(lambda: len(hub.pubs) == 3, what="the trades after the gap")
    assert [p.seq for p in hub.pubs] == [1, 3, 4]  # once, in order; clients see the gap
    assert (gateway.health().gaps_filled, gateway.health().gaps_unfilled) == (0, 1)


async def test_a_gap_wider_than_max_gap_is_not_read(redis_server: RedisServer, redis: Redis) -> None:
    async with leader_and_gateway(redis_server.url, max_gap=2) as (leader, gateway, hub):
        leader.publish(trade(1))
        await eventually(lambda: len(hub.pubs) == 1, what="a trade")
        lost = Scripts(redis)
        for seq in (2, 3, 4):
            await lost.publish(seq, pubch="nobody-listens")
        leader.publish(trade(5))
        await eventually(lambda: len(hub.pubs) == 2, what="the trade after the gap")
        assert gateway.health().gaps_unfilled == 1
    assert [p.seq for p in hub.pubs] == [1, 5]


async def test_redis_losing_the_keys_changes_the_epoch_on_every_gateway(
    redis: Redis, pair: tuple[RedisBus, RedisBus, HubRecorder]
) -> None:
    leader, gateway, hub = pair
    before = await gateway.epoch(CH)
    leader.publish(trade(1))
    await eventually(lambda: len(hub.pubs) == 1, what="a trade")
    assert set(hub.epochs) <= {(CH, before)}  # the gateway made it; its announcement may come back
    await redis.flushall()
    await eventually(lambda: leader.leading, what="the leader again")
    leader.publish(trade(2))
    await eventually(lambda: len(hub.pubs) == 2, what="a trade after the flush")
    channel, after = hub.epochs[-1]  # announced before the trade that starts the new history
    assert channel == CH and after != before
    assert await gateway.epoch(CH) == after


async def test_releasing_a_channel_deletes_its_history(
    redis: Redis, pair: tuple[RedisBus, RedisBus, HubRecorder]
) -> None:
    leader, gateway, hub = pair
    epoch = await gateway.epoch(CH)
    leader.publish(trade(1))
    await eventually(lambda: len(hub.pubs) == 1, what="a trade")
    assert await redis.exists(KEYS.epoch(CH), KEYS.hist(CH)) == 2
    gateway.unwant(CH)  # one gateway letting go keeps the cluster's history
    gateway.want(CH)
    assert await gateway.epoch(CH) == epoch
    leader.forget(CH)  # the ingest released it: the history ends

    async def gone() -> bool:
        return await redis.exists(KEYS.epoch(CH), KEYS.hist(CH)) == 0

    await eventually(gone, what="the epoch and the stream deleted")
    assert await gateway.epoch(CH) != epoch  # reopened: a new history


async def test_a_late_subscribe_still_acks_the_clusters_epoch(redis_server: RedisServer) -> None:
    """A gateway whose SUBSCRIBE is not confirmed in time (a connect storm) reads the
    epoch anyway: a local one would make every client acked meanwhile `epoch_changed`
    on its next resume (bench W7 found 129 of 1,000)."""
    async with leader_and_gateway(redis_server.url, want=False) as (leader, late, hub):
        late._hub._subscribe_timeout = 0.0  # the confirmation never arrives in time
        late.want(CH)
        epoch = await late.epoch(CH)
        assert not epoch.endswith(".local") and epoch == await leader.epoch(CH)
        await eventually(lambda: CH in late._hub._epochs and not late._hub._refresh, what="the re-check")
        assert hub.epochs == []  # the refresh found the same epoch: the ring is not restarted
