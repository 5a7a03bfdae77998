"""The node's one throttle tick: releases due throttled frames every 50 ms.

Theory of operation (docs/fanout.md, "Throttle: one tick"):

* A session that starts holding a throttled frame after holding none adds
  itself here (:meth:`Ticker.add`). While any session is added, one timer
  runs, on a grid of ``period_ms`` of the event loop's clock; with none, no
  timer runs at all. There is never a timer per subscription or per client.
* Each tick calls every added session's ``tick(now_ms)`` with the grid time
  of the tick; a session queues its due frames, marks itself in the flusher
  (they are written in the next loop iteration), and answers whether it
  still holds anything. A session that holds nothing is dropped until it
  adds itself again.
* Grid times only move forward: a tick that runs late (a busy loop) takes
  the grid point it runs at and skips those it missed rather than running
  once per missed point, so a throttled channel's frames leave at least its
  window apart on this clock, give or take the lateness of a single tick.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from .protocol import THROTTLE_STEP_MS


__all__ = ["TICK_MS", "Tickable", "Ticker"]

TICK_MS = THROTTLE_STEP_MS
"""The tick's period (ms): throttles are multiples of it, so windows fall on its grid."""


class Tickable(Protocol):
    def tick(self, now_ms: int) -> bool:
        """Release what is due at ``now_ms``; True while something is still held."""


class Ticker:
    """One timer for every throttled client of a node.

    Args:
        period_ms: the tick's period.
    """

    __slots__ = ("_clients", "_handle", "_last", "_period")

    def __init__(self, *, period_ms: int = TICK_MS) -> None:
        self._period = period_ms
        self._clients: dict[Tickable, None] = {}  # ordered set
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0  # grid time of the last tick, ms

    def now_ms(self) -> int:
        """The tick's clock now (the event loop's, in ms): the clock of due times."""
        return int(asyncio.get_running_loop().time() * 1000)

    def add(self, client: Tickable) -> None:
        """Call ``client.tick`` on every tick until it answers False."""
        self._clients[client] = None
        if self._handle is None:
            self._schedule()

    def discard(self, client: Tickable) -> None:
        self._clients.pop(client, None)

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        period = self._period
        grid = (int(loop.time() * 1000) // period + 1) * period
        when = max(grid, self._last + period)
        self._handle = loop.call_at(when / 1000, self._tick, when)

    def _tick(self, when_ms: int) -> None:
        self._handle = None
        # a late tick (a busy loop) takes the grid point it runs at, not the one it was due at
        now_ms = max(when_ms, int(asyncio.get_running_loop().time() * 1000) // self._period * self._period)
        self._last = now_ms
        clients = self._clients
        for client in list(clients):
            if not client.tick(now_ms):
                clients.pop(client, None)
        if clients:
            self._schedule()

    @property
    def clients(self) -> int:
        """Clients holding a throttled frame now."""
        return len(self._clients)

    def cancel(self) -> None:
        """Stop ticking (the node is stopping)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._clients.clear()
