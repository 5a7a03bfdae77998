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

The frames sit in a list with a parallel list of their channels; a dict maps
each channel with a replaceable latest frame to its index. A push appends two
references and allocates nothing of its own: no per-frame key, tuple or
counter value (a tuple key per final frame cost ~11 % of the fan-out's
profile). Only :meth:`purge`, which is rare, reads the channel list.
"""

from __future__ import annotations


__all__ = ["Outbox"]

_CONTROL = ""  # the channel recorded for control frames: no channel name is empty


class Outbox:
    """The pending frames of one client.

    Args:
        max_queue: how many frames that must be delivered may wait.
    """

    __slots__ = ("_channels", "_frames", "_latest", "_max_queue", "_room")

    def __init__(self, max_queue: int = 1024) -> None:
        self._max_queue = max_queue
        self._frames: list[bytes] = []
        self._channels: list[str] = []  # the channel of each frame, for purge
        self._latest: dict[str, int] = {}  # channel -> index of its replaceable latest frame
        self._room = max_queue  # how many more frames that must be delivered may wait

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
        self._room = self._max_queue
        return data

    def clear(self) -> int:
        """Drop everything pending; returns how many frames were dropped."""
        dropped = len(self._frames)
        self._frames.clear()
        self._channels.clear()
        self._latest.clear()
        self._room = self._max_queue
        return dropped

    def purge(self, channel: str) -> int:
        """Drop every pending frame of ``channel``; returns how many were dropped."""
        if channel not in self._channels:
            return 0
        latest_at = {index: name for name, index in self._latest.items()}
        frames: list[bytes] = []
        channels: list[str] = []
        latest: dict[str, int] = {}
        for index, (name, frame) in enumerate(zip(self._channels, self._frames, strict=True)):
            if name == channel:
                continue
            if index in latest_at:
                latest[name] = len(frames)
            frames.append(frame)
            channels.append(name)
        dropped = len(self._frames) - len(frames)
        self._frames, self._channels, self._latest = frames, channels, latest
        self._room = self._max_queue - (len(frames) - len(latest))
        return dropped

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
