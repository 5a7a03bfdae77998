"""The Redis bus: gateway and ingest processes on many machines share upstreams.

Theory of operation. Keys live under a prefix ``P`` (``--redis-prefix``,
default ``tickwire``); ``{CH}`` is a Redis Cluster hash tag, so the keys of
one channel share a slot and one Lua script may touch them all.

* **Data.** The leading ingest publishes each publication with one Lua
  script: it refuses a seq not above ``P:{CH}:seq``, stores the seq and the
  last value (``P:{CH}:last``) and PUBLISHes on ``P:pub:CH``. So seq is
  assigned once, never repeats across a leader change, and a gateway that
  just gained a channel reads the snapshot from Redis at once. Messages of
  the publish API take their seq from INCR inside the same kind of script,
  on any node, so they reach every node in seq order.
* **Demand.** A gateway SUBSCRIBEs ``P:pub:CH`` while it has local
  subscribers of CH and holds a lease, ``P:lease:NODE:CH``, a key with an
  expiry that it renews every third of it. It announces a new channel on
  ``P:demand``. The leading ingest opens announced channels at once and
  reconciles the union of leases every second (SCAN); a channel whose last
  lease is gone (released, or expired with its gateway) is handed to the
  ingest's linger window.
* **Leadership.** One ingest per upstream holds ``P:lock:UPSTREAM``
  (:mod:`tickwire.leader`). Only the leader forwards demand to its ingest
  and publishes market channels; it refreshes ``P:ingest:UPSTREAM`` (its
  health and the cluster-wide demand, for gateways' ``/health`` and stats)
  and ``P:symbols:UPSTREAM`` (for gateways' symbol validation).
* **Faults.** When the pub/sub connection drops, every wanted channel is
  told ``stale`` ("bus disconnected"); the bus reconnects with jittered,
  capped backoff, re-SUBSCRIBEs, renews its leases, re-reads each channel's
  last value and status and tells the hub: ``live`` again (unless the
  upstream itself is stale) and the newest value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from ..backoff import backoff
from ..clock import wall_ms
from ..health import SourceHealth
from ..publications import ChannelStatus, Publication
from ._redis_wire import (
    PUBLISH,
    PUBLISH_NEXT,
    SENTINEL,
    SEQ_AT_LEAST,
    SEQ_TTL_MS,
    Keys,
    as_bytes,
    decode_message,
    encode_publication,
    encode_status,
    split_template,
)
from .base import BusHealth, BusListener, BusUnavailable, DemandListener
from .leader import LeaderLock


__all__ = ["RedisBus", "decode_message", "encode_publication", "encode_status", "node_id"]

logger = logging.getLogger("tickwire.bus.redis")

_DOWN = "bus disconnected"


_CLOSE_STEP_S = 2.0


def node_id() -> str:
    """This process's id in leases and the lock: host, pid and a random suffix, no colons."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{random.randbytes(3).hex()}"


class IngestInfo(msgspec.Struct, kw_only=True, rename="camel"):
    """What the leading ingest writes to Redis every reconcile step (expires with it)."""

    node: str
    upstream: SourceHealth | None
    cluster_demand: int
    demand_by_node: dict[str, int]
    time: int


def _decode_info(raw: bytes) -> IngestInfo | None:
    try:
        return msgspec.json.decode(raw, type=IngestInfo)
    except msgspec.ValidationError:  # written by another version: no leader info until it is rewritten
        return None


class RedisHealth(BusHealth, kw_only=True):
    node: str
    leader: bool | None  # this node leads the upstream (None: it cannot lead)
    node_demand: int
    cluster_demand: int | None
    demand_by_node: dict[str, int] | None
    ingest_leader: str | None
    published: int
    pending_publications: int
    dropped_publications: int
    refused_publications: int


