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
  one, and longer while they keep coming (a burst in progress) until they
  pause for ``quiet``, up to ``max_hold`` after the flush. So a burst costs a
  few writes per client instead of one per loop iteration (docs/fanout.md,
  "Bursts"). The hub also calls :meth:`Flusher.brace` when a value is
  superseded before its fan-out to many clients: a burst has begun, and it
  is held the same way from its start. Final frames are never held.
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

    @property
    def socket(self) -> _Socket | None:
        """The byte stream :meth:`take`'s bytes are written to."""

    def take(self) -> bytes:
        """Everything pending as one ``bytes``; ``b""`` when nothing is to be written."""

    def park(self) -> None:
        """The socket's buffer is over the high-water mark: stop writing until it drains."""


class Flusher:
    """Schedules one flush per loop iteration (or per write delay) over the marked sessions.

    Args:
        write_delay: seconds frames may be held before they are written (0: the next iteration).
        on_flush: called once per flush with (writes, bytes), so stats cost one call per flush.
        slow_flush: seconds past which a flush counts as long, and latest values are held
            (:meth:`hold`); about 250 writes on a small VM.
        max_hold: the longest :meth:`hold` lasts after a long flush, in seconds.
        quiet: the pause, in seconds, that ends a burst of latest values: while they
            keep coming closer together than this, a hold lasts (up to ``max_hold``).
    """

    __slots__ = (
        "_calm_at", "_cap_at", "_delay", "_handle", "_marked", "_max_hold", "_on_flush", "_quiet", "_slow",
        "ticker",
    )  # fmt: skip

    def __init__(
        self,
        *,
        write_delay: float = 0.0,
        on_flush: _OnFlush | None = None,
        slow_flush: float = 0.002,
        max_hold: float = 0.05,
        quiet: float = 0.003,
    ) -> None:
        self._delay = write_delay
        self._marked: list[Flushable] = []
        self._handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._on_flush = on_flush
        self._slow = slow_flush
        self._max_hold = max_hold
        self._calm_at = 0.0  # perf_counter time until which latest values wait (0: none)
        self._cap_at = 0.0  # and past which they never wait, however busy the burst
        self._quiet = quiet
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

        Two passes: take every outbox, then write them all. The second is a tight
        loop of the sockets' own ``write``, as in the floor (with our bookkeeping
        between the writes each ``send`` measured ~30 % slower), plus one C call
        on the socket just written: its buffer is empty unless the kernel's was
        full, and only those few sockets are then compared with their session's
        high-water mark (no session is touched again after its write).
        """
        self._handle = None
        start = time.perf_counter()
        marked, self._marked = self._marked, []
        # three parallel lists, no tuple per session: nothing the collector tracks is made per write
        sessions: list[Flushable] = []
        sockets: list[_Socket] = []
        datas: list[bytes] = []
        for session in marked:
            data = session.take()
            if data:
                sessions.append(session)
                sockets.append(session.socket)  # type: ignore[arg-type]  # take() gave bytes: it has one
                datas.append(data)
        nbytes = 0
        kept: list[int] = []  # indices of the sockets left holding bytes the kernel did not take
        i = 0
        for socket, data in zip(sockets, datas, strict=True):  # zip reuses its tuple: no allocation
            socket.write(data)
            nbytes += len(data)
            if socket.get_write_buffer_size():  # C, on the socket just written; 0 when all was sent
                kept.append(i)
            i += 1
        for i in kept:  # only these are compared with their session's mark: no other session is touched
            session = sessions[i]
            if sockets[i].get_write_buffer_size() > session.high_water:
                session.park()
        took = time.perf_counter() - start
        if took >= self._slow:  # the loop was busy writing: give it as long to read and conflate
            end = start + took
            self._calm_at = end + min(took, self._max_hold)
            self._cap_at = end + self._max_hold
        if self._on_flush is not None and datas:
            self._on_flush(len(datas), nbytes)

    def hold(self, latest_at: float = 0.0) -> float:
        """Seconds the hub should hold latest values before fanning out the newest (0: none).

        After a long flush, as long as that flush took (at most ``max_hold``),
        counted from its end. Past that, while latest values are still coming
        (the newest, at ``latest_at`` on the ``perf_counter`` clock, is less than
        ``quiet`` old), until they pause, but never past ``max_hold`` after the
        flush: a burst is then written once, after it ended. Otherwise 0.
        Asked when the hub schedules its fan-out and again when it runs, never
        per delivery.
        """
        if not self._calm_at:
            return 0.0
        now = time.perf_counter()
        left = self._calm_at - now
        if left > 0:
            return left
        pause = latest_at + self._quiet - now  # > 0: a value came less than `quiet` ago
        if pause > 0 and now < self._cap_at:
            return min(pause, self._cap_at - now)
        self._calm_at = 0.0
        return 0.0

    def brace(self) -> None:
        """A burst began: the hub saw a latest value superseded before its fan-out to a
        big audience. Hold latest values until the burst pauses (``quiet``), at most
        ``max_hold``, as after a long flush, so its first value is not a flush of its own."""
        now = time.perf_counter()
        if now >= self._cap_at:  # no pace in force, or only one that is over: start one
            self._calm_at = now
            self._cap_at = now + self._max_hold

    def cancel(self) -> None:
        """Forget the pending flush and the throttle tick (the node is stopping)."""
        self.ticker.cancel()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._marked.clear()


class _OnFlush(Protocol):
    def __call__(self, writes: int, nbytes: int) -> None: ...
