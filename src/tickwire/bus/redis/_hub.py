"""The hub side of the Redis bus: demand out (leases), data in (pub/sub), last values."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from ...publications import ChannelStatus, Publication
from ..base import BusListener
from ._books import BookReader, is_book
from ._link import Link, decode_info
from ._wire import SEQ_AT_LEAST, SEQ_TTL_MS, as_bytes, decode_message


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
    """

    def __init__(self, link: Link, *, lease_ttl: float, subscribe_timeout: float) -> None:
        self._link = link
        self._keys = link.keys
        self._lease_ttl = lease_ttl
        self._subscribe_timeout = subscribe_timeout
        self._seq_at_least = link.redis.register_script(SEQ_AT_LEAST)
        self.listener: BusListener | None = None
        # Set by the bus when this node may lead: the demand channel, and who hears it.
        self.control: str | None = None
        self.on_announce: Callable[[str], None] = lambda channel: None
        self.on_connected: Callable[[], None] = lambda: None
        self.wanted: set[str] = set()
        self._ready: dict[str, asyncio.Future[None]] = {}  # SUBSCRIBE confirmed on this connection
        self._requested: set[str] = set()  # SUBSCRIBE sent on this connection
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
        self._lease_changes[channel] = True
        self._wake_subs.set()
        self._wake_leases.set()

    def unwant(self, channel: str) -> None:
        self.wanted.discard(channel)
        self._seen.pop(channel, None)
        self.books.drop(channel)
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
            if is_book(channel):
                return await self.books.read(channel)
            raw_last, raw_status = await self._link.redis.mget(
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
        if self.listener is None or msg.channel not in self.wanted:
            return
        if isinstance(msg, Publication):
            seen = self._seen.get(msg.channel, 0)
            if msg.seq > seen:
                if msg.seq != seen + 1 and is_book(msg.channel):
                    self.books.gap(msg.channel, msg.seq)  # diffs this node missed: sync from the key
                self._seen[msg.channel] = msg.seq
            self.listener.on_publication(msg)
        else:
            self.listener.on_status(msg)

    def _on_up(self) -> None:
        self.connected = True
        url = self._link.safe_url
        if self._was_connected:
            self.reconnects += 1
            logger.info("redis bus reconnected to %s; resubscribing %d channels", url, len(self.wanted))
            self._refresh.update(self.wanted)
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
                self.listener.on_status(self._down_status(channel))

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
                add = sorted(self.wanted - self._requested)
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
            last, status = await self.last(channel)
            if channel not in self.wanted or self.listener is None or not self.connected:
                continue
            if status is None or status.live or status.reason == DOWN:
                status = ChannelStatus(channel, True, None, self._link.clock_ms())
            self.listener.on_status(status)
            if last is not None:
                self._deliver(last)

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
