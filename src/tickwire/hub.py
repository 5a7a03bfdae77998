"""The hub: channel -> local subscribers, demand refcounts, last value, fan-out.

Theory of operation:

* A channel exists in the hub while it has local subscribers (or a subscribe
  in flight). The first one makes the node ``want`` it on the bus; the last
  one leaving ``unwant``s it. The bus and the ingest decide about upstream
  streams and their linger window; the hub only counts.
* A publication arrives encoded. The hub frames it once (:func:`text_frame`)
  and hands the same bytes to every subscriber with a plain method call:
  the fan-out loop never awaits and never encodes per subscriber.
* The hub keeps each channel's newest publication and status, so a new
  subscriber gets a snapshot at once and a stale channel says so.
"""

from __future__ import annotations

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
    __slots__ = ("last", "name", "pending", "status", "subscribers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.subscribers: dict[Subscriber, None] = {}  # ordered set
        self.pending = 0  # subscribes awaiting the bus's last value
        self.last: Publication | None = None
        self.status: ChannelStatus | None = None


class Hub:
    """Local fan-out for one node.

    Args:
        bus: where demand goes and publications come from.
        on_deliver: called once per publication with (publication, subscriber
            count) so stats and latency metrics cost one call, not one per client.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        on_deliver: Callable[[Publication, int], None] | None = None,
        clock_ms: Callable[[], int],
    ) -> None:
        self._bus = bus
        self._channels: dict[str, _Channel] = {}
        self._on_deliver = on_deliver
        self._clock_ms = clock_ms
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
        state.last = pub
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
        previous = state.status
        state.status = status
        if previous is not None and previous.live == status.live:
            return
        if previous is None and status.live:
            return  # nothing was announced stale, so nothing to take back
        frame = text_frame(encode_status(status.channel, status.live, status.time, status.reason))
        for sub in state.subscribers:
            sub.push_final(status.channel, frame)

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
