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
   snapshot, which is the state after them, last (docs/book.md).

The common case, at moderate load, is one frame between two writes: the first
frame into an empty outbox waits in a slot of the outbox itself (``_one``),
so queueing and taking it touch no list and no dict (at one frame per write,
the fan-out's cost is memory traffic: every object a delivery touches is
cold again after a thousand ``send`` calls). A second frame moves it into the
lists ("spill") and everything below applies.

The frames sit in a list with a parallel list of their channels; a dict maps
each channel with a replaceable latest frame to its index. A push appends two
references and allocates nothing of its own: no per-frame key, tuple or
counter value (a tuple key per final frame cost ~11 % of the fan-out's
profile). Only :meth:`purge`, which is rare, reads the channel list. A state
frame records its channel's view in that list instead of the name, so the
replacement (rare: once per 33 diffs at most) finds them by a scan, and a
state push costs two small-int dict updates and no object of its own.
"""

from __future__ import annotations

from typing import Protocol


__all__ = ["MAX_STATE_DIFFS", "Outbox", "StateView"]

_CONTROL = ""  # the channel recorded for control frames: no channel name is empty

MAX_STATE_DIFFS = 32
"""Pending diffs of one state channel past which they become one snapshot."""


_NO_FRAMES: list[bytes] = []  # the shared empty containers of an outbox that never needed its own
_NO_CHANNELS: list[str | StateView] = []
_NO_INDEX: dict[str, int] = {}


class StateView(Protocol):
    """What the outbox needs of a state channel's view (:class:`tickwire.bookview.BookView`)."""

    @property
    def channel(self) -> str:
        """The state channel's name."""

    @property
    def snapshot_size(self) -> int:
        """About the bytes of the current snapshot frame (no encoding needed to read it)."""

    def snapshot_frame(self) -> bytes | None:
        """The current snapshot frame, encoded once per seq; None while the view is not whole."""


