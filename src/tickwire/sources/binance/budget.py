"""One REST request-weight budget for every REST call of a Binance source.

The venue allows ``REQUEST_WEIGHT`` per minute per IP (6,000, listed in
exchangeInfo's ``rateLimits``), reports the weight used in the current
minute on every answer (``X-MBX-USED-WEIGHT-1M``), and answers 429 (418 for
repeat offenders, then bans lasting 2 minutes to 3 days) with
``Retry-After`` seconds (rest-api.md of https://github.com/binance/binance-spot-api-docs).

Two parts:

* :class:`WeightAccount`, pure (the caller passes the time, as in
  ``limits.py``): the weight spent in the current one-minute window, kept
  under ``share`` of the limit (other processes share the IP), corrected by
  every header, and the ``Retry-After`` block, which holds back *every*
  caller.
* :class:`RestBudget`, the asyncio shell: callers take a slot with
  ``async with budget.slot(weight, priority):``; at most ``max_in_flight``
  requests run at once, and waiters are served strictly by priority
  (:class:`Priority`: a resync of a book with subscribers, then an upstream
  backfill, then a first sync, then a refresh, then everything else), first come first served
  within one. A caller that cannot wait (an HTTP request) passes
  ``max_wait`` and gets :class:`BudgetExhausted` with the seconds to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable


__all__ = ["BudgetExhausted", "Priority", "RestBudget", "Slot", "WeightAccount"]


class Priority(enum.IntEnum):
    """Who goes first when weight or slots are short (lower first)."""

    RESYNC = 0  # a book whose subscribers were told it is being repaired
    # an upstream backfill: its stream is held stale, its live data buffered, and past its
    # deadline the gap is lost for good (a late first sync only comes late)
    BACKFILL = 1
    FIRST_SYNC = 2  # a symbol's first book snapshot
    REFRESH = 3  # a book snapshot refresh (coverage guard, deeper depth)
    OTHER = 4  # exchangeInfo, REST values of channels that open, klines history


class BudgetExhausted(Exception):
    """The budget cannot serve a request within its ``max_wait``."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"REST weight budget in use; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


