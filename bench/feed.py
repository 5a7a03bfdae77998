"""The fake upstream: a fixed-rate schedule of messages, each stamped with its event time.

Every server under test runs the same schedule in its own process (the Node
peer has a line-for-line port in ``peers/node/server.js``): message ``i``
goes to channel ``i % channels`` and carries the wall-clock time at which it
was due, in microseconds (in a trade's ``id``; ``timestamp`` carries it
in ms as the protocol says). The feed ticks every millisecond and emits what
is due, so the offered rate stays fixed when the server falls behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


__all__ = ["Feed", "symbol"]


def symbol(index: int) -> str:
    """The symbol of channel ``index`` (``S000USDT`` ...)."""
    return f"S{index:03d}USDT"


_MAX_TICK_S = 0.05

Emit = Callable[[int, int], None]
"""emit(channel index, event time in µs)."""


class Feed:
    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self.rate = 0.0  # messages per second, all channels together
        self.channels = 1
        self.spread = False  # one message per loop iteration (no coalescing possible)
        self.published = 0
        self._t0 = time.perf_counter()
        self._wall0 = time.time_ns() // 1000
        self._done = 0

    def set(self, *, rate: float, channels: int, spread: bool = False) -> None:
        self.rate = rate
        self.channels = max(1, channels)
        self.spread = spread
        self._t0 = time.perf_counter()
        self._wall0 = time.time_ns() // 1000
        self._done = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.001)
            if self.rate <= 0:
                continue
            due = int((time.perf_counter() - self._t0) * self.rate) - self._done
            if due > 0:
                # at most 50 ms of schedule per tick: a server that fell behind still answers the
                # harness between ticks (the rest stays due, and its event times stay the schedule's)
                await self._send(min(due, max(100, int(self.rate * _MAX_TICK_S))), scheduled=True)

    async def _send(self, n: int, *, scheduled: bool = False) -> None:
        # event time = when the message was due, so a server (or its feed) that falls behind
        # shows the lag as latency instead of hiding it in a late stamp
        emit, channels, step = self._emit, self.channels, 1e6 / self.rate if self.rate > 0 else 0.0
        for _ in range(n):
            i = self.published
            self.published += 1
            us = self._wall0 + int((self._done + 1) * step) if scheduled else time.time_ns() // 1000
            self._done += 1
            emit(i % channels, us)
            if self.spread:
                await asyncio.sleep(0)

    async def burst(self, n: int, ms: int) -> int:
        """Emit ``n`` messages spread over ``ms`` milliseconds; returns the start time (µs)."""
        start = time.time_ns() // 1000
        per_tick = max(1, n // max(1, ms))
        left = n
        while left > 0:
            k = min(per_tick, left)
            await self._send(k)
            left -= k
            if left:
                await asyncio.sleep(0.001)
        return start
