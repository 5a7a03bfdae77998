"""The composition root: one node's stats, bus, hub, ingest and source.

Data flows one way through what a node owns (docs/core.md):
``source -> ingest -> bus -> hub -> sessions``; demand flows back from the
hub through the bus to the ingest, which opens and closes source streams.
The HTTP server (:mod:`.server`) serves a node; it builds none of this.

Start: bus, then the source's task. Stop: the ingest's linger timers, the
source's task, then the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import msgspec

from .bus import Bus, make_bus
from .clock import wall_ms
from .config import Settings
from .history import DEFAULT_SIZES, History, parse_sizes
from .hub import Hub
from .ingest import Ingest
from .sources import Source, SourceHealth, make_source, source_class
from .sources.follower import FollowerSource
from .stats import Stats


__all__ = ["Node"]

logger = logging.getLogger("tickwire.node")


class Node:
    """Everything of one node but the sockets.

    Args:
        settings: the node's settings (``source``, ``role``, ``redis_url``, ``linger``).
        source: a source to use instead of the one the settings name (tests, embedding).
        bus: a bus to use instead of the one the settings name.
        clock_ms: the wall clock in ms of the hub, the ingest and the stats.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        source: Source | None = None,
        bus: Bus | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.settings = settings
        self.stats = Stats(clock_ms=clock_ms)
        self.bus: Bus = bus if bus is not None else make_bus(settings)
        sizes = {**DEFAULT_SIZES, **dict(parse_sizes(settings.history))}
        self.hub = Hub(
            self.bus,
            on_deliver=self.stats.on_deliver,
            on_conflated=self.stats.count_conflated,
            clock_ms=clock_ms,
            history=History(sizes=sizes, max_bytes=settings.history_memory),
            resume_window=settings.resume_window,
            on_resume=self.stats.count_resume,
        )
        self.source: Source = source if source is not None else self._make_source()
        self.ingest = Ingest(self.source, self.bus, linger=settings.linger, clock_ms=clock_ms)
        self._source_task: asyncio.Task[None] | None = None

    def _make_source(self) -> Source:
        view = self.bus.upstream_view()
        if view is not None and self.settings.role == "gateway":  # the leading ingest holds the upstream
            cls = source_class(self.settings.source)
            return FollowerSource(view, cls.name, cls.kind)
        return make_source(self.settings)

    async def start(self) -> None:
        await self.bus.start()
        self._source_task = asyncio.get_running_loop().create_task(self._run_source(), name="source")

    async def _run_source(self) -> None:
        try:
            await self.source.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("source %s stopped", self.source.name)
            raise

    async def stop(self) -> None:
        self.ingest.close()
        self.hub.close()
        if self._source_task is not None:
            self._source_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._source_task
        await self.bus.close()

    def upstream_health(self) -> SourceHealth:
        """The source's health, with the channels the hub knows are stale."""
        return msgspec.structs.replace(self.source.health(), stale_channels=self.hub.stale_channels())
