"""The node's one writer: every session's pending frames, written once per loop iteration.

Theory of operation (docs/fanout.md, "The write path"):

* A session that queues a frame into an empty, idle outbox marks itself
  here (one list append and one flag per session per iteration, not per
  frame). The first mark of an iteration schedules one :meth:`Flusher.flush`
  with ``call_soon``, so everything the hub pushes during this iteration is
  written in the next one: one ``write`` per session carrying all its frames.
  No task, future or await per delivery.
* With a write delay (``--write-delay-ms``) the flush runs that long after
  the first mark instead: frames are held at most that long and written
  together, fewer system calls for a little latency (Centrifugo's
  ``client.write_delay``).
* After the writes, a session whose socket buffer is over its high-water
  mark is parked until the socket drains; a parked session is skipped here
  and marks itself again when it resumes.
* The flusher carries the node's one throttle :class:`~tickwire.ticker.Ticker`
  (``flusher.ticker``), so every session of the node shares it.
* Pace (:meth:`Flusher.hold`): a flush that took long (``slow_flush``, many
  clients) means the loop spends its time in ``send``. The hub then holds
  latest values for as long as that flush took before it fans out the newest
  one, so a burst costs a few writes per client instead of one per loop
  iteration (docs/fanout.md, "Bursts"). Final frames are never held.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from .ticker import Ticker


__all__ = ["Flushable", "Flusher"]


class _Socket(Protocol):
    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...


class Flushable(Protocol):
    high_water: int
    """Bytes buffered in the socket past which the session parks."""

    def take(self) -> tuple[_Socket, bytes] | None:
        """The socket and everything pending as one ``bytes``; None when nothing is to be written."""

    def park(self) -> None:
        """The socket's buffer is over the high-water mark: stop writing until it drains."""


class Flusher:
    """Schedules one flush per loop iteration (or per write delay) over the marked sessions.

    Args:
        write_delay: seconds frames may be held before they are written (0: the next iteration).
        on_flush: called once per flush with (writes, bytes), so stats cost one call per flush.
        slow_flush: seconds past which a flush counts as long, and latest values are held
            (:meth:`hold`); about 250 writes on a small VM.
        max_hold: the longest :meth:`hold` ever asks for, in seconds.
    """

    __slots__ = ("_calm_at", "_delay", "_handle", "_marked", "_max_hold", "_on_flush", "_slow", "ticker")

    def __init__(
        self,
        *,
        write_delay: float = 0.0,
        on_flush: _OnFlush | None = None,
        slow_flush: float = 0.002,
        max_hold: float = 0.05,
    ) -> None:
        self._delay = write_delay
        self._marked: list[Flushable] = []
        self._handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._on_flush = on_flush
        self._slow = slow_flush
        self._max_hold = max_hold
        self._calm_at = 0.0  # perf_counter time until which latest values wait (0: none)
        self.ticker = Ticker()  # releases throttled frames (docs/fanout.md)

    def mark(self, session: Flushable) -> None:
        """``session`` has frames to write; the caller marks each session once until it is flushed."""
        self._marked.append(session)
        if self._handle is None:
            loop = asyncio.get_running_loop()
            if self._delay > 0:
                self._handle = loop.call_later(self._delay, self.flush)
            else:
                self._handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every marked session now.

        Three passes: take every outbox, write them all, then check each socket's
        buffer. The middle pass is a tight loop of the sockets' own ``write``, as in
        the floor; with our bookkeeping between the writes each ``send`` measured
        ~30 % slower.
        """
        self._handle = None
        start = time.perf_counter()
        marked, self._marked = self._marked, []
        sessions: list[Flushable] = []
        pending: list[tuple[_Socket, bytes]] = []
        for session in marked:
            taken = session.take()
            if taken is not None:
                sessions.append(session)
                pending.append(taken)
        nbytes = 0
        for socket, data in pending:
            socket.write(data)
            nbytes += len(data)
        for session, (socket, _) in zip(sessions, pending, strict=True):
            if socket.get_write_buffer_size() > session.high_water:
                session.park()
        took = time.perf_counter() - start
        if took >= self._slow:  # the loop was busy writing: give it as long to read and conflate
            self._calm_at = start + took + min(took, self._max_hold)
        if self._on_flush is not None and pending:
            self._on_flush(len(pending), nbytes)

    def hold(self) -> float:
        """Seconds the hub should hold latest values before fanning out the newest (0: none).

        After a long flush, as long as that flush took (at most ``max_hold``),
        counted from its end; otherwise 0. Called once per loop iteration
        that has a latest value to fan out, never per delivery.
        """
        if not self._calm_at:
            return 0.0
        left = self._calm_at - time.perf_counter()
        if left <= 0:
            self._calm_at = 0.0
            return 0.0
        return left

    def cancel(self) -> None:
        """Forget the pending flush and the throttle tick (the node is stopping)."""
        self.ticker.cancel()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._marked.clear()


class _OnFlush(Protocol):
    def __call__(self, writes: int, nbytes: int) -> None: ...