class RedisBus:
    """The :class:`~tickwire.bus.base.Bus` over Redis (pub/sub + keys with expiry).

    Args:
        url: ``redis://host:port/db``.
        upstream: the upstream this cluster shares (the source name); names the lock.
        prefix: key prefix, so deployments can share one Redis.
        can_lead: whether this process's ingest may hold the upstream (false for ``--role gateway``).
        lease_ttl: seconds a demand lease lives without renewal (renewed every third of it).
        lock_ttl: seconds the leader lock lives without renewal; a standby takes over
            within ``lock_ttl + reconcile_interval``.
        reconcile_interval: seconds between the leader's demand scans and lock steps.
        max_pending: publications queued while Redis is slow or down; the oldest are dropped.
        subscribe_timeout: seconds a new subscriber waits for the channel's SUBSCRIBE.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        upstream: str = "simulated",
        prefix: str = "tickwire",
        can_lead: bool = True,
        lease_ttl: float = 6.0,
        lock_ttl: float = 6.0,
        reconcile_interval: float = 1.0,
        max_pending: int = 10_000,
        subscribe_timeout: float = 2.0,
        node: str | None = None,
        clock_ms: Callable[[], int] = wall_ms,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.upstream = upstream
        self.node = node or node_id()
        self.can_lead = can_lead
        self._keys = Keys(prefix, upstream)
        self._lease_ttl = lease_ttl
        self._reconcile_interval = reconcile_interval
        self._subscribe_timeout = subscribe_timeout
        self._clock_ms = clock_ms
        self._rng = rng or random.Random()
        self._redis: Redis = Redis.from_url(
            url,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            retry=Retry(NoBackoff(), 0),  # our loops retry, with backoff; redis-py must not hide outages
            health_check_interval=5,
        )
        self._publish_script = self._redis.register_script(PUBLISH)
        self._publish_next_script = self._redis.register_script(PUBLISH_NEXT)
        self._seq_at_least = self._redis.register_script(SEQ_AT_LEAST)
        self._lock = LeaderLock(self._redis, self._keys.lock, self.node, ttl=lock_ttl)
        self._hub: BusListener | None = None
        self._ingest: DemandListener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # hub side
        self._wanted: set[str] = set()
        self._ready: dict[str, asyncio.Future[None]] = {}  # SUBSCRIBE confirmed on this connection
        self._requested: set[str] = set()  # SUBSCRIBE sent on this connection
        self._seen: dict[str, int] = {}  # newest seq delivered, per wanted channel
        self._refresh: set[str] = set()  # re-read last value and status after a reconnect
        self._lease_changes: dict[str, bool] = {}
        self._pubsub: PubSub | None = None
        self._wake_subs = asyncio.Event()
        self._wake_leases = asyncio.Event()
        self.connected = False
        self._was_connected = False
        self._ingest_info: IngestInfo | None = None
        # ingest side
        self._outbox: deque[Publication | ChannelStatus | str] = deque()
        self._max_pending = max_pending
        self._wake_writer = asyncio.Event()
        self._wake_leader = asyncio.Event()
        self.leading = False
        self._forwarded: set[str] = set()
        self._announced: set[str] = set()
        self._demand_by_node: dict[str, int] = {}
        self._cluster_demand = 0
        # counters
        self.reconnects = 0
        self.published = 0
        self.dropped = 0
        self.refused = 0  # publications refused by the seq guard

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        loops = [self._read_loop, self._subscribe_loop, self._lease_loop]
        if self._ingest is not None and self.can_lead:
            loops += [self._lead_loop, self._write_loop]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(fn(), name=f"redis-bus-{fn.__name__}") for fn in loops]

    async def close(self) -> None:
        """Stop the loops, then a bounded goodbye: flush, drop leases, release the lock.

        Every step has a deadline: a shutdown must not hang on a Redis that is slow,
        gone, or holding a connection a cancelled read left half-used.
        """
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_CLOSE_STEP_S)
        self._tasks = []
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_STEP_S):
                await self._flush_outbox()
                if self._wanted:
                    await self._redis.delete(*(self._keys.lease(self.node, c) for c in self._wanted))
                await self._lock.release()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(_CLOSE_STEP_S):
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_STEP_S):
                await self._redis.aclose()

    def attach_hub(self, listener: BusListener) -> None:
        self._hub = listener

    def attach_ingest(self, listener: DemandListener) -> None:
        self._ingest = listener

    # -- hub side: demand out, data in --------------------------------------------

    def want(self, channel: str) -> None:
        self._wanted.add(channel)
        if channel not in self._ready:
            self._ready[channel] = asyncio.get_running_loop().create_future()
        self._lease_changes[channel] = True
        self._wake_subs.set()
        self._wake_leases.set()

    def unwant(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._seen.pop(channel, None)
        self._refresh.discard(channel)
        ready = self._ready.pop(channel, None)
        if ready is not None and not ready.done():
            ready.set_result(None)
        self._lease_changes[channel] = False
        self._wake_subs.set()
        self._wake_leases.set()

    def _down_status(self, channel: str) -> ChannelStatus:
        return ChannelStatus(channel, False, _DOWN, self._clock_ms())

    async def last(self, channel: str) -> tuple[Publication | None, ChannelStatus | None]:
        ready = self._ready.get(channel)
        if not self.connected:
            return None, self._down_status(channel)
        if ready is not None and not ready.done():
            try:
                await asyncio.wait_for(asyncio.shield(ready), self._subscribe_timeout)
            except TimeoutError:
                return None, self._down_status(channel)
        try:
            raw_last, raw_status = await self._redis.mget(
                self._keys.last(channel), self._keys.status(channel)
            )
        except (RedisError, OSError):
            return None, self._down_status(channel)
        last = decode_message(as_bytes(raw_last)) if raw_last is not None else None
        status = decode_message(as_bytes(raw_status)) if raw_status is not None else None
        return (
            last if isinstance(last, Publication) else None,
            status if isinstance(status, ChannelStatus) else None,
        )

    def _new_backoff(self) -> Iterator[float]:
        """Reconnect delays: jittered, from 0.2 s doubling to a cap of 5 s."""
        return backoff(initial=0.2, max_delay=5.0, rng=self._rng)

    async def _read_loop(self) -> None:
        """Hold the pub/sub connection; reconnect with backoff when it breaks."""
        delays = self._new_backoff()
        control = self._keys.demand if self._ingest is not None and self.can_lead else None
        while True:
            pubsub = self._redis.pubsub()
            try:
                # the node's own control channel keeps the connection subscribed to something
                await pubsub.subscribe(control or self._keys.node(self.node))
                self._pubsub = pubsub
                self._requested.clear()
                self._wake_subs.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_message(message)
                        if self.connected:
                            delays = self._new_backoff()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._pubsub = None
                self._on_down(exc)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(next(delays))

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        name = message["channel"].decode()
        if kind == "message":
            if name == self._keys.demand:
                self._announced.add(message["data"].decode())
                self._wake_leader.set()
                return
            self._deliver(decode_message(message["data"]))
        elif kind == "subscribe":
            channel = self._keys.channel_of(name)
            if channel is None:
                self._on_up()
                return
            ready = self._ready.get(channel)
            if ready is not None and not ready.done():
                ready.set_result(None)

    def _deliver(self, msg: Publication | ChannelStatus) -> None:
        if self._hub is None or msg.channel not in self._wanted:
            return
        if isinstance(msg, Publication):
            if msg.seq > self._seen.get(msg.channel, 0):
                self._seen[msg.channel] = msg.seq
            self._hub.on_publication(msg)
        else:
            self._hub.on_status(msg)

    def _on_up(self) -> None:
        self.connected = True
        if self._was_connected:
            self.reconnects += 1
            logger.info("redis bus reconnected to %s; resubscribing %d channels", self.url, len(self._wanted))
            self._refresh.update(self._wanted)
        else:
            logger.info("redis bus connected to %s as %s", self.url, self.node)
        self._was_connected = True
        for channel in self._wanted:
            self._lease_changes.setdefault(channel, True)
        self._wake_leases.set()
        self._wake_leader.set()

    def _on_down(self, exc: BaseException) -> None:
        was = self.connected
        self.connected = False
        self._requested.clear()
        loop = asyncio.get_running_loop()
        for channel in self._wanted:
            if self._ready[channel].done():
                self._ready[channel] = loop.create_future()
        if not was:
            logger.debug("redis bus still down: %s", exc)
            return
        logger.warning("redis bus disconnected (%s); %d channels stale", exc, len(self._wanted))
        if self._hub is not None:
            for channel in sorted(self._wanted):
                self._hub.on_status(self._down_status(channel))

    async def _subscribe_loop(self) -> None:
        """Keep the pub/sub subscriptions equal to the wanted channels; re-read after a reconnect."""
        while True:
            await self._wake_subs.wait()
            self._wake_subs.clear()
            pubsub = self._pubsub
            if pubsub is None:
                continue
            try:
                add = sorted(self._wanted - self._requested)
                drop = sorted(self._requested - self._wanted)
                if add:
                    self._requested.update(add)
                    await pubsub.subscribe(*(self._keys.pub(c) for c in add))
                if drop:
                    self._requested.difference_update(drop)
                    await pubsub.unsubscribe(*(self._keys.pub(c) for c in drop))
                if self._refresh and self.connected:
                    await self._refresh_channels()
            except (RedisError, OSError) as exc:
                logger.debug("subscription sync failed: %s", exc)  # the read loop reconnects

    async def _refresh_channels(self) -> None:
        channels = sorted(self._refresh & self._wanted)
        self._refresh.clear()
        for channel in channels:
            ready = self._ready.get(channel)
            if ready is not None and not ready.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ready), self._subscribe_timeout)
            last, status = await self.last(channel)
            if channel not in self._wanted or self._hub is None or not self.connected:
                continue
            if status is None or status.live or status.reason == _DOWN:
                status = ChannelStatus(channel, True, None, self._clock_ms())
            self._hub.on_status(status)
            if last is not None:
                self._deliver(last)

    async def _lease_loop(self) -> None:
        """Renew this node's demand leases; announce new channels; read the leader's summary."""
        period = self._lease_ttl / 3
        next_full = 0.0
        while True:
            self._wake_leases.clear()
            changes, self._lease_changes = self._lease_changes, {}
            full = time.monotonic() >= next_full
            try:
                await self._write_leases(changes, full)
                if full:
                    next_full = time.monotonic() + period
            except (RedisError, OSError) as exc:
                logger.debug("lease renewal failed: %s", exc)
                for channel, wanted in changes.items():
                    self._lease_changes.setdefault(channel, wanted)
            timeout = max(0.05, next_full - time.monotonic()) if self.connected else period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_leases.wait(), timeout)

    async def _write_leases(self, changes: dict[str, bool], full: bool) -> None:
        ttl_ms = int(self._lease_ttl * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, wanted in changes.items():
                if wanted and channel in self._wanted:
                    # a seq seen here survives a Redis restart that lost it (before the lease: see docs)
                    if channel in self._seen:
                        await self._seq_at_least(
                            keys=[self._keys.seq(channel)],
                            args=[self._seen[channel], SEQ_TTL_MS],
                            client=pipe,
                        )
                    await pipe.set(self._keys.lease(self.node, channel), b"1", px=ttl_ms)
                    await pipe.publish(self._keys.demand, channel)
                elif not wanted and channel not in self._wanted:
                    await pipe.delete(self._keys.lease(self.node, channel))
            if full:
                for channel in self._wanted:
                    await pipe.set(self._keys.lease(self.node, channel), b"1", px=ttl_ms)
                await pipe.get(self._keys.ingest)
            results = await pipe.execute()
        if full:
            raw = results[-1]
            self._ingest_info = _decode_info(raw) if raw else None

    # -- ingest side: demand in, data out -------------------------------------------

    def publish(self, pub: Publication) -> None:
        if self.leading:
            self._enqueue(pub)

    def publish_status(self, status: ChannelStatus) -> None:
        if self.leading:
            self._enqueue(status)

    def forget(self, channel: str) -> None:
        if self.leading:
            self._enqueue(channel)

    def _enqueue(self, item: Publication | ChannelStatus | str) -> None:
        if len(self._outbox) >= self._max_pending:
            self._outbox.popleft()
            self.dropped += 1
        self._outbox.append(item)
        self._wake_writer.set()

    async def publish_data(self, channel: str, encode: Callable[[int], bytes], *, event_time: int) -> int:
        head, tail = split_template(encode(SENTINEL))
        k = self._keys
        try:
            seq = await self._publish_next_script(
                keys=[k.seq(channel), k.last(channel)],
                args=[k.pub(channel), channel, event_time, head, tail, SEQ_TTL_MS],
            )
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unavailable: {exc}") from exc
        self.published += 1
        return int(seq)

    async def _write_loop(self) -> None:
        """Drain the outbox in pipelines, in order; one Lua call per publication."""
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            try:
                await self._flush_outbox()
            except (RedisError, OSError) as exc:
                logger.debug("publishing failed: %s", exc)
                await asyncio.sleep(0.2)
                self._wake_writer.set()

    async def _flush_outbox(self) -> None:
        k = self._keys
        while self._outbox:
            batch = [self._outbox.popleft() for _ in range(min(500, len(self._outbox)))]
            async with self._redis.pipeline(transaction=False) as pipe:
                for item in batch:
                    if isinstance(item, Publication):
                        msg = encode_publication(item)
                        args: list[str | bytes | int] = [k.pub(item.channel), item.seq, msg, SEQ_TTL_MS]
                        keys = [k.seq(item.channel), k.last(item.channel)]
                        await self._publish_script(keys=keys, args=args, client=pipe)
                    elif isinstance(item, ChannelStatus):
                        msg = encode_status(item)
                        await pipe.set(k.status(item.channel), msg)
                        await pipe.publish(k.pub(item.channel), msg)
                    else:
                        await pipe.delete(k.last(item), k.status(item))
                try:
                    results = await pipe.execute()
                except (RedisError, OSError):
                    self._requeue(batch)
                    raise
            self._after_publish(batch, results)

    def _requeue(self, batch: list[Publication | ChannelStatus | str]) -> None:
        """Put a failed batch back in front, in order: the first write after a Redis restart
        often meets a dead pooled connection. Resending is safe: the publish script refuses
        a seq it already stored. Past ``max_pending`` the oldest are dropped."""
        self._outbox.extendleft(reversed(batch))
        while len(self._outbox) > self._max_pending:
            self._outbox.popleft()
            self.dropped += 1

    def _after_publish(self, batch: list[Publication | ChannelStatus | str], results: list[Any]) -> None:
        at = 0
        for item in batch:
            if isinstance(item, Publication):
                stored = int(results[at])
                if stored:  # behind the cluster's seq: skip ahead, never repeat a seq
                    self.refused += 1
                    if self._ingest is not None:
                        self._ingest.resume_seq(item.channel, stored)
                else:
                    self.published += 1
            at += 1 if isinstance(item, Publication) else 2 if isinstance(item, ChannelStatus) else 1

    async def _lead_loop(self) -> None:
        """Hold or wait for the upstream's lock; while leading, open the cluster's demand."""
        next_step = 0.0
        while True:
            self._wake_leader.clear()
            try:
                if time.monotonic() >= next_step:
                    next_step = time.monotonic() + self._reconcile_interval
                    leading = await self._lock.step()
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
            logger.info("leading upstream %s as %s", self.upstream, self.node)
            return
        logger.warning(
            "no longer leading upstream %s; releasing %d channels", self.upstream, len(self._forwarded)
        )
        self._outbox.clear()
        if self._ingest is not None:
            for channel in sorted(self._forwarded):
                self._ingest.on_demand(channel, False)
        self._forwarded.clear()

    async def _scan_leases(self) -> set[str]:
        union: set[str] = set()
        by_node: dict[str, int] = {}
        async for raw in self._redis.scan_iter(match=self._keys.lease_prefix + "*", count=1000):
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
            seqs = await self._redis.mget([self._keys.seq(c) for c in add])
            if not self.leading:
                return
            for channel, seq in zip(add, seqs, strict=True):
                self._forwarded.add(channel)
                if self._ingest is not None:
                    self._ingest.resume_seq(channel, int(seq or 0))
                    self._ingest.on_demand(channel, True)
        if union is not None:
            for channel in sorted(self._forwarded - union - announced):
                self._forwarded.discard(channel)
                if self._ingest is not None:
                    self._ingest.on_demand(channel, False)

    async def _write_ingest_info(self) -> None:
        ttl_ms = int(self._reconcile_interval * 3000)
        ingest = self._ingest
        info = IngestInfo(
            node=self.node,
            upstream=ingest.upstream_health() if ingest is not None else None,
            cluster_demand=self._cluster_demand,
            demand_by_node=self._demand_by_node,
            time=self._clock_ms(),
        )
        symbols = ingest.known_symbols() if ingest is not None else None
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.set(self._keys.ingest, msgspec.json.encode(info), px=ttl_ms)
            if symbols:
                await pipe.delete(self._keys.symbols)
                await pipe.sadd(self._keys.symbols, *symbols)
                await pipe.pexpire(self._keys.symbols, ttl_ms * 10)
            await pipe.execute()
        self._ingest_info = info

    # -- queries for gateways (the UpstreamView of a ``--role gateway`` process) --------

    def upstream_view(self) -> RedisBus:
        return self

    def leader_health(self) -> SourceHealth | None:
        """The leading ingest's upstream health, named with the leader's node id."""
        info = self._ingest_info
        if info is None or info.upstream is None:
            return None
        return msgspec.structs.replace(info.upstream, leader=info.node)

    async def known_symbol(self, symbol: str) -> bool | None:
        """Whether the leading ingest lists ``symbol``; None when no list is published."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                await pipe.exists(self._keys.symbols)
                await pipe.sismember(self._keys.symbols, symbol)
                exists, member = await pipe.execute()
        except (RedisError, OSError):
            return None
        return bool(member) if exists else None

    def health(self) -> RedisHealth:
        info = self._ingest_info
        return RedisHealth(
            kind=self.name,
            connected=self.connected,
            node=self.node,
            leader=self.leading if self.can_lead and self._ingest is not None else None,
            node_demand=len(self._wanted),
            cluster_demand=info.cluster_demand if info is not None else None,
            demand_by_node=info.demand_by_node if info is not None else None,
            ingest_leader=info.node if info is not None else None,
            reconnects=self.reconnects,
            published=self.published,
            pending_publications=len(self._outbox),
            dropped_publications=self.dropped,
            refused_publications=self.refused,
        )
