"""The hub: channel -> local subscribers, demand refcounts, last value, fan-out.

Theory of operation:

* A channel exists in the hub while it has local subscribers (or a subscribe
  in flight). The first one makes the node ``want`` it on the bus; the last
  one leaving ``unwant``s it. The bus and the ingest decide about upstream
  streams and their linger window; the hub only counts.
* A publication arrives encoded. The hub frames it once (:func:`text_frame`)
  and hands the same bytes to every subscriber with a plain method call:
  the fan-out loop never awaits and never encodes per subscriber.
* Latest-value publications are fanned out at most once per event-loop
  iteration per channel: a burst of 1,000 price updates within one
  iteration costs one push per subscriber, of the newest value, not 1,000.
  A final publication (trade, closed candle, private event) goes out at
  once; one arriving while a latest value of its channel is pending
  supersedes that value, so per-channel order always holds.
* The hub keeps each channel's newest publication and status, so a new
  subscriber gets a snapshot at once and a stale channel says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

from .bus.base import Bus
from .frames import text_frame
from .protocol import as_snapshot, encode_status
from .publications import ChannelStatus, Publication


__all__ = ["Hub", "Subscriber"]


class Subscriber(Protocol):
    """What the hub needs of a session: two non-blocking pushes."""

    def push_latest(self, channel: str, frame: bytes) -> None:
        """Queue a latest-value frame, replacing one of ``channel`` not yet written."""

    def push_final(self, channel: str, frame: bytes) -> None:
        """Queue a frame that must be delivered (or the client dropped)."""


class _Channel:
    __slots__ = ("dirty", "last", "name", "pending", "status", "subscribers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.subscribers: dict[Subscriber, None] = {}  # ordered set
        self.pending = 0  # subscribes awaiting the bus's last value
        self.last: Publication | None = None
        self.status: ChannelStatus | None = None
        self.dirty = False  # ``last`` is a latest value not yet fanned out


class Hub:
    """Local fan-out for one node.

    Args:
        bus: where demand goes and publications come from.
        on_deliver: called once per publication with (publication, subscriber
            count) so stats and latency metrics cost one call, not one per client.
        on_conflated: called with the subscriber count when a latest value is
            superseded in the hub before it was fanned out.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        on_deliver: Callable[[Publication, int], None] | None = None,
        on_conflated: Callable[[int], None] | None = None,
        clock_ms: Callable[[], int],
    ) -> None:
        self._bus = bus
        self._channels: dict[str, _Channel] = {}
        self._on_deliver = on_deliver
        self._on_conflated = on_conflated
        self._clock_ms = clock_ms
        self._dirty: list[_Channel] = []
        self._flush_handle: asyncio.Handle | None = None
        bus.attach_hub(self)

    # -- demand --------------------------------------------------------------

    async def subscribe(self, sub: Subscriber, channel: str) -> list[bytes]:
        """Add ``sub`` to ``channel``; returns the frames to send right after the ack.

        Those are a snapshot (when a live value is held) or a ``stale``
        status. The caller queues its ack and these frames before its next
        await, so no publication can slip between them.
        """
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(channel)
            self._bus.want(channel)
        if state.last is None and state.status is None:
            state.pending += 1
            try:
                last, status = await self._bus.last(channel)
            finally:
                state.pending -= 1
            if last is not None and (state.last is None or last.seq > state.last.seq):
                state.last = last
            if status is not None and state.status is None:
                state.status = status
        if state.dirty:
            self._flush_channel(state)  # the others first, so the newcomer's snapshot is not repeated
        state.subscribers[sub] = None
        return self._greeting(state)

    def _greeting(self, state: _Channel) -> list[bytes]:
        if state.status is not None and not state.status.live:
            reason = state.status.reason
            return [text_frame(encode_status(state.name, False, self._clock_ms(), reason))]
        if state.last is not None:
            return [text_frame(as_snapshot(state.last.payload))]
        return []

    def unsubscribe(self, sub: Subscriber, channel: str) -> None:
        state = self._channels.get(channel)
        if state is None or sub not in state.subscribers:
            return
        del state.subscribers[sub]
        self._maybe_drop(state)

    def remove(self, sub: Subscriber, channels: Iterable[str]) -> None:
        """Remove ``sub`` from all of ``channels`` (a disconnect)."""
        for channel in channels:
            self.unsubscribe(sub, channel)

    def _maybe_drop(self, state: _Channel) -> None:
        if not state.subscribers and not state.pending:
            del self._channels[state.name]
            self._bus.unwant(state.name)

    # -- data ----------------------------------------------------------------

    def on_publication(self, pub: Publication) -> None:
        state = self._channels.get(pub.channel)
        if state is None:
            return
        last = state.last
        if last is not None and pub.seq <= last.seq:
            return  # a duplicate (re-delivery after a bus reconnect, or a rotation overlap)
        if state.dirty:
            # the pending latest value is superseded before any subscriber saw it
            state.dirty = False
            if self._on_deliver is not None:
                self._on_deliver(last, 0)  # type: ignore[arg-type]
            if self._on_conflated is not None and state.subscribers:
                self._on_conflated(len(state.subscribers))
        state.last = pub
        if pub.final:
            self._fan_out(state, pub)
            return
        state.dirty = True
        self._dirty.append(state)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Fan out the newest value of every channel that got one this iteration."""
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for state in dirty:
            if state.dirty:
                self._flush_channel(state)

    def _flush_channel(self, state: _Channel) -> None:
        state.dirty = False
        if state.last is not None and self._channels.get(state.name) is state:
            self._fan_out(state, state.last)

    def _fan_out(self, state: _Channel, pub: Publication) -> None:
        subscribers = state.subscribers
        if subscribers:
            frame = text_frame(pub.payload)
            if pub.final:
                for sub in subscribers:
                    sub.push_final(pub.channel, frame)
            else:
                for sub in subscribers:
                    sub.push_latest(pub.channel, frame)
        if self._on_deliver is not None:
            self._on_deliver(pub, len(subscribers))

    def on_status(self, status: ChannelStatus) -> None:
        state = self._channels.get(status.channel)
        if state is None:
            return
        if state.dirty:
            self._flush_channel(state)  # data that came before the status goes before it
        previous = state.status
        state.status = status
        if previous is not None and previous.live == status.live:
            return
        if previous is None and status.live:
            return  # nothing was announced stale, so nothing to take back
        frame = text_frame(encode_status(status.channel, status.live, status.time, status.reason))
        for sub in state.subscribers:
            sub.push_final(status.channel, frame)

    def snapshot_frame(self, channel: str) -> bytes | None:
        """The channel's current snapshot as a frame, for a throttled subscriber at its due time.

        None when nothing can be served: no value, or the channel is stale.
        A ``book`` channel's snapshot is its book view's (issue 13), which this
        hub does not hold yet: None until the book view answers here.
        """
        state = self._channels.get(channel)
        if state is None or state.last is None or channel.startswith("book:"):
            return None
        if state.status is not None and not state.status.live:
            return None
        return text_frame(as_snapshot(state.last.payload))

    # -- introspection (stats, tests) ------------------------------------------

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def channels(self) -> list[str]:
        return sorted(self._channels)

    def subscriber_count(self, channel: str) -> int:
        state = self._channels.get(channel)
        return len(state.subscribers) if state is not None else 0

    @property
    def subscription_count(self) -> int:
        return sum(len(s.subscribers) for s in self._channels.values())

    @property
    def cached_count(self) -> int:
        return sum(1 for s in self._channels.values() if s.last is not None)

    def stale_channels(self) -> list[str]:
        return sorted(
            name for name, s in self._channels.items() if s.status is not None and not s.status.live
        )
