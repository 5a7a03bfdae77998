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
  While the node is busy writing (the flusher's :meth:`~.flusher.Flusher.hold`),
  or once a value was superseded before its fan-out to :data:`BURST_AUDIENCE`
  clients or more (a burst began), that fan-out waits until the burst of
  values pauses (at most 50 ms), so a burst conflates into one or two writes.
  A final publication (trade, closed candle, private event) goes out at
  once; one arriving while a latest value of its channel is pending
  supersedes that value, so per-channel order always holds.
* The hub keeps each channel's newest publication and status, so a new
  subscriber gets a snapshot at once and a stale channel says so.
* A book channel (``book:SYMBOL:DEPTH``) has a :class:`BookView` rebuilt
  from its publications; they go out with ``push_state`` (the state class,
  docs/book.md, "Delivery to slow clients"), and its greeting is the view's snapshot, taken with
  :meth:`Hub.send_snapshot` so that it too goes through the state class.
  Other channels have no view and pay one ``is None`` test per publication.
* Channels of kinds that keep history also have a ring (:mod:`.history`):
  one append per publication, and a ``subscribe`` with ``since`` is answered
  from it (:mod:`.resume`) in the same loop iteration that registers the
  subscriber, so no message slips between the replay and the live stream.
  Such a channel stays (still wanted on the bus, its ring filling) for
  ``resume_window`` seconds after its last subscriber left. A book channel's
  ring holds its recent diffs (docs/book.md, "Resume of books"). When a resume
  reaches below the ring, the bus's older history (a Redis stream) is read
  before the decision, and joined to the ring (:mod:`.backlog`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from .backlog import Backlog
from .bookview import BookView, Outcome
from .bus.base import Bus
from .frames import text_frame
from .history import History, Ring, recovers_by_snapshot
from .protocol import Position, as_snapshot, encode_status
from .publications import ChannelStatus, Publication
from .resume import Greeting, decide


__all__ = ["BURST_AUDIENCE", "Hub", "Subscriber"]

BURST_AUDIENCE = 250
"""Subscribers of a channel from which a superseded latest value starts the pace: about
the clients one slow flush (2 ms of ``send``) writes to (docs/fanout.md, "Bursts")."""


class Subscriber(Protocol):
    """What the hub needs of a session: three non-blocking pushes."""

    def push_latest(self, channel: str, frame: bytes) -> None:
        """Queue a latest-value frame, replacing one of ``channel`` not yet written."""

    def push_final(self, channel: str, frame: bytes) -> None:
        """Queue a frame that must be delivered (or the client dropped)."""

    def push_state(self, channel: str, frame: bytes, snapshot: bool, view: BookView) -> None:
        """Queue a book frame (a snapshot when ``snapshot``); ``view`` gives the
        current snapshot when the client's pending diffs must become one."""


class _Channel:
    __slots__ = ("dirty", "epoch", "last", "name", "pending", "ring", "status", "subscribers", "view")

    def __init__(self, name: str, ring: Ring | None) -> None:
        self.name = name
        self.subscribers: dict[Subscriber, None] = {}  # ordered set
        self.pending = 0  # subscribes awaiting the bus's last value
        self.last: Publication | None = None
        self.status: ChannelStatus | None = None
        self.dirty = False  # ``last`` is a latest value not yet fanned out
        self.view = BookView(name) if name.startswith("book:") else None
        self.epoch: str | None = None  # from the bus, once
        self.ring = ring  # recent history, for resumes (None: this kind keeps none)


class Hub:
    """Local fan-out for one node.

    Args:
        bus: where demand goes and publications come from.
        on_deliver: called once per publication with (publication, subscriber
            count) so stats and latency metrics cost one call, not one per client.
        on_conflated: called with the subscriber count when a latest value is
            superseded in the hub before it was fanned out.
        history: the rings of channels that keep history (default: none).
        resume_window: seconds a channel with a ring stays after its last subscriber left.
        on_resume: called once per ``since`` answered, with ``recovered`` or the reason.
        hold: seconds to hold latest values before the next fan-out, given the time
            (``perf_counter``) of the newest one (the flusher's pace,
            :meth:`~.flusher.Flusher.hold`; asked when a fan-out is scheduled and when it runs).
    """

    def __init__(
        self,
        bus: Bus,
        *,
        on_deliver: Callable[[Publication, int], None] | None = None,
        on_conflated: Callable[[int], None] | None = None,
        clock_ms: Callable[[], int],
        history: History | None = None,
        resume_window: float = 0.0,
        on_resume: Callable[[str], None] | None = None,
        hold: Callable[[float], float] | None = None,
    ) -> None:
        self._bus = bus
        self._channels: dict[str, _Channel] = {}
        self._on_deliver = on_deliver
        self._on_conflated = on_conflated
        self._clock_ms = clock_ms
        self._dirty: list[_Channel] = []
        self._flush_handle: asyncio.Handle | None = None
        self.hold = hold  # the gateway sets it to its flusher's pace
        self._latest_at = 0.0  # perf_counter time of the newest latest value (for the pace)
        self.on_burst: Callable[[], None] | None = None  # the gateway sets it to its flusher's brace
        self.history = history if history is not None else History.none()
        self._resume_window = resume_window
        self._on_resume = on_resume
        self._idle: dict[str, asyncio.TimerHandle] = {}  # channels kept for resumes, unsubscribed
        bus.attach_hub(self)

    # -- demand --------------------------------------------------------------

    async def subscribe(
        self, sub: Subscriber, channel: str, since: Position | None = None, *, replay_cap: int | None = None
    ) -> Greeting:
        """Add ``sub`` to ``channel``; returns the frames to send right after the ack, and the
        channel's position for the ack (:class:`~.resume.Greeting`).

        Those frames are a snapshot (when a live value is held) or a ``stale``
        status; after a ``since``, the missed messages instead when they can
        be recovered (``replay_cap``: most frames, default the history's
        cap). Every await is over before the frames are chosen and ``sub`` is
        registered, and the caller queues its ack and these frames before its
        next await, so no publication can slip between them or come twice.
        For a book channel the snapshot is not among them: the caller then
        calls :meth:`send_snapshot`, in the same turn.
        """
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(channel, self.history.ring(channel))
            self._bus.want(channel)
        elif self._idle:
            self._wake(state)
        view = state.view
        if (
            state.epoch is None
            or (state.last is None and state.status is None)
            or (view is not None and not view.ready)
        ):
            await self._load(state)
        backlog = await self._reach_back(state, since, replay_cap) if since is not None else None
        if state.dirty:
            self._flush_channel(state)  # the others first, so the newcomer's snapshot is not repeated
        state.subscribers[sub] = None
        return self._greet(state, since, replay_cap, backlog)

    async def _load(self, state: _Channel) -> None:
        """Read the channel's epoch (once) and its last value and status from the bus."""
        state.pending += 1
        try:
            if state.epoch is None:
                epoch = await self._bus.epoch(state.name)
                state.epoch = state.epoch or epoch
            view = state.view
            if (state.last is None and state.status is None) or (view is not None and not view.ready):
                last, status = await self._bus.last(state.name)
                if last is not None and view is not None:
                    self._offer(state, view, last)  # the view orders and dedupes a book's messages
                elif last is not None and (state.last is None or last.seq > state.last.seq):
                    state.last = last
                if status is not None and state.status is None:
                    state.status = status
        finally:
            state.pending -= 1
        if state.ring is not None:
            state.ring.start(state.last.seq if state.last is not None else 0)

    def _cap(self, replay_cap: int | None) -> int:
        return self.history.replay_cap if replay_cap is None else min(replay_cap, self.history.replay_cap)

    async def _reach_back(self, state: _Channel, since: Position, replay_cap: int | None) -> Backlog | None:
        """The bus's messages after ``since`` when the ring does not reach back to it (a
        gateway that opened the channel after the client's position); None when not needed."""
        ring, top, cap = state.ring, state.last.seq if state.last is not None else 0, self._cap(replay_cap)
        if ring is None or since.epoch != state.epoch or not since.seq < ring.floor <= top:
            return None
        if top - since.seq > cap:
            return None  # too many to replay anyway
        epoch = state.epoch
        state.pending += 1  # the channel stays while the bus is read
        try:
            found = await self._bus.history(state.name, epoch, since.seq, cap)
        finally:
            state.pending -= 1
        if found is None or state.epoch != epoch or state.ring is not ring:
            return None
        return Backlog(ring, since.seq, found, cap, top=state.last.seq if state.last is not None else 0)

    def _greet(
        self, state: _Channel, since: Position | None, replay_cap: int | None, backlog: Backlog | None = None
    ) -> Greeting:
        assert state.epoch is not None  # _load ran
        top = state.last.seq if state.last is not None else 0
        by_snapshot = recovers_by_snapshot(state.name)
        recoverable = by_snapshot or state.ring is not None
        if since is None:
            return Greeting(self._greeting(state), epoch=state.epoch, seq=top, recoverable=recoverable)
        outcome = decide(
            since, epoch=state.epoch, top=top, ring=backlog or state.ring, by_snapshot=by_snapshot,
            cap=self._cap(replay_cap), now_ms=self._clock_ms(),
        )  # fmt: skip
        if self._on_resume is not None:
            self._on_resume(outcome.result)
        frames = self._greeting(state) if outcome.snapshot else [text_frame(p) for p in outcome.replay]
        return Greeting(frames, epoch=state.epoch, seq=top, recoverable=recoverable, outcome=outcome)

    def _greeting(self, state: _Channel) -> list[bytes]:
        if state.status is not None and not state.status.live:
            reason = state.status.reason
            return [text_frame(encode_status(state.name, False, self._clock_ms(), reason))]
        if state.last is not None and state.view is None:
            return [text_frame(as_snapshot(state.last.payload))]
        return []  # a book's snapshot comes from its view, through send_snapshot()

    def send_snapshot(self, sub: Subscriber, channel: str) -> bool:
        """Push ``channel``'s book snapshot to ``sub`` (a subscribe's greeting, after the ack).

        Nothing while the channel is stale (its greeting was the status) or
        no whole book is held yet (the next snapshot publication reaches
        ``sub``). Returns whether a snapshot was pushed.
        """
        state = self._channels.get(channel)
        if state is None or state.view is None or sub not in state.subscribers:
            return False
        if state.status is not None and not state.status.live:
            return False
        frame = state.view.snapshot_frame()
        if frame is None:
            return False
        sub.push_state(channel, frame, True, state.view)
        return True

    def book_view(self, channel: str) -> BookView | None:
        """The view of a book channel this hub serves (None for other channels)."""
        state = self._channels.get(channel)
        return state.view if state is not None else None

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
            if state.ring is not None and self._resume_window > 0:
                if state.name in self._idle:
                    return
                # kept for resumes: still wanted on the bus, so its ring misses nothing
                loop = asyncio.get_running_loop()
                self._idle[state.name] = loop.call_later(self._resume_window, self._expire, state)
                return
            self._drop(state)

    def _drop(self, state: _Channel) -> None:
        del self._channels[state.name]
        if state.ring is not None:
            self.history.release(state.ring)
        self._bus.unwant(state.name)  # on one node this ends the epoch: the ring is gone

    def _wake(self, state: _Channel) -> None:
        timer = self._idle.pop(state.name, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, state: _Channel) -> None:
        """The resume window of an unsubscribed channel is over."""
        self._idle.pop(state.name, None)
        if self._channels.get(state.name) is state and not state.subscribers and not state.pending:
            self._drop(state)

    def close(self) -> None:
        """Stop the resume-window timers (node shutdown)."""
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()

    # -- data ----------------------------------------------------------------

    def on_publication(self, pub: Publication) -> None:
        state = self._channels.get(pub.channel)
        if state is None:
            return
        last = state.last
        if last is not None and pub.seq <= last.seq:
            if state.view is not None:  # a book snapshot re-read after a gap (Redis bus) mends the view
                self._offer(state, state.view, pub)
            return  # a duplicate (re-delivery after a bus reconnect, or a rotation overlap)
        if state.view is not None:
            self._on_book(state, state.view, pub)
            return
        if state.dirty:
            # the pending latest value is superseded before any subscriber saw it
            state.dirty = False
            if self._on_deliver is not None:
                self._on_deliver(last, 0)  # type: ignore[arg-type]
            if self._on_conflated is not None and state.subscribers:
                self._on_conflated(len(state.subscribers))
            if self.on_burst is not None and len(state.subscribers) >= BURST_AUDIENCE:
                self.on_burst()  # two values in one iteration to many clients: pace from the start
        state.last = pub
        ring = state.ring
        if ring is not None:  # one append per publication, whatever the subscriber count
            self.history.append(ring, pub.seq, pub.payload, self._clock_ms())
        if pub.final:
            self._fan_out(state, pub)
            return
        state.dirty = True
        self._dirty.append(state)
        hold = self.hold
        if hold is not None:
            self._latest_at = time.perf_counter()  # one clock read per latest publication, when paced
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            delay = hold(self._latest_at) if hold is not None else 0.0
            self._flush_handle = loop.call_later(delay, self._flush) if delay else loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Fan out the newest value of every channel that got one this iteration."""
        self._flush_handle = None
        if self.hold is not None:
            # asked again now: a long flush may have ended since this fan-out was scheduled
            delay = self.hold(self._latest_at)
            if delay > 0:
                self._flush_handle = asyncio.get_running_loop().call_later(delay, self._flush)
                return
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

    def _on_book(self, state: _Channel, view: BookView, pub: Publication) -> None:
        """A book publication: apply it to the view, then fan it out through the state class."""
        state.last = pub
        outcome = view.apply(pub.seq, pub.payload)
        ring = state.ring
        if ring is not None:  # its recent diffs, for resumes; a snapshot starts them again
            if outcome is Outcome.SNAPSHOT:
                ring.restart(pub.seq)
            else:
                self.history.append(ring, pub.seq, pub.payload, self._clock_ms())
        subscribers = state.subscribers
        if outcome is Outcome.HELD:
            subscribers = {}  # no whole book to continue from: nobody can use it
        elif subscribers:
            frame = text_frame(pub.payload)
            snapshot = outcome is Outcome.SNAPSHOT
            for sub in subscribers:
                sub.push_state(pub.channel, frame, snapshot, view)
        if self._on_deliver is not None:
            self._on_deliver(pub, len(subscribers))

    def _offer(self, state: _Channel, view: BookView, pub: Publication) -> None:
        """A publication read from the bus (``last``), maybe older than the view or
        a snapshot older than held diffs: when it makes the view whole, the
        subscribers waiting for a book get its snapshot."""
        if view.ready or view.apply(pub.seq, pub.payload) is not Outcome.SNAPSHOT:
            return
        frame = view.snapshot_frame()
        if frame is not None and not (state.status is not None and not state.status.live):
            for sub in state.subscribers:
                sub.push_state(state.name, frame, True, view)

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
        payload = encode_status(status.channel, status.live, status.time, status.reason, status.gap)
        if state.ring is not None:
            self.history.append_status(state.ring, payload, self._clock_ms())
        frame = text_frame(payload)
        for sub in state.subscribers:
            sub.push_final(status.channel, frame)

    def on_epoch(self, channel: str, epoch: str) -> None:
        """The bus lost ``channel``'s history (Redis flushed): it begins again as ``epoch``,
        so the ring starts again from the current position, as the bus's stream does."""
        state = self._channels.get(channel)
        if state is None or state.epoch == epoch:
            return
        state.epoch = epoch
        ring = state.ring
        if ring is not None and ring.top is not None:
            ring.clear()
            ring.top = None
            ring.start(state.last.seq if state.last is not None else 0)

    def snapshot_frame(self, channel: str) -> bytes | None:
        """The channel's current snapshot as a frame, for a throttled subscriber at its due time.

        None when nothing can be served: no value, or the channel is stale.
        A book's is its view's (encoded once per seq); a throttled book
        subscriber usually asks the view its frames came with directly.
        """
        state = self._channels.get(channel)
        if state is None or (state.status is not None and not state.status.live):
            return None
        if state.view is not None:
            return state.view.snapshot_frame()
        return text_frame(as_snapshot(state.last.payload)) if state.last is not None else None

    # -- introspection (stats, tests) ------------------------------------------

    @property
    def channel_count(self) -> int:
        """Channels with local subscribers (or a subscribe in flight)."""
        return len(self._channels) - len(self._idle)

    def channels(self) -> list[str]:
        return sorted(name for name in self._channels if name not in self._idle)

    def idle_channels(self) -> list[str]:
        """Channels without subscribers kept for resumes (their resume window is running)."""
        return sorted(self._idle)

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
            name
            for name, s in self._channels.items()
            if s.status is not None and not s.status.live and name not in self._idle
        )
