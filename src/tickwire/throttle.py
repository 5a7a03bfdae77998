"""Throttle per subscription (docs/protocol.md, "Throttle per subscription"): one client's held frames.

Pure: no asyncio, no clock; the caller passes the time in. A session owns one
:class:`Throttle` beside its :class:`~tickwire.outbox.Outbox`, made on its
first throttled subscribe.

Theory of operation:

1. A throttled (client, channel) is its own subscriber in the hub: a
   :class:`Held` view stands in the channel's subscriber set instead of the
   session. So the hub's fan-out and the session's and outbox's push paths
   are exactly as they were for every unthrottled subscription, even of the
   same client: no lookup and no branch per delivery (docs/fanout.md).
2. The view holds the channel's newest latest-value frame instead of
   queueing it; a newer frame supersedes the held one (counted as a
   throttled frame). Each channel has a due time: no frame of it reaches
   the outbox before it.
3. One process-wide tick (:mod:`tickwire.ticker`) calls :meth:`Throttle.release`
   on the clients that hold something: every held frame whose due time has
   come moves into the outbox as a latest-value frame (so a parked client
   still has at most one waiting per channel), and the channel's next due
   time is that tick plus the window. The newest value at the end of a
   window therefore always goes out (trailing edge), and frames of a channel
   leave at least one window apart.
4. Final frames (a closed candle, a status) are never held: one first takes
   the held frame of its channel into the outbox, where the final frame pins
   it as without a throttle, so per-channel order holds and no newest value
   is lost.
5. A state channel (a ``book``) throttled gets snapshots only: its frames
   (diffs and snapshots, through ``push_state``) are dropped (counted) and
   only noted, and at the due time the client gets the channel's current
   snapshot: from the book view the hub passed with the frame (encoded once
   per seq for everyone), or else from the ``snapshot`` callable given to
   :meth:`Throttle.release` (``Hub.snapshot_frame``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .outbox import Outbox


__all__ = ["Held", "SnapshotSource", "Throttle"]

PushFinal = Callable[[str, bytes], None]
"""The session's own ``push_final``: queue a frame that must be delivered (or close the client)."""

Snapshot = Callable[[str], bytes | None]
"""The channel's current snapshot as a WebSocket frame, or None when none can be served now."""


class SnapshotSource(Protocol):
    """What a state channel's frames come with (the hub's ``BookView``): its current snapshot."""

    def snapshot_frame(self) -> bytes | None:
        """The snapshot at the current seq as a WebSocket frame; None while there is no whole state."""


class _Slot:
    """One throttled channel of one client."""

    __slots__ = ("changed", "channel", "dropped", "due", "held", "source", "state", "window")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.window = 0  # ms
        self.due = 0  # ms: no frame of this channel reaches the outbox before it
        self.held: bytes | None = None  # the newest latest-value frame not yet released
        self.state = False  # a state (book) channel: snapshots only
        self.changed = False  # state: diffs arrived since the last snapshot
        self.dropped = 0  # frames superseded while held, not yet counted in the stats
        self.source: SnapshotSource | None = None  # state: where the current snapshot comes from


class Held:
    """The hub's subscriber for one throttled (client, channel): holds instead of queueing.

    It has the session's push methods (``hub.Subscriber``), so the hub treats
    it as any subscriber. ``push_state`` is the hook for a state channel's
    diffs (the book's fan-out calls it): a throttled client only notes them.
    """

    __slots__ = ("_slot", "_throttle")

    def __init__(self, throttle: Throttle, slot: _Slot) -> None:
        self._throttle = throttle
        self._slot = slot

    @property
    def channel(self) -> str:
        return self._slot.channel

    def push_latest(self, channel: str, frame: bytes) -> None:
        # Throttle.hold inlined for the common case: a burst superseding the held frame
        slot = self._slot
        if slot.held is not None:
            slot.held = frame
            slot.dropped += 1
        else:
            self._throttle.hold(slot, frame)

    def push_final(self, channel: str, frame: bytes) -> None:
        self._throttle.final(self._slot, frame)

    def push_state(
        self, channel: str, frame: bytes, snapshot: bool = False, view: SnapshotSource | None = None
    ) -> None:
        # a diff or a snapshot alike: the client gets the snapshot current at its due time
        self._throttle.change(self._slot, view)


