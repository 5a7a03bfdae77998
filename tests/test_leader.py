"""The leader lock against a real redis-server: acquire, renew, expiry, takeover, release, outage."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tickwire.bus.redis.leader import LeaderLock

from .helpers import eventually
from .redis_server import RedisServer


pytestmark = pytest.mark.redis

KEY = "test:lock:simulated"


class Clock:
    """Monotonic seconds the test moves by hand (the lock's own view of time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    # No retries inside redis-py: the lock must see an outage as it happens.
    client = Redis.from_url(redis_server.url, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
    try:
        yield client
    finally:
        await client.aclose()


async def holder(redis: Redis) -> bytes | None:
    value = await redis.get(KEY)
    return value if isinstance(value, bytes) or value is None else value.encode()


async def test_first_step_takes_the_free_key_with_its_ttl(redis: Redis) -> None:
    lock = LeaderLock(redis, KEY, "node-a", ttl=2.0)
    assert lock.leading is False
    assert await lock.step() is True
    assert lock.leading is True
    assert await holder(redis) == b"node-a"
    assert 0 < await redis.pttl(KEY) <= 2000


async def test_a_second_contender_is_refused_while_the_holder_renews(redis: Redis) -> None:
    a = LeaderLock(redis, KEY, "node-a", ttl=1.0)
    b = LeaderLock(redis, KEY, "node-b", ttl=1.0)
    assert await a.step() is True
    assert await b.step() is False
    assert b.leading is False
    # wait until the key has used up a good part of its ttl, then renew: it is full again
    await eventually(lambda: _pttl_below(redis, 600), what="the key to age", interval=0.02)
    assert await a.step() is True
    assert await redis.pttl(KEY) > 800
    assert await b.step() is False
    assert await holder(redis) == b"node-a"


async def _pttl_below(redis: Redis, ms: int) -> bool:
    return bool(0 < await redis.pttl(KEY) < ms)


async def test_the_key_expires_without_renewal_and_a_standby_takes_over(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    a = LeaderLock(redis, KEY, "node-a", ttl=0.3)
    b = LeaderLock(redis, KEY, "node-b", ttl=0.3)
    assert await a.step() is True
    assert await b.step() is False
    # a stops stepping (it died or hangs): Redis drops the key at its expiry
    await eventually(lambda: _gone(redis), what="the lock to expire", interval=0.02)
    assert await b.step() is True
    assert await holder(redis) == b"node-b"
    # a comes back: its next step finds b's key and steps down, and says so
    with caplog.at_level(logging.INFO, logger="tickwire.leader"):
        assert await a.step() is False
    assert a.leading is False
    assert f"lost leadership of {KEY}" in caplog.text
    assert await holder(redis) == b"node-b"


async def _gone(redis: Redis) -> bool:
    return not await redis.exists(KEY)


async def test_release_frees_the_key_for_the_next_contender_at_once(redis: Redis) -> None:
    a = LeaderLock(redis, KEY, "node-a", ttl=30.0)
    b = LeaderLock(redis, KEY, "node-b", ttl=30.0)
    assert await a.step() is True
    await a.release()
    assert a.leading is False
    assert await holder(redis) is None
    assert await b.step() is True  # long before the 30 s ttl


async def test_a_stale_holder_releasing_never_deletes_the_new_leaders_key(redis: Redis) -> None:
    a = LeaderLock(redis, KEY, "node-a", ttl=0.3)
    b = LeaderLock(redis, KEY, "node-b", ttl=30.0)
    assert await a.step() is True
    await eventually(lambda: _gone(redis), what="a's lock to expire", interval=0.02)
    assert await b.step() is True
    assert a.leading is True  # a has not stepped since: it still believes it leads
    await a.release()  # a clean shutdown of a
    assert await holder(redis) == b"node-b"


async def test_a_holder_that_cannot_reach_redis_steps_down_before_its_key_could_lapse(
    redis: Redis, redis_server: RedisServer
) -> None:
    clock = Clock()
    lock = LeaderLock(redis, KEY, "node-a", ttl=6.0, clock=clock)
    assert await lock.step() is True
    redis_server.stop()
    # within 0.8 of the ttl after the last request that reached Redis: the key surely lives
    clock.now += 4.0
    assert await lock.step() is True
    # past it: the key may lapse any moment, so another node may lead; step down
    clock.now += 1.0
    assert await lock.step() is False
    assert lock.leading is False
    # a node that did not lead never leads through an outage
    other = LeaderLock(redis, KEY, "node-b", ttl=6.0, clock=clock)
    assert await other.step() is False
