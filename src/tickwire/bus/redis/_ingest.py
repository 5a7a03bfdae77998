"""The ingest side of the Redis bus: data out (outbox, writer), demand in (lead loop, reconcile)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from redis.exceptions import RedisError

from ...publications import ChannelStatus, Publication
from ..base import BusUnavailable, DemandListener
from ._link import IngestInfo, Link
from ._wire import (
    PUBLISH,
    PUBLISH_NEXT,
    SENTINEL,
    SEQ_TTL_MS,
    STATUS,
    StreamLimits,
    encode_publication,
    encode_status,
    split_template,
)
from .leader import LeaderLock


__all__ = ["IngestSide"]

logger = logging.getLogger("tickwire.bus.redis")

_BATCH = 500  # outbox items per pipeline

_Item = Publication | ChannelStatus | str  # a str: forget that channel's last value and status


def _token() -> str:
    """A new epoch, should the script find none: 6 random bytes (8 characters)."""
    return secrets.token_urlsafe(6)


class _Tokens:
    """The epochs of one batch, should the scripts need them: one random draw for the
    batch rather than one per publication (about 1 us each)."""

    __slots__ = ("_at", "_raw")

    def __init__(self, count: int) -> None:
        self._raw = secrets.token_urlsafe(6 * count)  # 8 characters per 6 bytes, no padding
        self._at = 0

    def next(self) -> str:
        token = self._raw[self._at : self._at + 8]
        self._at += 8
        return token


class IngestSide:
    """This node's upstream, when it leads it: the outbox to Redis and the cluster's demand.

    Args:
        link: the shared client and key names.
        upstream: the upstream's name (for log lines; the lock key names it too).
        lock_ttl: seconds the leader lock lives without renewal.
        reconcile_interval: seconds between the leader's demand scans and lock steps.
        max_pending: publications queued while Redis is slow or down; the oldest are dropped.
        limits: how much history each channel's stream keeps.
    """

    def __init__(
        self,
        link: Link,
        *,
        upstream: str,
        lock_ttl: float,
        reconcile_interval: float,
        max_pending: int,
        limits: StreamLimits,
    ) -> None:
        self._link = link
        self._keys = link.keys
        self._upstream = upstream
        self._reconcile_interval = reconcile_interval
        self._max_pending = max_pending
        self._limits = limits
        self._per_channel: dict[str, tuple[list[str], str, int, int]] = {}  # open channels: dropped on forget
        redis = link.redis
        self._publish_script = redis.register_script(PUBLISH)
        self._publish_next_script = redis.register_script(PUBLISH_NEXT)
        self._status_script = redis.register_script(STATUS)
        self.lock = LeaderLock(redis, self._keys.lock, link.node, ttl=lock_ttl)
        self.listener: DemandListener | None = None
        self.outbox: deque[_Item] = deque()
        self._wake_writer = asyncio.Event()
        self._wake_leader = asyncio.Event()
        self.leading = False
        self._forwarded: set[str] = set()
        self._announced: set[str] = set()
        self._demand_by_node: dict[str, int] = {}
        self._cluster_demand = 0
        self.published = 0
        self.dropped = 0
        self.refused = 0  # publications refused by the seq guard

    # -- hooks for the hub side's pub/sub connection ----------------------------

    def announced(self, channel: str) -> None:
        """A gateway announced new demand on the demand channel: open it without waiting a step."""
        self._announced.add(channel)
        self._wake_leader.set()

    def wake(self) -> None:
        """Redis is back: take a lock step now."""
        self._wake_leader.set()

    # -- data out --------------------------------------------------------------

    def enqueue(self, item: _Item) -> None:
        """Queue a publication, status or forget for the writer (only while leading)."""
        if not self.leading:
            return
        if len(self.outbox) >= self._max_pending:
            self.outbox.popleft()
            self.dropped += 1
        self.outbox.append(item)
        self._wake_writer.set()

    async def publish_data(self, channel: str, encode: Callable[[int], bytes], *, event_time: int) -> int:
        head, tail = split_template(encode(SENTINEL))
        k = self._keys
        size, ttl = self._limits.of(channel)
        try:
            seq, _ = await self._publish_next_script(
                keys=[k.seq(channel), k.last(channel), k.epoch(channel), k.hist(channel)],
                args=[k.pub(channel), channel, event_time, head, tail, SEQ_TTL_MS, _token(), size, ttl],
            )
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unavailable: {exc}") from exc
        self.published += 1
        return int(seq)

    async def write_loop(self) -> None:
        """Drain the outbox in pipelines, in order; one Lua call per publication."""
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            try:
                await self.flush()
            except (RedisError, OSError) as exc:
                logger.debug("publishing failed: %s", exc)
                await asyncio.sleep(0.2)
                self._wake_writer.set()

    async def flush(self) -> None:
        k = self._keys
        while self.outbox:
            batch = [self.outbox.popleft() for _ in range(min(_BATCH, len(self.outbox)))]
            tokens = _Tokens(len(batch))
            async with self._link.redis.pipeline(transaction=False) as pipe:
                for item in batch:
                    if isinstance(item, str):  # released: its history ends, the next open is a new epoch
                        self._per_channel.pop(item, None)
                        await pipe.delete(k.last(item), k.status(item), k.epoch(item), k.hist(item))
                        continue
                    keys, pub, size, ttl = self._channel_args(item.channel)
                    if isinstance(item, Publication):
                        args: list[str | bytes | int] = [pub, item.seq, encode_publication(item), SEQ_TTL_MS]
                        args += [tokens.next(), size, ttl]
                        await self._publish_script(keys=keys, args=args, client=pipe)
                    else:
                        status_keys = [keys[0], k.status(item.channel), keys[2], keys[3]]
                        args = [pub, encode_status(item), SEQ_TTL_MS, tokens.next(), size, ttl]
                        await self._status_script(keys=status_keys, args=args, client=pipe)
                try:
                    results = await pipe.execute()
                except (RedisError, OSError):
                    self._requeue(batch)
                    raise
            self._after_publish(batch, results)

    def _channel_args(self, channel: str) -> tuple[list[str], str, int, int]:
        """(seq, last, epoch, hist keys; pub/sub channel; stream size; stream expiry) of
        ``channel``, built once per open channel rather than once per publication."""
        found = self._per_channel.get(channel)
        if found is None:
            k = self._keys
            keys = [k.seq(channel), k.last(channel), k.epoch(channel), k.hist(channel)]
            found = self._per_channel[channel] = (keys, k.pub(channel), *self._limits.of(channel))
        return found

    def _requeue(self, batch: list[_Item]) -> None:
        """Put a failed batch back in front, in order: the first write after a Redis restart
        often meets a dead pooled connection. Resending is safe: the publish script refuses
        a seq it already stored. Past ``max_pending`` the oldest are dropped."""
        self.outbox.extendleft(reversed(batch))
        while len(self.outbox) > self._max_pending:
            self.outbox.popleft()
            self.dropped += 1

    def _after_publish(self, batch: list[_Item], results: list[Any]) -> None:
        for item, result in zip(batch, results, strict=True):  # one command per item
            if isinstance(result, bytes) and not isinstance(item, str):
                # the script made the epoch: a channel no gateway had asked about yet, or Redis lost its keys
                logger.info("%s: new epoch %s in Redis", item.channel, result.decode())
                result = 0
            if isinstance(item, Publication):
                if result:  # behind the cluster's seq (the stored one): skip ahead, never repeat a seq
                    self.refused += 1
                    if self.listener is not None:
                        self.listener.resume_seq(item.channel, int(result))
                else:
                    self.published += 1

    # -- demand in -------------------------------------------------------------

    async def lead_loop(self) -> None:
        """Hold or wait for the upstream's lock; while leading, open the cluster's demand."""
        next_step = 0.0
        while True:
            self._wake_leader.clear()
            try:
                if time.monotonic() >= next_step:
                    next_step = time.monotonic() + self._reconcile_interval
                    leading = await self.lock.step()
                    if leading != self.leading:
                        self._set_leading(leading)
                    if leading:
                        await self._reconcile(await self._scan_leases())
                        await self._write_ingest_info()
                elif self.leading and self._announced:
                    await self._reconcile(None)
            except (RedisError, OSError) as exc:
                logger.debug("leader step failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_leader.wait(), max(0.01, next_step - time.monotonic()))

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        if leading:
            logger.info("leading upstream %s as %s", self._upstream, self._link.node)
            return
        logger.warning(
            "no longer leading upstream %s; releasing %d channels", self._upstream, len(self._forwarded)
        )
        self.outbox.clear()
        self._per_channel.clear()
        if self.listener is not None:
            for channel in sorted(self._forwarded):
                self.listener.on_demand(channel, False)
        self._forwarded.clear()

    async def _scan_leases(self) -> set[str]:
        union: set[str] = set()
        by_node: dict[str, int] = {}
        async for raw in self._link.redis.scan_iter(match=self._keys.lease_prefix + "*", count=1000):
            node, channel = self._keys.parse_lease(raw.decode())
            union.add(channel)
            by_node[node] = by_node.get(node, 0) + 1
        self._demand_by_node = by_node
        self._cluster_demand = len(union)
        return union

    async def _reconcile(self, union: set[str] | None) -> None:
        """Forward new demand (with each channel's stored seq) and release what no lease holds."""
        announced, self._announced = self._announced, set()
        add = sorted((announced | (union or set())) - self._forwarded)
        if add:
            seqs = await self._link.redis.mget([self._keys.seq(c) for c in add])
            if not self.leading:
                return
            for channel, seq in zip(add, seqs, strict=True):
                self._forwarded.add(channel)
                if self.listener is not None:
                    self.listener.resume_seq(channel, int(seq or 0))
                    self.listener.on_demand(channel, True)
        if union is not None:
            for channel in sorted(self._forwarded - union - announced):
                self._forwarded.discard(channel)
                if self.listener is not None:
                    self.listener.on_demand(channel, False)

    async def _write_ingest_info(self) -> None:
        ttl_ms = int(self._reconcile_interval * 3000)
        listener = self.listener
        info = IngestInfo(
            node=self._link.node,
            upstream=listener.upstream_health() if listener is not None else None,
            cluster_demand=self._cluster_demand,
            demand_by_node=self._demand_by_node,
            time=self._link.clock_ms(),
        )
        symbols = listener.known_symbols() if listener is not None else None
        async with self._link.redis.pipeline(transaction=True) as pipe:
            await pipe.set(self._keys.ingest, msgspec.json.encode(info), px=ttl_ms)
            if symbols:
                await pipe.delete(self._keys.symbols)
                await pipe.sadd(self._keys.symbols, *symbols)
                await pipe.pexpire(self._keys.symbols, ttl_ms * 10)
            await pipe.execute()
        self._link.ingest_info = info
