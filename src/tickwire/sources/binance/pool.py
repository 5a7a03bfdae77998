"""The connections of one Binance source: which stream rides on which connection.

Streams are placed first-fit on connections of at most ``max_streams``; a
connection left without streams is closed. A connection is replaced
make-before-break: the replacement connects with every stream in its URL
and takes them over at once; the old one is closed ``overlap`` seconds after
the replacement delivered its first frame. A connection task that dies of a
bug is logged and restarted after ``backoff_max``. Counters of connections
that are gone are kept, so totals never go down.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Callable

from ...backoff import ConnectBudget
from .connection import Connection, ConnectionConfig, ConnectionCounters, ConnectionOwner


__all__ = ["ConnectionPool"]

logger = logging.getLogger("tickwire.upstream.binance")


class ConnectionPool:
    """Every connection of one source, and the stream -> connection assignment.

    Args:
        owner: the source the connections report to.
        config: the connections' tunables.
        max_streams: streams per connection.
        overlap: seconds both connections run after the replacement delivered data.
        budget: connection attempts allowed (shared by every connection).
        rng: randomness for reconnect jitter.
        clock_ms: wall clock, ms.
    """

    def __init__(
        self,
        owner: ConnectionOwner,
        *,
        config: ConnectionConfig,
        max_streams: int,
        overlap: float,
        budget: ConnectBudget,
        rng: random.Random,
        clock_ms: Callable[[], int],
    ) -> None:
        self._owner = owner
        self.config = config
        self.max_streams = max_streams
        self.overlap = overlap
        self.budget = budget
        self._rng = rng
        self._clock_ms = clock_ms
        self.conns: dict[int, Connection] = {}
        self.assign: dict[str, Connection] = {}  # stream -> connection that should carry it
        self._cids = itertools.count(1)
        self._past = ConnectionCounters()  # counters of connections that are gone
        self.running = False
        self.rotations = 0

    # -- views --------------------------------------------------------------------

    def counters(self) -> ConnectionCounters:
        """The counters of every connection ever made, summed."""
        total = ConnectionCounters()
        total.add(self._past)
        for conn in self.conns.values():
            total.add(conn.counters)
        return total

    def open_count(self) -> int:
        return sum(1 for c in self.conns.values() if c.ws is not None)

    def active_streams(self) -> set[str]:
        """Streams the server was told about on sockets that are up."""
        active: set[str] = set()
        for conn in self.conns.values():
            if conn.ws is not None:
                active |= conn.sent
        return active

    def carried_elsewhere(self, conn: Connection, stream: str) -> bool:
        """Whether another connection that is up carries ``stream``."""
        return any(c is not conn and c.ws is not None and stream in c.wanted for c in self.conns.values())

    # -- changes -----------------------------------------------------------------------

    def start_all(self) -> None:
        self.running = True
        for conn in self.conns.values():
            self._start(conn)

    async def stop_all(self) -> None:
        self.running = False
        tasks = [c.task for c in self.conns.values() if c.task is not None]
        for conn in list(self.conns.values()):
            conn.stop()
        await asyncio.gather(*tasks, return_exceptions=True)

    def place(self, stream: str) -> Connection:
        """Put ``stream`` on a connection with room, or on a new one."""
        for conn in self.conns.values():
            if not conn.retiring and not conn.stopped and len(conn.wanted) < self.max_streams:
                conn.want(stream)
                self.assign[stream] = conn
                return conn
        return self._new({stream})

    def release(self, stream: str) -> None:
        """Nobody wants ``stream`` any more; a connection left empty is closed."""
        self.assign.pop(stream, None)
        for conn in list(self.conns.values()):
            if stream in conn.wanted:
                conn.unwant(stream)
                if not conn.wanted:
                    self._drop(conn)

    def replace(self, conn: Connection, why: str) -> None:
        """Replace ``conn`` make-before-break: the new one connects with every stream in its URL."""
        if conn.retiring or conn.stopped or not conn.wanted:
            return
        self.rotations += 1
        logger.info("conn %s: replacing it (%s)", conn.cid, why)
        conn.retiring = True
        new = self._new(set(conn.wanted))
        new.predecessor = conn

    def first_data(self, conn: Connection) -> None:
        """``conn`` delivered its first frame: its predecessor goes ``overlap`` seconds later."""
        if not conn.got_data:
            conn.got_data = True
            if conn.predecessor is not None:
                asyncio.get_running_loop().call_later(self.overlap, self._retire, conn)

    # -- plumbing ---------------------------------------------------------------------------

    def _new(self, streams: set[str]) -> Connection:
        conn = Connection(
            self._owner,
            next(self._cids),
            streams,
            config=self.config,
            budget=self.budget,
            rng=self._rng,
            clock_ms=self._clock_ms,
        )
        self.conns[conn.cid] = conn
        for stream in streams:
            self.assign[stream] = conn
        if self.running:
            self._start(conn)
        return conn

    def _start(self, conn: Connection) -> None:
        if conn.task is None and not conn.stopped:
            conn.task = asyncio.get_running_loop().create_task(conn.run(), name=f"binance-conn-{conn.cid}")
            conn.task.add_done_callback(lambda task: self._ended(conn, task))

    def _ended(self, conn: Connection, task: asyncio.Task[None]) -> None:
        if conn.retiring or conn.stopped:
            self._forget(conn)
        if task.cancelled() or task.exception() is None:
            return
        delay = self.config.backoff_max
        logger.error("conn %s failed; restarting it in %.0f s", conn.cid, delay, exc_info=task.exception())
        self._owner.lost(conn, "upstream connector error")
        conn.task = None
        if self.running and not conn.stopped:
            asyncio.get_running_loop().call_later(delay, self._start, conn)

    def _forget(self, conn: Connection) -> None:
        """Unregister ``conn``, keeping its counters in the totals."""
        if self.conns.get(conn.cid) is conn:
            del self.conns[conn.cid]
            self._past.add(conn.counters)

    def _drop(self, conn: Connection) -> None:
        self._forget(conn)
        conn.stop()

    def _retire(self, conn: Connection) -> None:
        old, conn.predecessor = conn.predecessor, None
        if old is not None and not old.stopped:
            logger.info("conn %s: replaced by conn %s", old.cid, conn.cid)
            self._drop(old)
