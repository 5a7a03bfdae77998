"""The Redis bus: gateway and ingest processes on many machines share upstreams.

Theory of operation. Keys live under a prefix ``P`` (``--redis-prefix``,
default ``tickwire``); ``{CH}`` is a Redis Cluster hash tag, so the keys of
one channel share a slot and one Lua script may touch them all
(:mod:`._wire` names them all).

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
  (:mod:`.leader`). Only the leader forwards demand to its ingest
  and publishes market channels; it refreshes ``P:ingest:UPSTREAM`` (its
  health and the cluster-wide demand, for gateways' ``/health`` and stats)
  and ``P:symbols:UPSTREAM`` (for gateways' symbol validation).
* **History.** The same scripts append each message (and each status that
  changes the channel's state) to a stream per channel, ``P:{CH}:hist``
  (``MAXLEN ~`` the kind's ``--history`` size), and keep the channel's epoch
  in ``P:{CH}:epoch``, made when missing: when Redis lost the channel's keys,
  or the ingest released the channel (it deletes them). So a gateway restart
  or a leader failover keeps the epoch, and any gateway can serve a resume:
  from its own ring first, from the stream when the ring does not reach back
  (:meth:`RedisBus.history`). A gateway that sees a seq gap on pub/sub fills
  it from the stream before the later message (:mod:`._gapfill`).
* **Faults.** When the pub/sub connection drops, every wanted channel is
  told ``stale`` ("bus disconnected"); the bus reconnects with jittered,
  capped backoff, re-SUBSCRIBEs, renews its leases, re-reads each channel's
  last value and status and tells the hub: ``live`` again (unless the
  upstream itself is stale) and the newest value.

The code follows the two directions: :class:`._hub.HubSide` (demand out,
data in: pub/sub reader, leases, last values) and :class:`._ingest.IngestSide`
(data out, demand in: outbox, writer, lead loop, reconcile), both over one
:class:`._link.Link` (the client, key names, node id). :class:`RedisBus`
owns the two, runs their loops and answers the queries of ``/health``.
Order books add a snapshot key per book channel (:mod:`._books`): the
leader's :class:`._books.SnapshotWriter` keeps it, and a gateway syncs a
book channel from it (``HubSide.books``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping

import msgspec
from redis.exceptions import RedisError

from ...clock import wall_ms
from ...health import SourceHealth
from ...history import DEFAULT_MAX_AGE_MS, DEFAULT_SIZES
from ...publications import ChannelStatus, Publication
from ..base import BusHealth, BusListener, DemandListener
from ._books import SnapshotWriter, is_book
from ._hub import HubSide
from ._ingest import IngestSide
from ._link import Link, node_id
from ._wire import Keys, StreamLimits, decode_message, encode_publication, encode_status


__all__ = ["RedisBus", "RedisHealth", "decode_message", "encode_publication", "encode_status", "node_id"]

_CLOSE_STEP_S = 2.0


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
    gaps_filled: int
    gaps_unfilled: int


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
        history: messages each channel's stream keeps, by kind (``--history``; 0: no stream).
        history_max_age_ms: kinds whose streams expire after that long without a message.
        max_gap: most missing publications a gateway reads from a stream to fill a pub/sub gap.
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
        history: Mapping[str, int] = DEFAULT_SIZES,
        history_max_age_ms: Mapping[str, int] = DEFAULT_MAX_AGE_MS,
        max_gap: int = 1000,
        node: str | None = None,
        clock_ms: Callable[[], int] = wall_ms,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.upstream = upstream
        self.node = node or node_id()
        self.can_lead = can_lead
        self._link = Link(
            url, keys=Keys(prefix, upstream), node=self.node, clock_ms=clock_ms, rng=rng or random.Random()
        )
        limits = StreamLimits(history, history_max_age_ms)
        self._hub = HubSide(
            self._link,
            lease_ttl=lease_ttl,
            subscribe_timeout=subscribe_timeout,
            limits=limits,
            max_gap=max_gap,
        )
        self._ingest = IngestSide(
            self._link,
            upstream=upstream,
            lock_ttl=lock_ttl,
            reconcile_interval=reconcile_interval,
            max_pending=max_pending,
            limits=limits,
        )
        self.books = SnapshotWriter(self._link, snapshot=self._book_snapshot, leading=lambda: self.leading)
        self._tasks: list[asyncio.Task[None]] = []

    # -- state, read by the node, /health and the tests ----------------------------------

    @property
    def connected(self) -> bool:
        return self._hub.connected

    @property
    def leading(self) -> bool:
        return self._ingest.leading

    @property
    def reconnects(self) -> int:
        return self._hub.reconnects

    @property
    def published(self) -> int:
        return self._ingest.published

    @property
    def dropped(self) -> int:
        return self._ingest.dropped

    @property
    def refused(self) -> int:
        """Publications refused by the seq guard."""
        return self._ingest.refused

    # -- lifecycle -------------------------------------------------------------

    @property
    def _leads(self) -> bool:
        """Whether this process runs the ingest side: it has an ingest and may lead."""
        return self._ingest.listener is not None and self.can_lead

    async def start(self) -> None:
        hub, ingest = self._hub, self._ingest
        loops = [hub.read_loop, hub.subscribe_loop, hub.lease_loop]
        if self._leads:
            hub.control = self._link.keys.demand
            hub.on_announce = ingest.announced
            hub.on_connected = ingest.wake
            loops += [ingest.lead_loop, ingest.write_loop, self.books.book_loop]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(fn(), name=f"redis-bus-{fn.__name__}") for fn in loops]

    async def close(self) -> None:
        """Stop the loops, then a bounded goodbye: flush, drop leases, release the lock.

        Every step has a deadline: a shutdown must not hang on a Redis that is slow,
        gone, or holding a connection a cancelled read left half-used.
        """
        self._hub.gaps.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_CLOSE_STEP_S)
        self._tasks = []
        self._hub.books.close()
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_STEP_S):
                await self._ingest.flush()
                await self._hub.drop_leases()
                await self._ingest.lock.release()
        if self._hub.pubsub is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(_CLOSE_STEP_S):
                    await self._hub.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_STEP_S):
                await self._link.redis.aclose()

    def attach_hub(self, listener: BusListener) -> None:
        self._hub.listener = listener

    def attach_ingest(self, listener: DemandListener) -> None:
        self._ingest.listener = listener

    # -- hub side: demand out, data in ------------------------------------------

    def want(self, channel: str) -> None:
        self._hub.want(channel)

    def unwant(self, channel: str) -> None:
        self._hub.unwant(channel)  # the cluster's epoch stays: other nodes and the stream go on

    async def last(self, channel: str) -> tuple[Publication | None, ChannelStatus | None]:
        return await self._hub.last(channel)

    async def epoch(self, channel: str) -> str:
        """The cluster's epoch of ``channel``, kept in Redis (made there when missing)."""
        return await self._hub.epoch(channel)

    async def history(
        self, channel: str, epoch: str, after: int, limit: int
    ) -> list[Publication | ChannelStatus] | None:
        """Messages after position ``after`` of ``epoch``, from the channel's stream."""
        return await self._hub.history(channel, epoch, after, limit)

    # -- ingest side: data out (only while leading) ---------------------------------

    def publish(self, pub: Publication) -> None:
        self._ingest.enqueue(pub)
        if is_book(pub.channel):
            self.books.touch(pub)

    def publish_status(self, status: ChannelStatus) -> None:
        self._ingest.enqueue(status)

    def forget(self, channel: str) -> None:
        self._ingest.enqueue(channel)  # deletes its epoch and stream too: the history ends
        if is_book(channel):
            self.books.forget(channel)

    def _book_snapshot(self, channel: str) -> Publication | None:
        listener = self._ingest.listener
        return listener.book_snapshot(channel) if listener is not None else None

    async def publish_data(self, channel: str, encode: Callable[[int], bytes], *, event_time: int) -> int:
        return await self._ingest.publish_data(channel, encode, event_time=event_time)

    # -- queries for gateways (the UpstreamView of a ``--role gateway`` process) --------

    def upstream_view(self) -> RedisBus:
        return self

    def leader_health(self) -> SourceHealth | None:
        """The leading ingest's upstream health, named with the leader's node id."""
        info = self._link.ingest_info
        if info is None or info.upstream is None:
            return None
        return msgspec.structs.replace(info.upstream, leader=info.node)

    async def known_symbol(self, symbol: str) -> bool | None:
        """Whether the leading ingest lists ``symbol``; None when no list is published."""
        keys = self._link.keys
        try:
            async with self._link.redis.pipeline(transaction=False) as pipe:
                await pipe.exists(keys.symbols)
                await pipe.sismember(keys.symbols, symbol)
                exists, member = await pipe.execute()
        except (RedisError, OSError):
            return None
        return bool(member) if exists else None

    def health(self) -> RedisHealth:
        info = self._link.ingest_info
        return RedisHealth(
            kind=self.name,
            connected=self.connected,
            node=self.node,
            leader=self.leading if self._leads else None,
            node_demand=len(self._hub.wanted),
            cluster_demand=info.cluster_demand if info is not None else None,
            demand_by_node=info.demand_by_node if info is not None else None,
            ingest_leader=info.node if info is not None else None,
            reconnects=self.reconnects,
            published=self.published,
            pending_publications=len(self._ingest.outbox),
            dropped_publications=self.dropped,
            refused_publications=self.refused,
            gaps_filled=self._hub.gaps.filled,
            gaps_unfilled=self._hub.gaps.unfilled,
        )
