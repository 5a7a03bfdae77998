"""Buses move publications and demand between nodes: ``memory`` (one node), ``redis`` (many).

:func:`make_bus` is the one place a bus is chosen from the settings. To add a
bus, write ``bus/<name>.py`` with a class that satisfies :class:`~.base.Bus`
and add a branch here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..history import DEFAULT_SIZES, parse_sizes
from .base import Bus, BusHealth, BusListener, BusUnavailable, DemandListener, UpstreamView
from .memory import MemoryBus


if TYPE_CHECKING:
    from ..config import Settings


__all__ = [
    "Bus",
    "BusHealth",
    "BusListener",
    "BusUnavailable",
    "DemandListener",
    "MemoryBus",
    "UpstreamView",
    "make_bus",
]


def make_bus(settings: Settings) -> Bus:
    """The memory bus, or the Redis bus when ``--redis-url`` is set (imported lazily)."""
    if not settings.redis_url:
        return MemoryBus()
    try:
        from .redis import RedisBus
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("--redis-url needs the redis extra: pip install 'tickwire[redis]'") from exc
    return RedisBus(
        settings.redis_url,
        upstream=settings.source,
        prefix=settings.redis_prefix,
        can_lead=settings.role != "gateway",
        history={**DEFAULT_SIZES, **dict(parse_sizes(settings.history))},  # the streams keep what rings do
    )
