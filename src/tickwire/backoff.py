"""Reconnect pacing, pure: a capped, jittered exponential ``backoff()`` and a
sliding-window connect budget.

Neither reads the clock nor sleeps: the caller passes ``now`` and does the
waiting, so both are tested without time passing.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator


__all__ = ["ConnectBudget", "backoff"]


def backoff(
    *,
    initial: float = 1.0,
    factor: float = 2.0,
    max_delay: float = 60.0,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Delays in seconds before each reconnect attempt, forever.

    The first delay is drawn from ``[0, initial]`` so that many clients cut
    at the same moment do not come back at the same moment; later delays
    grow by ``factor`` up to ``max_delay``, each shortened by up to
    ``jitter`` (a fraction) at random. Start a new generator after a
    connection that worked.
    """
    rand = rng if rng is not None else random.Random()
    yield initial * rand.random()
    delay = initial
    while True:
        yield delay * (1.0 - jitter * rand.random())
        delay = min(delay * factor, max_delay)


class ConnectBudget:
    """At most ``limit`` connection attempts in any ``window`` seconds.

    Binance allows 300 per 5 minutes per IP, counting every process on the
    host; the default keeps a margin for the others.
    """

    def __init__(self, *, limit: int = 250, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._attempts: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next attempt may start (0 when it may start now)."""
        while self._attempts and self._attempts[0] <= now - self.window:
            self._attempts.popleft()
        if len(self._attempts) < self.limit:
            return 0.0
        return self._attempts[0] + self.window - now

    def record(self, now: float) -> None:
        """Count an attempt made at ``now``."""
        self._attempts.append(now)

    def used(self, now: float) -> int:
        """Attempts within the current window."""
        self.delay(now)
        return len(self._attempts)
