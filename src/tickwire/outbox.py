"""One client's outbox: the frames waiting for its socket, in order, bounded.

Pure: no asyncio, no clock, no I/O. A session owns one; the hub fills it
through the session, and the session's writer empties it with :meth:`take`
(docs/backpressure.md, docs/fanout.md).

Rules:

1. Frames leave in the order they were queued; :meth:`take` joins them all
   into one ``bytes`` for one ``write``.
2. A latest-value frame replaces its channel's pending latest frame where it
   stands (conflation): a slow client gets fewer, fresher frames, at most one
   waiting per latest-value channel.
3. Final frames (trades, closed candles, status, private events) and control
   frames (acks, errors, pongs) are never replaced. A final frame pins its
   channel's pending latest frame where it stands: that frame must now be
   delivered too, and the next latest frame of the channel queues after the
   final one. So per-channel order, and so ``seq`` order, always holds.
4. At most ``max_queue`` frames that must be delivered (final, pinned and
   control frames) wait. A push past that bound queues nothing and returns
   False; the session then closes the client with 4008.
5. :meth:`purge` drops every pending frame of one channel (the private
   channels of a user who is no longer the session's identity).
6. State frames (book channels, :meth:`push_state`) never count toward
   ``max_queue`` and never overflow. A snapshot replaces its channel's
   pending book frames; when a channel has more than :data:`MAX_STATE_DIFFS`
   pending diffs, or more bytes of them than its snapshot, they are replaced
   by the current snapshot (one frame, encoded once per seq by the view and
   shared). The snapshot takes the place of the newest diff, at the end:
   status frames of the channel queued between the diffs keep their place
   before it, so the client reads them in the order they happened and the
   snapshot, which is the state after them, last (docs/book-delivery.md).

The frames sit in a list with a parallel list of their channels; a dict maps
each channel with a replaceable latest frame to its index. A push appends two
references and allocates nothing of its own: no per-frame key, tuple or
counter value (a tuple key per final frame cost ~11 % of the fan-out's
profile). Only :meth:`purge`, which is rare, reads the channel list.
"""

from __future__ import annotations

from typing import Protocol


__all__ = ["MAX_STATE_DIFFS", "Outbox", "StateView"]

_CONTROL = ""  # the channel recorded for control frames: no channel name is empty

MAX_STATE_DIFFS = 32
"""Pending diffs of one state channel past which they become one snapshot."""


class StateView(Protocol):
    """What the outbox needs of a state channel's view (:class:`tickwire.bookview.BookView`)."""

    @property
    def snapshot_size(self) -> int:
        """About the bytes of the current snapshot frame (no encoding needed to read it)."""

    def snapshot_frame(self) -> bytes | None:
        """The current snapshot frame, encoded once per seq; None while the view is not whole."""


class _State:
    """One state channel's pending frames in an outbox: where they are, and their weight."""

    __slots__ = ("at", "diffs", "nbytes")

    def __init__(self) -> None:
        self.at: list[int] = []  # indices of its pending diffs and snapshots, in order
        self.diffs = 0  # pending diffs since the last pending snapshot
        self.nbytes = 0  # bytes of those diffs