class Throttle:
    """The throttled subscriptions of one client.

    Args:
        outbox: the client's outbox, where due frames are released to.
        push_final: the session's ``push_final`` (a final frame goes out at once).
        on_pending: called when the client starts holding something after
            holding nothing: the session then asks the tick for a call.
        on_superseded: called with a channel and a count of its held frames
            (or book diffs) dropped for newer ones: the throttled-frames metric.
            Counted per slot and reported when the slot releases or changes,
            so a burst costs one call, not one per frame.
    """

    __slots__ = ("_on_pending", "_on_superseded", "_outbox", "_pending", "_push_final", "_slots")

    def __init__(
        self,
        outbox: Outbox,
        *,
        push_final: PushFinal,
        on_pending: Callable[[], None],
        on_superseded: Callable[[str, int], None],
    ) -> None:
        self._outbox = outbox
        self._push_final = push_final
        self._on_pending = on_pending
        self._on_superseded = on_superseded
        self._slots: dict[str, Held] = {}  # channel -> its view, while the channel is throttled
        self._pending: dict[str, _Slot] = {}  # the slots holding a frame or a change

    # -- subscriptions (the session, on subscribe and unsubscribe) ------------------

    def view_for(self, channel: str) -> Held:
        """The view to subscribe in the hub for ``channel``: the one in force, or a new one
        that is in force once :meth:`settle` is given it."""
        return self._slots.get(channel) or Held(self, _Slot(channel))

    def window(self, channel: str) -> int:
        """The throttle of ``channel`` in ms; 0 when it is not throttled."""
        view = self._slots.get(channel)
        return view._slot.window if view is not None else 0

    def settle(self, channel: str, key: object, window_ms: int, *, state: bool, due_ms: int) -> Held | None:
        """The hub now has ``key`` for ``channel`` (a view, or the session when unthrottled).

        A view is put in force with its window, and what it held is dropped:
        the subscribe's snapshot, queued next, is newer. Returns the view that
        was in force before if it is not ``key``: the hub must drop it.

        Args:
            state: a state (book) channel: snapshots only.
            due_ms: when the next frame may go out (the snapshot is this window's frame).
        """
        previous = self._slots.pop(channel, None)
        self._pending.pop(channel, None)
        if previous is not None:
            self._count(previous._slot)
        if isinstance(key, Held):
            slot = key._slot
            slot.window, slot.state, slot.due = window_ms, state, due_ms
            slot.held, slot.changed = None, False
            self._slots[channel] = key
        return previous if previous is not key else None

    def remove(self, channel: str) -> Held | None:
        """``channel`` is no longer throttled; returns its view, which the hub must drop."""
        self._pending.pop(channel, None)
        view = self._slots.pop(channel, None)
        if view is not None:
            self._count(view._slot)
        return view

    def views(self) -> list[tuple[str, Held]]:
        return list(self._slots.items())

    def clear(self) -> list[tuple[str, Held]]:
        """Forget every throttled channel (the client left); returns the views the hub must drop."""
        views = self.views()
        for channel, _ in views:
            self.remove(channel)
        return views

    # -- frames (the views, called by the hub) ----------------------------------------

    def hold(self, slot: _Slot, frame: bytes) -> None:
        """A latest-value frame: keep the newest until the due time."""
        if slot.state:
            self.change(slot, None)
            return
        if slot.held is not None:
            slot.dropped += 1
        slot.held = frame
        self._note(slot)

    def change(self, slot: _Slot, source: SnapshotSource | None) -> None:
        """A state channel's frame: dropped; the next release sends the current snapshot."""
        if slot.changed:
            slot.dropped += 1  # the first change is what the release answers; the rest are dropped
        slot.changed = True
        if source is not None:
            slot.source = source
        self._note(slot)

    def final(self, slot: _Slot, frame: bytes) -> None:
        """A frame that is never held: the held frame goes first, then this one, now."""
        if slot.held is not None:
            self._outbox.push_latest(slot.channel, slot.held)  # pinned by the final frame next
            slot.held = None
            self._pending.pop(slot.channel, None)
            self._count(slot)
        self._push_final(slot.channel, frame)

    def _count(self, slot: _Slot) -> None:
        if slot.dropped:
            self._on_superseded(slot.channel, slot.dropped)
            slot.dropped = 0

    def _note(self, slot: _Slot) -> None:
        pending = self._pending
        if slot.channel not in pending:
            pending[slot.channel] = slot
            if len(pending) == 1:
                self._on_pending()

    # -- the tick ----------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Something is held: the client needs the tick."""
        return bool(self._pending)

    def release(self, now_ms: int, snapshot: Snapshot) -> int:
        """Queue every held frame whose due time has come; returns how many were queued.

        Args:
            now_ms: the tick's time, on the clock of the due times.
            snapshot: gives a state channel's current snapshot frame.
        """
        released = 0
        for channel, slot in list(self._pending.items()):
            if slot.due > now_ms:
                continue
            del self._pending[channel]
            self._count(slot)
            frame = slot.held
            if slot.state:
                source = slot.source
                frame = source.snapshot_frame() if source is not None else snapshot(channel)
            slot.held, slot.changed = None, False
            if frame is None:
                continue  # a book that cannot be served now (resync): its next change asks again
            self._outbox.push_latest(channel, frame)
            slot.due = now_ms + slot.window
            released += 1
        return released
