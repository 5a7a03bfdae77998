"""The hub side of the Redis bus: demand out (leases), data in (pub/sub), last values,
epochs and history (docs/multi-node.md, "History and epochs")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from ...publications import ChannelStatus, Publication
from ..base import BusListener
from ._books import BookReader, is_book
from ._gapfill import GapFiller, Item
from ._link import Link, decode_info
from ._stream import Streams
from ._wire import (
    SEQ_AT_LEAST,
    SEQ_TTL_MS,
    EpochChange,
    StreamLimits,
    as_bytes,
    decode_epoch,
    decode_message,
)


__all__ = ["DOWN", "HubSide"]

logger = logging.getLogger("tickwire.bus.redis")

DOWN = "bus disconnected"
"""The reason of the ``stale`` status every wanted channel gets when the pub/sub connection drops."""

_DOWN_WARNING_EVERY_S = 30.0  # while Redis stays unreachable, say so this often


class HubSide:
    """This node's subscriptions: one pub/sub connection, demand leases, snapshots.

    Args:
        link: the shared client and key names.
        lease_ttl: seconds a demand lease lives without renewal (renewed every third of it).
        subscribe_timeout: seconds a new subscriber waits for the channel's SUBSCRIBE.
        limits: which channels keep a stream (only their gaps are worth filling).
        max_gap: most missing publications a gap fill reads from the stream.
    """

    def __init__(
        self,
        link: Link,
        *,
        lease_ttl: float,
        subscribe_timeout: float,
        limits: StreamLimits,
        max_gap: int = 1000,
    ) -> None:
        self._link = link
        self._keys = link.keys
        self._lease_ttl = lease_ttl
        self._subscribe_timeout = subscribe_timeout
        self._seq_at_least = link.redis.register_script(SEQ_AT_LEAST)
        self.streams = Streams(link)
        self._limits = limits
        self._epochs: dict[str, str] = {}  # the epoch the hub was told, per wanted channel
        self.gaps = GapFiller(self._read_gap, self._hand, max_gap=max_gap, timeout=subscribe_timeout)
        self.listener: BusListener | None = None
        # Set by the bus when this node may lead: the demand channel, and who hears it.
        self.control: str | None = None
        self.on_announce: Callable[[str], None] = lambda channel: None
        self.on_connected: Callable[[], None] = lambda: None
        self.wanted: set[str] = set()
        self._ready: dict[str, asyncio.Future[None]] = {}  # SUBSCRIBE confirmed on this connection
        self._requested: set[str] = set()  # SUBSCRIBE sent on this connection
        self._again: set[str] = set()  # wanted again before the UNSUBSCRIBE went out: confirm anew
        self._seen: dict[str, int] = {}  # newest seq delivered, per wanted channel
        self._refresh: set[str] = set()  # re-read last value and status after a reconnect
        self._lease_changes: dict[str, bool] = {}
        self.pubsub: PubSub | None = None
        self._wake_subs = asyncio.Event()
        self._wake_leases = asyncio.Event()
        self.connected = False
        self._was_connected = False
        self._next_down_warning = 0.0  # monotonic
        self.reconnects = 0
        # book channels: the snapshot key on subscribe and after a gap (._books)
        self.books = BookReader(link, wanted=self.wanted, seen=self._seen, deliver=self._deliver)

    # -- demand ----------------------------------------------------------------

    def want(self, channel: str) -> None:
        self.wanted.add(channel)
        if channel not in self._ready:
            self._ready[channel] = asyncio.get_running_loop().create_future()
            if channel in self._requested:  # still subscribed: only a new SUBSCRIBE resolves the future
                self._again.add(channel)
        self._lease_changes[channel] = True
        self._wake_subs.set()
        self._wake_leases.set()

    def unwant(self, channel: str) -> None:
        self.wanted.discard(channel)
        self._seen.pop(channel, None)
        self.books.drop(channel)
        self._epochs.pop(channel, None)
        self.gaps.drop(channel)
        self._refresh.discard(channel)
        ready = self._ready.pop(channel, None)
        if ready is not None and not ready.done():
            ready.set_result(None)
        self._lease_changes[channel] = False
        self._wake_subs.set()
        self._wake_leases.set()

    async def drop_leases(self) -> None:
        """Delete this node's leases at once (a clean shutdown)."""
        if self.wanted:
            await self._link.redis.delete(*(self._keys.lease(self._link.node, c) for c in self.wanted))

    # -- snapshots -------------------------------------------------------------

    def _down_status(self, channel: str) -> ChannelStatus:
        return ChannelStatus(channel, False, DOWN, self._link.clock_ms())

    async def _subscribed(self, channel: str) -> bool:
        """Wait (bounded) for the channel's SUBSCRIBE, so that what is read next is followed
        by everything published after it; False when it did not come in time."""
        ready = self._ready.get(channel)
        if ready is not None and not ready.done():
            try:
                await asyncio.wait_for(asyncio.shield(ready), self._subscribe_timeout)
            except TimeoutError:
                return False
        return True

    async def last(self, channel: str) -> tuple[Publication | None, ChannelStatus | None]:
        if not self.connected or not await self._subscribed(channel):
            return None, self._down_status(channel)
        try:
            if is_book(channel):
                return await self.books.read(channel)
            raw_last, raw_status = await self._link.redis.mget(
                self._keys.last(channel), self._keys.status(channel)
            )
        except (RedisError, OSError):
            return None, self._down_status(channel)
        last = decode_message(as_bytes(raw_last)) if raw_last is not None else None
        status = decode_message(as_bytes(raw_status)) if raw_status is not None else None
        if isinstance(last, Publication) and channel in self.wanted:
            self._seen.setdefault(channel, last.seq)  # what the hub starts from: a gap is counted after it
        return (
            last if isinstance(last, Publication) else None,
            status if isinstance(status, ChannelStatus) else None,
        )

    # -- epochs and history ------------------------------------------------------

    async def epoch(self, channel: str) -> str:
        """The channel's epoch in Redis, made there now when it has none.

        Read after the channel's SUBSCRIBE, so a later change reaches this
        node as an ``E`` message (when the SUBSCRIBE is late, read anyway and
        compared again by the refresh). When Redis cannot answer, a local epoch
        that matches no client's (so a resume is ``epoch_changed``, never a
        wrong replay); the refresh after the reconnect tells the hub the real one.
        """
        epoch = None
        subscribed = self.connected and await self._subscribed(channel)
        if self.connected:
            # read even when the SUBSCRIBE is late (a connect storm): a local epoch would
            # turn every client acked meanwhile into epoch_changed on its next resume
            with contextlib.suppress(RedisError, OSError):
                epoch = await self.streams.epoch(channel)
        if epoch is None:
            epoch = f"{secrets.token_urlsafe(6)}.local"  # a '.' is never in a Redis epoch
        if epoch.endswith(".local") or not subscribed:
            self._refresh.add(channel)  # compared again once subscribed: a change is an E then
            self._wake_subs.set()
        if channel in self.wanted:
            self._epochs[channel] = epoch
        return epoch

    async def history(
        self, channel: str, epoch: str, after: int, limit: int
    ) -> list[Publication | ChannelStatus] | None:
        """Up to ``limit + 1`` messages after position ``after`` of ``epoch`` from the stream, or None."""
        if not self.connected:
            return None
        try:
            return await self.streams.read(channel, epoch, after, "+", limit + 2)  # + the entry at ``after``
        except (RedisError, OSError) as exc:
            logger.debug("history of %s unreadable: %s", channel, exc)
            return None

    async def _read_gap(self, channel: str, seen: int, upto: int) -> list[Publication | ChannelStatus] | None:
        """The messages between publications ``seen`` and ``upto``, whole, or None."""
        epoch = self._epochs.get(channel)
        found = await self.streams.read(channel, epoch, seen, f"({upto}-0", upto - seen + 64)
        pubs = [m.seq for m in found or () if isinstance(m, Publication)]
        return found if pubs and pubs[-1] == upto - 1 else None

    # -- the pub/sub connection ------------------------------------------------

    async def read_loop(self) -> None:
        """Hold the pub/sub connection; reconnect with backoff when it breaks."""
        delays = self._link.backoff()
        while True:
            pubsub = self._link.redis.pubsub()
            try:
                # the node's own control channel keeps the connection subscribed to something
                await pubsub.subscribe(self.control or self._keys.node(self._link.node))
                self.pubsub = pubsub
                self._requested.clear()
                self._wake_subs.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_message(message)
                        if self.connected:
                            delays = self._link.backoff()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.pubsub = None
                self._on_down(exc)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(next(delays))

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        name = message["channel"].decode()
        if kind == "message":
            if name == self._keys.demand:
                self.on_announce(message["data"].decode())
                return
            data = message["data"]
            channel = self._keys.channel_of(name)
            change = decode_epoch(channel, data) if channel is not None else None
            self._deliver(change or decode_message(data))
        elif kind == "subscribe":
            channel = self._keys.channel_of(name)
            if channel is None:
                self._on_up()
                return
            ready = self._ready.get(channel)
            if ready is not None and not ready.done():
                ready.set_result(None)

    def _deliver(self, msg: Item) -> None:
        if self.listener is None or msg.channel not in self.wanted:
            return
        if self.gaps.held and self.gaps.hold(msg):
            return  # behind a gap being filled
        self._hand(msg, True)

    def _hand(self, msg: Item, check: bool) -> None:
        """Hand ``msg`` to the hub; a publication after a seq gap first waits for the fill."""
        listener = self.listener
        if listener is None or msg.channel not in self.wanted:
            return
        if isinstance(msg, Publication):
            seen = self._seen.get(msg.channel, 0)
            if msg.seq > seen:
                if check and seen and msg.seq > seen + 1 and self._fillable(msg.channel):
                    if self.gaps.start(msg, seen):
                        return  # held until the stream fills the gap
                if msg.seq != seen + 1 and is_book(msg.channel):
                    self.books.gap(msg.channel, msg.seq)  # diffs this node missed: sync from the key
                self._seen[msg.channel] = msg.seq
            listener.on_publication(msg)
        elif isinstance(msg, ChannelStatus):
            listener.on_status(msg)
        elif self._epochs.get(msg.channel) != msg.epoch:  # often this node's own, made in epoch()
            self._epochs[msg.channel] = msg.epoch
            listener.on_epoch(msg.channel, msg.epoch)

    def _fillable(self, channel: str) -> bool:
        return self.connected and self._limits.of(channel)[0] > 0

    def _on_up(self) -> None:
        self.connected = True
        url = self._link.safe_url
        if self._was_connected:
            self.reconnects += 1
            logger.info("redis bus reconnected to %s; resubscribing %d channels", url, len(self.wanted))
            self._refresh.update(self.wanted)
            self._wake_subs.set()  # the subscribe loop may have run already, before this
        else:
            logger.info("redis bus connected to %s as %s", url, self._link.node)
        self._was_connected = True
        for channel in self.wanted:
            self._lease_changes.setdefault(channel, True)
        self._wake_leases.set()
        self.on_connected()

    def _on_down(self, exc: BaseException) -> None:
        was = self.connected
        self.connected = False
        self._requested.clear()
        loop = asyncio.get_running_loop()
        for channel in self.wanted:
            if self._ready[channel].done():
                self._ready[channel] = loop.create_future()
        now = time.monotonic()
        if not was:
            # Unreachable at start-up, or still down: an operator must hear it, but not every retry.
            if now >= self._next_down_warning:
                self._next_down_warning = now + _DOWN_WARNING_EVERY_S
                logger.warning("redis bus cannot reach %s (%s); retrying", self._link.safe_url, exc)
            else:
                logger.debug("redis bus still down: %s", exc)
            return
        self._next_down_warning = now + _DOWN_WARNING_EVERY_S
        url, stale = self._link.safe_url, len(self.wanted)
        logger.warning("redis bus disconnected from %s (%s); %d channels stale", url, exc, stale)
        if self.listener is not None:
            for channel in sorted(self.wanted):
                self._deliver(self._down_status(channel))  # behind a fill in progress, if any

    # -- subscriptions and leases ----------------------------------------------

    async def subscribe_loop(self) -> None:
        """Keep the pub/sub subscriptions equal to the wanted channels; re-read after a reconnect."""
        while True:
            await self._wake_subs.wait()
            self._wake_subs.clear()
            pubsub = self.pubsub
            if pubsub is None:
                continue
            try:
                add = sorted((self.wanted - self._requested) | (self._again & self.wanted))
                self._again.clear()
                drop = sorted(self._requested - self.wanted)
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
        channels = sorted(self._refresh & self.wanted)
        self._refresh.clear()
        for channel in channels:
            ready = self._ready.get(channel)
            if ready is not None and not ready.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ready), self._subscribe_timeout)
            epoch = await self._epoch_or_later(channel)
            last, status = await self.last(channel)
            if channel not in self.wanted or self.listener is None or not self.connected:
                continue
            if epoch is not None and epoch != self._epochs.get(channel):  # Redis lost the keys meanwhile
                self._deliver(EpochChange(channel, epoch))
            if status is None or status.live or status.reason == DOWN:
                status = ChannelStatus(channel, True, None, self._link.clock_ms())
            self._deliver(status)
            if last is not None:
                self._deliver(last)  # after a gap: the stream fills it first

    async def _epoch_or_later(self, channel: str) -> str | None:
        """The channel's epoch for a refresh; None (and compared at the next refresh) when
        Redis does not answer twice: the first command after a Redis restart often meets a
        dead pooled connection, and a refresh must still bring status and value back."""
        for _ in range(2):
            with contextlib.suppress(RedisError, OSError):
                return await self.streams.epoch(channel)
        self._refresh.add(channel)
        return None

    async def lease_loop(self) -> None:
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
        node = self._link.node
        async with self._link.redis.pipeline(transaction=False) as pipe:
            for channel, wanted in changes.items():
                if wanted and channel in self.wanted:
                    # a seq seen here survives a Redis restart that lost it (before the lease: see docs)
                    if channel in self._seen:
                        await self._seq_at_least(
                            keys=[self._keys.seq(channel)],
                            args=[self._seen[channel], SEQ_TTL_MS],
                            client=pipe,
                        )
                    await pipe.set(self._keys.lease(node, channel), b"1", px=ttl_ms)
                    await pipe.publish(self._keys.demand, channel)
                elif not wanted and channel not in self.wanted:
                    await pipe.delete(self._keys.lease(node, channel))
            if full:
                for channel in self.wanted:
                    await pipe.set(self._keys.lease(node, channel), b"1", px=ttl_ms)
                await pipe.get(self._keys.ingest)
            results = await pipe.execute()
        if full:
            raw = results[-1]
            self._link.ingest_info = decode_info(raw) if raw else None
