"""Binance REST GETs within the venue's request-weight budget.

The venue allows 6000 request weight per minute per IP and answers 429 (and
418 for repeat offenders) with ``Retry-After`` in seconds (rest-api.md of
https://github.com/binance/binance-spot-api-docs). Every request takes a
slot of the source's one :class:`~.budget.RestBudget` (80 % of the limit,
corrected by ``X-MBX-USED-WEIGHT-1M``, at most 4 in flight, by priority),
which, once refused, lets nothing out until ``Retry-After`` has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import aiohttp

from .budget import BudgetExhausted, Priority, RestBudget, Slot, WeightAccount
from .parse import DEPTH_LEVELS, stream_kind, symbol_of_stream


__all__ = ["RestClient", "fetch_snapshot", "snapshot_request"]

logger = logging.getLogger("tickwire.upstream.binance")


class RestClient:
    """GETs on one REST base URL, paced by request weight.

    Args:
        base_url: REST base URL, without a trailing slash.
        http: returns the shared HTTP client session.
        weights: request weight per path (1 when absent).
        weight_per_minute: the venue's weight budget per minute (when ``budget`` is None).
        timeout: seconds per request.
        clock_ms: wall clock, ms, for the receive time of a body.
        budget: the weight budget every request goes through.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: Callable[[], aiohttp.ClientSession],
        weights: Mapping[str, int],
        weight_per_minute: int,
        timeout: float,
        clock_ms: Callable[[], int],
        budget: RestBudget | None = None,
    ) -> None:
        self.base_url = base_url
        self._http = http
        self._weights = weights
        self._timeout = timeout
        self._clock_ms = clock_ms
        self.budget = (
            budget if budget is not None else RestBudget(WeightAccount(per_minute=weight_per_minute))
        )
        self.limited = 0  # 429/418 answers
        self.calls = 0  # requests sent (refused locally by the budget: not counted)
        self.responses = 0  # HTTP answers of any status: the venue was reached
        self.last_error: str | None = None  # why the last request failed; None after a success

    def blocked_for(self, now: float) -> float:
        """Seconds (monotonic ``now``) until a 429/418 stops keeping us off, 0 when not blocked."""
        return self.budget.account.blocked_for(now)

    async def get(
        self,
        path: str,
        params: dict[str, str],
        *,
        weight: int | None = None,
        priority: Priority = Priority.OTHER,
        max_wait: float = 0.0,
    ) -> tuple[bytes | None, int, float | None]:
        """GET within the weight budget: (body, receive ms, retry-after seconds when refused).

        Args:
            weight: the request's weight (default: by path, 1 when unknown).
            priority: its place in the budget's queue.
            max_wait: seconds it may wait for weight or a ``Retry-After`` to pass
                (a free slot is always waited for); 0 answers at once.
        """
        cost = weight if weight is not None else self._weights.get(path, 1)
        try:
            async with self.budget.slot(cost, priority, max_wait=max_wait) as slot:
                return await self._send(path, params, slot)
        except BudgetExhausted as exc:
            return None, 0, exc.retry_after

    async def _send(
        self, path: str, params: dict[str, str], slot: Slot
    ) -> tuple[bytes | None, int, float | None]:
        self.calls += 1
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with self._http().get(self.base_url + path, params=params, timeout=timeout) as resp:
                self.responses += 1
                used = resp.headers.get("X-MBX-USED-WEIGHT-1M", "")
                body = await resp.read()
                if resp.status in (418, 429):
                    retry = _seconds(resp.headers.get("Retry-After"), 60.0)
                    slot.refused(retry)
                    self.limited += 1
                    self.last_error = f"HTTP {resp.status}, retry after {retry:g} s"
                    logger.warning("REST %s answered %s; no REST for %.0f s", path, resp.status, retry)
                    return None, 0, retry
                slot.used(int(used) if used.isdigit() else None)
                if resp.status != 200:
                    logger.warning("REST %s answered %s: %s", path, resp.status, body[:200])
                    self.last_error = f"HTTP {resp.status}"
                    return None, 0, None
                self.last_error = None
                return body, self._clock_ms(), None
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("REST %s failed: %s: %s", path, type(exc).__name__, exc)
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            return None, 0, None


def snapshot_request(stream: str) -> tuple[str, dict[str, str]] | None:
    """The REST path and query that give the current value of ``stream`` (None for trades)."""
    symbol = symbol_of_stream(stream)
    kind = stream_kind(stream)
    if kind == "ticker":
        return "/api/v3/ticker/24hr", {"symbol": symbol}
    if kind == "kline":
        return "/api/v3/klines", {"symbol": symbol, "interval": stream.partition("@kline_")[2], "limit": "1"}
    if kind == "depth":
        return "/api/v3/depth", {"symbol": symbol, "limit": str(DEPTH_LEVELS)}
    return None  # trades: nothing to show before the next trade


async def fetch_snapshot(
    rest: RestClient, stream: str, *, wait_max: float, still_needed: Callable[[], bool], tries: int = 3
) -> tuple[bytes, int] | None:
    """The REST body giving the current value of ``stream`` and its receive ms, or None.

    A 429/418 is waited out (``Retry-After`` up to ``wait_max`` seconds) and the
    request tried again, up to ``tries`` times, as long as ``still_needed()``:
    live data that arrived meanwhile makes the snapshot pointless.
    """
    request = snapshot_request(stream)
    if request is None:
        return None
    path, params = request
    for _ in range(tries):
        body, recv_ms, retry = await rest.get(path, params)
        if body is not None:
            return (body, recv_ms) if still_needed() else None
        if retry is None or retry > wait_max:
            return None
        await asyncio.sleep(retry)
        if not still_needed():
            return None
    return None


def _seconds(raw: str | None, default: float) -> float:
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        return default