class Outbox:
    """The pending frames of one client.

    Args:
        max_queue: how many frames that must be delivered may wait.
    """

    __slots__ = ("_channels", "_frames", "_latest", "_max_queue", "_room", "_states")

    def __init__(self, max_queue: int = 1024) -> None:
        self._max_queue = max_queue
        self._frames: list[bytes] = []
        self._channels: list[str] = []  # the channel of each frame, for purge
        self._latest: dict[str, int] = {}  # channel -> index of its replaceable latest frame
        self._room = max_queue  # how many more frames that must be delivered may wait
        self._states: dict[str, _State] = {}  # state channels with pending frames

    def push_latest(self, channel: str, frame: bytes) -> bool:
        """Queue a latest-value frame; True when it replaced an unwritten one (conflation)."""
        index = self._latest.get(channel)
        if index is not None:
            self._frames[index] = frame
            return True
        self._latest[channel] = len(self._frames)
        self._frames.append(frame)
        self._channels.append(channel)
        return False

    def push_final(self, channel: str, frame: bytes) -> bool:
        """Queue a frame that must be delivered; False (and nothing queued) on overflow."""
        latest = self._latest
        if latest and channel in latest:
            if self._room < 2:
                return False
            del latest[channel]  # the pending latest frame stays where it is, now final
            self._room -= 1
        elif self._room < 1:
            return False
        self._room -= 1
        self._frames.append(frame)
        self._channels.append(channel)
        return True

    def push_state(self, channel: str, frame: bytes, snapshot: bool, view: StateView) -> bool:
        """Queue a book frame; never refused, never counted toward ``max_queue``.

        Args:
            channel: the state channel.
            frame: a diff, or a snapshot when ``snapshot``.
            snapshot: ``frame`` replaces the channel's pending book frames.
            view: the channel's view, asked for the current snapshot when the
                pending diffs grow past the rule (its seq is ``frame``'s).

        Returns:
            True when pending diffs were replaced by the view's snapshot.
        """
        state = self._states.get(channel)
        if state is None:
            state = self._states[channel] = _State()
        if not snapshot:
            state.diffs += 1
            state.nbytes += len(frame)
            if state.diffs <= MAX_STATE_DIFFS and state.nbytes <= view.snapshot_size:
                self._append_state(state, channel, frame)
                return False
            current = view.snapshot_frame()
            if current is None:  # the view is broken: the client will see the gap itself
                self._append_state(state, channel, frame)
                return False
            frame = current
        if state.at:
            self._remove(set(state.at))
        state.at.clear()
        state.diffs = state.nbytes = 0
        self._append_state(state, channel, frame)
        return not snapshot

    def _append_state(self, state: _State, channel: str, frame: bytes) -> None:
        state.at.append(len(self._frames))
        self._frames.append(frame)
        self._channels.append(channel)

    def push_control(self, frame: bytes) -> bool:
        """Queue an ack, error or pong, in order with data; False on overflow."""
        return self.push_final(_CONTROL, frame)

    def take(self) -> bytes:
        """Everything pending, in order, as one ``bytes``; the outbox is then empty."""
        frames = self._frames
        data = b"".join(frames)
        frames.clear()
        self._channels.clear()
        self._latest.clear()
        if self._states:
            self._states.clear()
        self._room = self._max_queue
        return data

    def clear(self) -> int:
        """Drop everything pending; returns how many frames were dropped."""
        dropped = len(self._frames)
        self._frames.clear()
        self._channels.clear()
        self._latest.clear()
        self._states.clear()
        self._room = self._max_queue
        return dropped

    def purge(self, channel: str) -> int:
        """Drop every pending frame of ``channel``; returns how many were dropped."""
        if channel not in self._channels:
            return 0
        drop = {i for i, name in enumerate(self._channels) if name == channel}
        # the dropped frames that counted toward max_queue: neither latest nor state frames
        uncounted = set(self._latest.values())
        for state in self._states.values():
            uncounted.update(state.at)
        self._room += len(drop - uncounted)
        self._states.pop(channel, None)
        self._remove(drop)
        return len(drop)

    def _remove(self, drop: set[int]) -> None:
        """Remove the frames at ``drop``; the indices of the others are renumbered (rare path)."""
        frames: list[bytes] = []
        channels: list[str] = []
        moved: dict[int, int] = {}  # old index -> new index
        for index, (name, frame) in enumerate(zip(self._channels, self._frames, strict=True)):
            if index in drop:
                continue
            moved[index] = len(frames)
            frames.append(frame)
            channels.append(name)
        self._frames, self._channels = frames, channels
        self._latest = {name: moved[i] for name, i in self._latest.items() if i in moved}
        for state in self._states.values():
            state.at = [moved[i] for i in state.at if i in moved]

    @property
    def max_queue(self) -> int:
        """How many frames that must be delivered may wait."""
        return self._max_queue

    @property
    def queued(self) -> int:
        """Frames pending."""
        return len(self._frames)

    @property
    def finals(self) -> int:
        """Frames pending that must be delivered (final, pinned and control frames)."""
        return self._max_queue - self._room

    def __bool__(self) -> bool:
        return bool(self._frames)