class Outbox:
    """The pending frames of one client.

    Args:
        max_queue: how many frames that must be delivered may wait.
    """

    # the hot path's slots first: they share the object's first cache line
    __slots__ = (  # noqa: RUF023
        "_n", "_one", "_one_channel", "_one_latest", "_room", "_max_queue",
        "_channels", "_diffs", "_frames", "_latest", "_nbytes",
    )  # fmt: skip

    def __init__(self, max_queue: int = 1024) -> None:
        self._max_queue = max_queue
        # shared empty containers until the first spill or book frame (:meth:`_own`)
        self._frames: list[bytes] = _NO_FRAMES
        # the channel of each frame, for purge; for a state frame its channel's view
        self._channels: list[str | StateView] = _NO_CHANNELS
        self._latest: dict[str, int] = _NO_INDEX  # channel -> index of its replaceable latest frame
        self._room = max_queue  # how many more frames that must be delivered may wait
        # per state channel with pending frames: diffs since its pending snapshot, and their bytes
        # (two dicts of ints rather than an object per channel: nothing allocated per push)
        self._diffs: dict[str, int] = _NO_INDEX
        self._nbytes: dict[str, int] = _NO_INDEX
        self._n = 0  # frames pending, _one included: emptiness without touching the lists
        self._one: bytes | None = None  # the only pending frame, kept out of the lists (see above)
        self._one_channel = ""
        self._one_latest = False  # _one is a replaceable latest frame

    def _own(self) -> None:
        """Give this outbox lists and dicts of its own before anything is written to them.

        They start as shared empty ones: most connections never hold two frames
        at once, and five empty containers are ~380 bytes per connection. Every
        write to them is reached through here (:meth:`_spill`, :meth:`push_state`).
        """
        if self._frames is _NO_FRAMES:
            self._frames, self._channels, self._latest, self._diffs, self._nbytes = [], [], {}, {}, {}

    def _spill(self) -> None:
        """Move ``_one`` into the lists, where the general rules apply to it."""
        one = self._one
        if one is not None:
            self._own()
            self._one = None
            if self._one_latest:
                self._latest[self._one_channel] = len(self._frames)
            self._frames.append(one)
            self._channels.append(self._one_channel)

    def push_latest(self, channel: str, frame: bytes) -> bool:
        """Queue a latest-value frame; True when it replaced an unwritten one (conflation)."""
        if not self._n:  # empty: the frame waits in the slot (the hot path)
            self._one, self._one_channel, self._one_latest, self._n = frame, channel, True, 1
            return False
        if self._one is not None:
            if self._one_latest and self._one_channel == channel:
                self._one = frame
                return True
            self._spill()
        index = self._latest.get(channel)
        if index is not None:
            self._frames[index] = frame
            return True
        self._latest[channel] = len(self._frames)
        self._frames.append(frame)
        self._channels.append(channel)
        self._n += 1
        return False

    def push_final(self, channel: str, frame: bytes) -> bool:
        """Queue a frame that must be delivered; False (and nothing queued) on overflow."""
        if not self._n:  # empty: the frame waits in the slot (the hot path)
            if self._room < 1:
                return False
            self._one, self._one_channel, self._one_latest, self._n = frame, channel, False, 1
            self._room -= 1
            return True
        if self._one is not None:
            self._spill()
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
        self._n += 1
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
        self._own()
        self._spill()
        replaced = self._queue_state(channel, frame, snapshot, view)
        self._n = len(self._frames)
        return replaced

    def _queue_state(self, channel: str, frame: bytes, snapshot: bool, view: StateView) -> bool:
        if snapshot:
            if channel in self._diffs:
                self._remove_state(channel)
        else:
            diffs = self._diffs.get(channel, 0) + 1
            nbytes = self._nbytes.get(channel, 0) + len(frame)
            current = None
            if diffs > MAX_STATE_DIFFS or nbytes > view.snapshot_size:
                current = view.snapshot_frame()  # None: a broken view; the client sees the gap itself
            if current is None:
                self._diffs[channel] = diffs
                self._nbytes[channel] = nbytes
                self._frames.append(frame)
                self._channels.append(view)
                return False
            self._remove_state(channel)
            frame = current
        self._diffs[channel] = 0
        self._nbytes[channel] = 0
        self._frames.append(frame)  # after _remove_state: a new list
        self._channels.append(view)
        return not snapshot

    def _remove_state(self, channel: str) -> None:
        """Remove the pending state frames (diffs and snapshots) of ``channel`` (rare path)."""
        self._remove(
            {
                i
                for i, name in enumerate(self._channels)
                if not isinstance(name, str) and name.channel == channel
            }
        )

    def push_control(self, frame: bytes) -> bool:
        """Queue an ack, error or pong, in order with data; False on overflow."""
        return self.push_final(_CONTROL, frame)

    def take(self) -> bytes:
        """Everything pending, in order, as one ``bytes``; the outbox is then empty."""
        one = self._one
        if one is not None:  # the only frame (the hot path): no list or dict touched
            self._one = None
            self._n = 0
            self._room = self._max_queue
            return one
        if not self._n:
            return b""
        frames = self._frames
        data = b"".join(frames)
        frames.clear()
        self._channels.clear()
        self._latest.clear()
        if self._diffs:
            self._diffs.clear()
            self._nbytes.clear()
        self._n = 0
        self._room = self._max_queue
        return data

    def clear(self) -> int:
        """Drop everything pending; returns how many frames were dropped."""
        dropped = self._n
        self._one = None
        self._n = 0
        self._frames.clear()
        self._channels.clear()
        self._latest.clear()
        self._diffs.clear()
        self._nbytes.clear()
        self._room = self._max_queue
        return dropped

    def purge(self, channel: str) -> int:
        """Drop every pending frame of ``channel``; returns how many were dropped."""
        self._spill()
        names = self._channels
        drop = {i for i, name in enumerate(names) if name == channel}
        if channel in self._diffs:
            drop.update(
                i for i, name in enumerate(names) if not isinstance(name, str) and name.channel == channel
            )
            del self._diffs[channel], self._nbytes[channel]
        if not drop:
            return 0
        # the dropped frames that counted toward max_queue: neither latest nor state frames
        latest = set(self._latest.values())
        self._room += sum(1 for i in drop if isinstance(names[i], str) and i not in latest)
        self._remove(drop)
        self._n = len(self._frames)
        return len(drop)

    def _remove(self, drop: set[int]) -> None:
        """Remove the frames at ``drop``; the latest-value indices are renumbered (rare path)."""
        frames: list[bytes] = []
        channels: list[str | StateView] = []
        moved: dict[int, int] = {}  # old index -> new index
        for index, (name, frame) in enumerate(zip(self._channels, self._frames, strict=True)):
            if index in drop:
                continue
            moved[index] = len(frames)
            frames.append(frame)
            channels.append(name)
        self._frames, self._channels = frames, channels
        self._latest = {name: moved[i] for name, i in self._latest.items() if i in moved}

    @property
    def max_queue(self) -> int:
        """How many frames that must be delivered may wait."""
        return self._max_queue

    @property
    def queued(self) -> int:
        """Frames pending."""
        return self._n

    @property
    def finals(self) -> int:
        """Frames pending that must be delivered (final, pinned and control frames)."""
        return self._max_queue - self._room

    def __bool__(self) -> bool:
        return self._n > 0
