"""The current value of each stream: held from live data, or fetched over REST.

A channel that opens should not wait a second (ticker) or minutes (a quiet
kline) for its first value. The newest event of each stream is held for
``fresh`` seconds; a channel opening within that window gets it at once,
otherwise the value is fetched over REST (``/api/v3/ticker/24hr``,
``/api/v3/klines``, ``/api/v3/depth``). A REST value never replaces newer
stream data: it is dropped if the stream delivered anything while the
request was in flight, and it goes through the same growing keys of the
:class:`~.parse.Normalizer`. Trades have no snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from ...errors import UpstreamError
from ...events import Event
from .parse import Normalizer
from .rest import RestClient, fetch_snapshot


__all__ = ["Snapshots"]

logger = logging.getLogger("tickwire.upstream.binance")


class Snapshots:
    """Held values and REST snapshots of one source's streams.

    Args:
        rest: the REST client.
        norm: the source's normalizer (de-duplication keys).
        emit: publishes an event.
        fresh: seconds a held value may serve a channel that opens.
        wait: longest ``Retry-After`` (seconds) a snapshot waits for.
    """

    def __init__(
        self, rest: RestClient, norm: Normalizer, *, emit: Callable[[Event], None], fresh: float, wait: float
    ) -> None:
        self._rest = rest
        self._norm = norm
        self._emit = emit
        self.fresh = fresh
        self.wait = wait
        self._held: dict[str, tuple[Event, float]] = {}  # stream -> newest event, when
        self._fetching: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.rest_hook: Callable[[str, bytes, int], None] | None = None

    def hold(self, stream: str, event: Event) -> None:
        self._held[stream] = (event, time.monotonic())

    def fresh_value(self, stream: str) -> Event | None:
        held = self._held.get(stream)
        if held is not None and time.monotonic() - held[1] < self.fresh:
            return held[0]
        return None

    def prune(self, open_streams: Collection[str]) -> None:
        """Forget old values of streams nobody has open."""
        now = time.monotonic()
        for stream, (_, at) in list(self._held.items()):
            if now - at > self.fresh and stream not in open_streams:
                del self._held[stream]

    def fetch_soon(self, stream: str, is_open: Callable[[str], bool]) -> None:
        """Fetch ``stream``'s value over REST in the background (once at a time per stream)."""
        if stream in self._fetching:
            return
        self._fetching.add(stream)
        task = asyncio.get_running_loop().create_task(self._fetch(stream, is_open))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _fetch(self, stream: str, is_open: Callable[[str], bool]) -> None:
        start = self._norm.key(stream)
        try:
            got = await fetch_snapshot(
                self._rest,
                stream,
                wait_max=self.wait,
                still_needed=lambda: is_open(stream) and self._norm.key(stream) == start,
            )
            if got is None:
                return
            body, recv_ms = got
            try:
                event = self._norm.accept_rest(stream, body, recv_ms)
            except UpstreamError as exc:
                logger.warning("%s", exc)
                return
            if event is not None:
                self.hold(stream, event)
                if self.rest_hook is not None:
                    self.rest_hook(stream, body, recv_ms)
                self._emit(event)
        finally:
            self._fetching.discard(stream)
