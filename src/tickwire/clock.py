"""The wall clock every component reads by default (tests inject their own)."""

from __future__ import annotations

import time


__all__ = ["wall_ms"]


def wall_ms() -> int:
    """Unix epoch milliseconds: the unit of ``timestamp`` in data messages and ``event_time``."""
    return time.time_ns() // 1_000_000
