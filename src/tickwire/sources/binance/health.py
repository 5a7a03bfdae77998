"""What ``/health`` says about the Binance source, and when it is live. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from ..base import SourceHealth


__all__ = ["BinanceHealth", "liveness"]


class BinanceHealth(SourceHealth, kw_only=True):
    active_streams: int
    connects: int
    rotations: int
    garbage_frames: int
    duplicates_dropped: int
    refused_subscriptions: int
    control_failures: int
    rest_blocked_seconds: float
    symbols: int | None  # symbols listed by exchangeInfo; None before the first answer


def liveness(
    *,
    reached: bool,
    unreached_because: str | None,
    symbols_problem: str | None,
    wanted: bool,
    stream_up: bool,
    stale: Mapping[str, str],
) -> tuple[bool, str | None]:
    """(live, reason): live only once the venue answered, exchangeInfo included, and no stream is stale.

    Args:
        reached: a stream connection was up once, or REST answered anything.
        unreached_because: the last error, when not reached.
        symbols_problem: why the exchangeInfo list cannot be trusted, or None.
        wanted: some stream is wanted.
        stream_up: a stream connection was up once.
        stale: stale stream -> reason.
    """
    if not reached:
        return False, "upstream never reached" + (f": {unreached_because}" if unreached_because else "")
    if symbols_problem is not None:
        return False, symbols_problem
    if wanted and not stream_up:
        return False, "no stream connection up yet"
    if stale:
        stream, why = min(stale.items())
        return False, f"{len(stale)} stale (first {stream}: {why})"
    return True, None