class WeightAccount:
    """Weight spent per one-minute window, pure: every method takes ``now`` (seconds).

    Args:
        per_minute: the venue's REQUEST_WEIGHT per minute.
        share: the part of it this process allows itself.
        window: seconds of one window.
    """

    def __init__(self, *, per_minute: int = 6000, share: float = 0.8, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.share = share
        self.window = window
        self.used = 0  # weight spent (or in flight) in the current window, our best estimate
        self.header = 0  # the last X-MBX-USED-WEIGHT-1M seen
        self.in_flight = 0  # weight of requests sent and not answered
        self.window_start = -math.inf
        self.blocked_until = -math.inf

    @property
    def limit(self) -> int:
        return int(self.per_minute * self.share)

    def _roll(self, now: float) -> None:
        if now - self.window_start >= self.window:
            self.window_start = now
            self.used = self.in_flight

    def wait(self, weight: int, now: float) -> float:
        """Seconds until ``weight`` may be spent (0 or less: now)."""
        self._roll(now)
        wait = self.blocked_until - now
        if self.used + weight > self.limit and self.used > 0:
            wait = max(wait, self.window_start + self.window - now)
        return wait

    def spend(self, weight: int, now: float) -> None:
        self._roll(now)
        self.used += weight
        self.in_flight += weight

    def settle(self, weight: int, header: int | None, now: float) -> None:
        """A request of ``weight`` was answered; ``header`` is its X-MBX-USED-WEIGHT-1M, if any.

        The header counts every process on the IP, so it replaces our estimate;
        requests still in flight may not be in it yet, so their weight is added.
        """
        self._roll(now)
        self.in_flight -= weight
        if header is not None:
            self.header = header
            self.used = header + self.in_flight

    def refuse(self, retry_after: float, now: float) -> None:
        """A 429/418: nothing goes out before ``now + retry_after``."""
        self.blocked_until = max(self.blocked_until, now + retry_after)

    def blocked_for(self, now: float) -> float:
        return max(0.0, self.blocked_until - now)


class Slot:
    """One request's hold on the budget: report its answer with :meth:`used` or :meth:`refused`."""

    __slots__ = ("_budget", "_settled", "weight")

    def __init__(self, budget: RestBudget, weight: int) -> None:
        self._budget = budget
        self.weight = weight
        self._settled = False

    def used(self, header: int | None) -> None:
        """The answer came, with this X-MBX-USED-WEIGHT-1M (None when absent)."""
        if not self._settled:
            self._settled = True
            self._budget.account.settle(self.weight, header, self._budget.clock())

    def refused(self, retry_after: float) -> None:
        """A 429/418 with ``Retry-After``: every caller waits it out."""
        self.used(None)
        self._budget.account.refuse(retry_after, self._budget.clock())


class _Waiter:
    __slots__ = ("deadline", "future", "order", "priority", "weight")

    def __init__(
        self, priority: int, order: int, weight: int, deadline: float, future: asyncio.Future[None]
    ) -> None:
        self.priority = priority
        self.order = order
        self.weight = weight
        self.deadline = deadline
        self.future = future

    def __lt__(self, other: _Waiter) -> bool:
        return (self.priority, self.order) < (other.priority, other.order)


class RestBudget:
    """The asyncio side: slots by priority, at most ``max_in_flight`` at once.

    Args:
        account: the weight accounting (a fresh 6,000/min one when None).
        max_in_flight: requests running at once.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        account: WeightAccount | None = None,
        *,
        max_in_flight: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account if account is not None else WeightAccount()
        self.max_in_flight = max_in_flight
        self.clock = clock
        self.in_flight = 0
        self.granted = 0  # slots given, ever
        self._queue: list[_Waiter] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._queue if not w.future.done())

    @contextlib.asynccontextmanager
    async def slot(
        self, weight: int, priority: Priority = Priority.OTHER, *, max_wait: float = math.inf
    ) -> AsyncIterator[Slot]:
        """Hold a slot for one request of ``weight``.

        Raises:
            BudgetExhausted: the weight cannot be spent within ``max_wait`` seconds.
        """
        await self._acquire(weight, priority, max_wait)
        slot = Slot(self, weight)
        try:
            yield slot
        finally:
            slot.used(None)
            self.in_flight -= 1
            self._pump()

    async def _acquire(self, weight: int, priority: Priority, max_wait: float) -> None:
        now = self.clock()
        wait = self.account.wait(weight, now)
        if wait > max_wait:
            raise BudgetExhausted(wait)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, _Waiter(priority, next(self._order), weight, now + max_wait, future))
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.in_flight -= 1  # granted just as we were cancelled: give it back
                self._pump()
            raise

    def _pump(self) -> None:
        """Grant slots to waiters in priority order while slots and weight allow."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queue = self._queue
        now = self.clock()
        while queue:
            head = queue[0]
            if head.future.done():
                heapq.heappop(queue)
                continue
            if self.in_flight >= self.max_in_flight:
                return  # a slot that ends calls _pump again
            wait = self.account.wait(head.weight, now)
            if wait <= 0:
                heapq.heappop(queue)
                self.in_flight += 1
                self.granted += 1
                self.account.spend(head.weight, now)
                head.future.set_result(None)
                continue
            self._expire(now + wait)
            if any(not w.future.done() for w in queue):
                self._timer = asyncio.get_running_loop().call_later(wait, self._pump)
            return

    def _expire(self, ready: float) -> None:
        """Refuse the waiters that cannot wait until ``ready``."""
        for waiter in self._queue:
            if not waiter.future.done() and waiter.deadline < ready:
                waiter.future.set_exception(BudgetExhausted(ready - self.clock()))
