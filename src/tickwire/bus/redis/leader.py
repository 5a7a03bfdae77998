"""Leader election through one Redis key: which ingest holds an upstream.

Every ingest process that can lead an upstream runs :meth:`LeaderLock.step`
about once a second. The step takes the key when it is free (``SET NX PX``
semantics) or renews it when this process holds it, in one Lua script, so a
holder never loses the key between a check and a renewal. A holder that
cannot reach Redis steps down before its key could have lapsed in Redis, so
two processes never both believe they lead. A standby takes over at most
``ttl`` plus one step after the leader died: 6 s + 1 s with the defaults.

Leadership alone does not protect the seq: the Redis bus also refuses any
publication whose seq is not above the stored one (see :mod:`tickwire.bus.redis`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError


__all__ = ["LeaderLock"]

logger = logging.getLogger("tickwire.leader")

_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaderLock:
    """One lock key with expiry, held by ``owner`` while it keeps renewing.

    Args:
        redis: the client.
        key: the lock key, one per upstream.
        owner: this process's id (stored as the key's value).
        ttl: seconds the key lives without renewal; call :meth:`step` at
            least every ``ttl / 3`` seconds to keep it.
        clock: monotonic seconds (injected for tests).
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        owner: str,
        *,
        ttl: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self._clock = clock
        self._acquire = redis.register_script(_ACQUIRE_OR_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.leading = False
        self._held_since_request = 0.0  # clock() just before the last successful request

    async def step(self) -> bool:
        """Take or renew the key; returns whether this process leads now."""
        sent = self._clock()
        try:
            held = int(await self._acquire(keys=[self.key], args=[self.owner, int(self.ttl * 1000)])) == 1
        except (RedisError, OSError) as exc:
            # The key lives at least ``ttl`` after our last successful request
            # reached Redis; stay leader until shortly before that, then step down.
            still = self.leading and self._clock() - self._held_since_request < self.ttl * 0.8
            if self.leading and not still:
                logger.warning("lost leadership of %s: redis unreachable (%s)", self.key, exc)
            self.leading = still
            return still
        if held:
            self._held_since_request = sent
        if held != self.leading:
            logger.info("%s leadership of %s", "took" if held else "lost", self.key)
        self.leading = held
        return held

    async def release(self) -> None:
        """Give the key up at once (a clean shutdown: a standby takes over on its next step)."""
        was = self.leading
        self.leading = False
        if not was:
            return
        try:
            await self._release(keys=[self.key], args=[self.owner])
        except (RedisError, OSError):
            logger.info("could not release %s; it expires by itself", self.key)
