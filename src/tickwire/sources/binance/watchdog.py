"""Per-stream staleness thresholds, pure: no clock reads, no asyncio.

A Binance stream can stall silently while its connection stays up (server
pings still arrive), so each stream has its own watchdog. Fixed-cadence
streams get a fixed threshold scaled to their cadence (the venue pushes a
ticker every 1 s, a kline every 2 s and a partial book every 100 ms); a
frozen one is stale within seconds, before a screen shows a dead price as
live. Trades have no cadence: a busy symbol trades many times a second and a
quiet one may not trade for minutes, so their threshold follows the rate
observed on that stream (``trades_factor`` mean gaps), never below
``trades_min`` and never above ``trades_max``. One fixed threshold for every
stream either misses frozen busy feeds or restarts quiet ones (cryptofeed
issues #308 and #536).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .parse import stream_kind


__all__ = ["StallThresholds", "StreamWatch"]


@dataclass(frozen=True, slots=True)
class StallThresholds:
    """Seconds without data after which a stream is stale.

    Args:
        ticker: ``@ticker`` streams (venue cadence 1 s).
        kline: ``@kline_*`` streams (venue cadence 2 s, 1 s for ``1s``).
        depth: partial book streams (venue cadence 100 ms).
        trades_min: least threshold of a trade stream, however busy it was.
        trades_max: threshold of a trade stream whose rate is not known yet,
            and the most it can grow to.
        trades_factor: a trade stream is stale after this many mean gaps.
        trades_samples: gaps seen before the observed rate is trusted.
    """

    ticker: float = 5.0
    kline: float = 10.0
    depth: float = 2.0
    trades_min: float = 10.0
    trades_max: float = 300.0
    trades_factor: float = 20.0
    trades_samples: int = 3

    def fixed(self, kind: str) -> float | None:
        """The fixed threshold of a stream kind (None for trades, whose threshold is observed)."""
        return {"ticker": self.ticker, "kline": self.kline, "depth": self.depth}.get(kind)

    def tick(self) -> float:
        """How often to check: a quarter of the smallest threshold, between 50 ms and 1 s."""
        smallest = min(self.ticker, self.kline, self.depth, self.trades_min)
        return max(0.05, min(1.0, smallest / 4))


class StreamWatch:
    """When one stream last delivered data, and how long it may be silent.

    The caller passes monotonic times; ``restart`` marks a (re)subscribe: the
    venue needs a moment to start the stream, and the gap across it is not
    a sample of the stream's rate.
    """

    ALPHA = 0.2  # weight of a new gap in the moving mean

    __slots__ = ("_limits", "_mean_gap", "_samples", "fixed", "kind", "last", "measured")

    def __init__(self, stream: str, limits: StallThresholds, now: float) -> None:
        self.kind = stream_kind(stream)
        self._limits = limits
        self.fixed = limits.fixed(self.kind)
        self.last = now  # last data, or the last (re)subscribe
        self.measured = False  # whether ``last`` is a data arrival (a gap can be measured from it)
        self._mean_gap = math.nan
        self._samples = 0

    def restart(self, now: float) -> None:
        self.last = now
        self.measured = False

    def seen(self, now: float, *, sample: bool = True) -> None:
        """Data arrived at ``now``; ``sample`` is False for a copy dropped as a duplicate."""
        if sample and self.measured:
            gap = now - self.last
            self._mean_gap = (
                gap if self._samples == 0 else self._mean_gap + self.ALPHA * (gap - self._mean_gap)
            )
            self._samples += 1
        self.last = max(self.last, now)
        self.measured = True

    def limit(self) -> float:
        """Seconds of silence after which the stream is stale."""
        if self.fixed is not None:
            return self.fixed
        lim = self._limits
        if self._samples < lim.trades_samples:
            return lim.trades_max
        return min(lim.trades_max, max(lim.trades_min, lim.trades_factor * self._mean_gap))

    def silent_for(self, now: float) -> float:
        return now - self.last

    def overdue(self, now: float) -> bool:
        return now - self.last > self.limit()
