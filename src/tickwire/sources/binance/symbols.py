"""The venue's symbol list (``GET /api/v3/exchangeInfo``, weight 20), loaded with backoff.

A ``SUBSCRIBE`` to a symbol that does not exist is acknowledged and then
silent, so symbols are checked against this list. It is loaded at start,
refreshed every ``ttl`` seconds, and a failed load is retried after a capped,
jittered :func:`~tickwire.backoff.backoff` delay (or the ``Retry-After`` of a
429/418, when longer) rather than on every watchdog tick: 20 weight a second
against a venue that is already failing is how an IP gets banned. The list's
state feeds ``/health``: a source whose list never loaded, or whose loads
keep failing, is not live.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Iterator

from ...backoff import backoff
from ...errors import UpstreamError
from .parse import parse_exchange_info
from .rest import RestClient


__all__ = ["SymbolList"]

logger = logging.getLogger("tickwire.upstream.binance")

PATH = "/api/v3/exchangeInfo"


class SymbolList:
    """Symbol -> status, per the last good exchangeInfo answer.

    Args:
        rest: the REST client.
        ttl: seconds between refreshes of a good list.
        retry_initial, retry_max: backoff delays, seconds, after a failed load.
        failing_after: failed loads in a row after which a list that did load once
            is reported failing (a single failed hourly refresh is not an outage).
        rng: randomness for the jitter.
        clock: monotonic clock, seconds.
    """

    def __init__(
        self,
        rest: RestClient,
        *,
        ttl: float = 3600.0,
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
        failing_after: int = 3,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rest = rest
        self.ttl = ttl
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._failing_after = failing_after
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._delays = self._backoff()
        self._lock = asyncio.Lock()
        self.symbols: dict[str, str] | None = None
        self.loaded_at = -math.inf
        self.next_try = -math.inf  # no load before this (monotonic), after a failure
        self.failures = 0  # failed loads in a row
        self.attempts = 0
        self.last_error: str | None = None
        self.info_hook: Callable[[bytes], None] | None = None
        """Called with every exchangeInfo body loaded (precisions, weight limit)."""

    def _backoff(self) -> Iterator[float]:
        return backoff(initial=self._retry_initial, max_delay=self._retry_max, rng=self._rng)

    def due(self, now: float) -> bool:
        """Whether a load should start now: the list is old or missing, and no backoff holds it."""
        return now - self.loaded_at >= self.ttl and now >= self.next_try and not self._lock.locked()

    def problem(self) -> str | None:
        """Why the list cannot be trusted now (None when it can)."""
        if self.symbols is None:
            if self.failures == 0:
                return "exchangeInfo not answered yet"
            return f"exchangeInfo failing ({self.failures} attempts): {self.last_error}"
        if self.failures >= self._failing_after:
            return f"exchangeInfo failing ({self.failures} attempts): {self.last_error}"
        return None

    async def ensure(self) -> None:
        """Load the list if it was never loaded, unless a backoff holds it; wait for a load under way."""
        if self.symbols is None and (self._lock.locked() or self._clock() >= self.next_try):
            await self.load()

    async def load(self) -> None:
        """One attempt, unless another just finished or the list is fresh."""
        async with self._lock:
            now = self._clock()
            if now - self.loaded_at < self.ttl or now < self.next_try:
                return
            self.attempts += 1
            body, _, retry = await self._rest.get(PATH, {})
            if body is None:
                self._failed(self._rest.last_error or f"REST held back for {retry or 0:.0f} s", retry)
                return
            try:
                symbols = parse_exchange_info(body)
            except UpstreamError as exc:
                self._failed(str(exc), None)
                return
            self.symbols = symbols
            if self.info_hook is not None:
                self.info_hook(body)
            self.loaded_at = self._clock()
            self.failures = 0
            self.last_error = None
            self._delays = self._backoff()
            logger.info("exchangeInfo: %d symbols", len(symbols))

    def _failed(self, why: str, retry: float | None) -> None:
        self.failures += 1
        self.last_error = why
        delay = max(next(self._delays), retry or 0.0)
        self.next_try = self._clock() + delay
        logger.warning("exchangeInfo failed (%d in a row): %s; next try in %.1f s", self.failures, why, delay)
