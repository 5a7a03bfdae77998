"""Upstream backfill: what a trade or kline stream missed while it was down, over REST.

Theory of operation. When a stream goes stale (its connection dropped, or
stalled and was replaced), the source :meth:`~Backfill.mark`\\ s it with the
de-duplication key it had accepted last (the last trade id; the last candle's
open time and whether it was final). A planned rotation never makes a stream
stale (both connections carry it), so it never backfills. The first live
event after the outage goes to :meth:`~Backfill.intercept`:

* no gap (the next trade id, the same or the next candle): the stream is
  live at once, as without backfill;
* a gap: the event is buffered, the stream stays stale, and one task fetches
  the missed trades (``GET /api/v3/trades?limit=1000``, weight 25) or candles
  (``GET /api/v3/klines?limit=1000``, weight 2). Live events that come
  meanwhile are buffered too.

When the task ends, in this order: the recovered events are published
oldest first; the source is told (``done``), which sends ``live`` with the
part of the gap REST could not give (``gap``: trade ids, or candle open
times in ms); then the buffered live events are released, minus any the
backfill already published (same trade id; candle open time not after the
last one backfilled). A REST failure, refusal or unusable body, or a
backfill over ``deadline`` seconds, fills nothing: the whole gap is reported
and nothing is invented (:mod:`.gaps` has the arithmetic).

Every REST call goes through the one ``fetch`` callable given to the
constructor: the source passes its REST client's ``get`` with the weight
budget's ``Priority.BACKFILL`` (right after a book resync, before first book
syncs and plain REST values) and ``max_wait=wait_max``, so a backfill waits in
the budget's queue behind a ``Retry-After`` like every other caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ...events import Event, Kline, Trade
from .gaps import TRADES_LIMIT, Fill, Span, fill_klines, fill_trades, kline_gap, parse_rest_trades, trade_gap
from .history import parse_rest_klines
from .parse import Key, stream_kind, symbol_of_stream


__all__ = ["Backfill", "BackfillCounters", "Fetch", "Release"]

logger = logging.getLogger("tickwire.upstream.binance")

Fetch = Callable[[str, dict[str, str]], Awaitable[tuple[bytes | None, int, float | None]]]
"""A REST GET: (path, query) -> (body or None, receive ms, ``Retry-After`` seconds when refused)."""

Release = Callable[[str, Event, str, int], None]
"""Hands a buffered live event back to the source: (stream, event, frame text, receive ms)."""

_KINDS = ("trade", "kline")  # the streams whose every message matters and REST can give back


@dataclass(slots=True)
class BackfillCounters:
    """Totals since start, for logs and tests."""

    runs: int = 0  # gaps found and fetched
    filled: int = 0  # events published from REST
    lost: int = 0  # gaps (or their start) REST could not fill
    duplicates: int = 0  # buffered live events dropped: the backfill had published them


@dataclass(slots=True)
class _Run:
    gap: Span
    first: Trade | Kline
    buffer: list[tuple[Event, str, int]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Backfill:
    """The backfills of one source's streams.

    Args:
        fetch: the one REST call every backfill request goes through.
        publish: publishes one recovered event (before any live one).
        release: hands back one buffered live event.
        done: the recovered events of a stream are out: ``(stream, lost)``; the
            source then says ``live`` with ``lost`` as the gap.
        stale: the live events buffered during a backfill have a gap of their own
            (the connection dropped again): the source says ``stale`` again, and
            the next backfill starts at once.
        wait_max: longest ``Retry-After`` (seconds) a backfill waits for.
        deadline: seconds a backfill may take in all; then the gap is reported.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        publish: Callable[[Event], None],
        release: Release,
        done: Callable[[str, Span | None], None],
        stale: Callable[[str], None],
        wait_max: float = 10.0,
        deadline: float = 20.0,
    ) -> None:
        self._fetch = fetch
        self._publish = publish
        self._release = release
        self._done = done
        self._stale = stale
        self.wait_max = wait_max
        self.deadline = deadline
        self._marks: dict[str, Key] = {}  # stream -> key accepted last before the outage
        self._runs: dict[str, _Run] = {}
        self.counters = BackfillCounters()

    # -- what the source calls -----------------------------------------------------

    def mark(self, stream: str, key: Key | None) -> None:
        """``stream`` went stale having accepted ``key`` last (None: nothing yet, nothing to fill)."""
        if key is None or stream in self._runs or stream_kind(stream) not in _KINDS:
            return
        self._marks.setdefault(stream, key)

    def intercept(self, stream: str, event: Event | None, text: str, recv_ms: int) -> bool:
        """Whether the backfill takes this live event of a stale stream (None: a duplicate).

        False: no gap, the source goes on as usual (and says ``live``).
        """
        run = self._runs.get(stream)
        if run is not None:
            if event is not None:
                run.buffer.append((event, text, recv_ms))
            return True
        if stream not in self._marks:
            return False
        if event is None:
            return True  # a late copy of something seen before the drop: keep waiting
        key = self._marks.pop(stream)
        gap = _gap(key, event)
        if gap is None:
            return False
        self._start(stream, gap, [(event, text, recv_ms)])
        return True

    def _start(self, stream: str, gap: Span, buffer: list[tuple[Event, str, int]]) -> None:
        first = buffer[0][0]
        assert isinstance(first, (Trade, Kline))  # a gap was found: the stream is of that kind
        run = self._runs[stream] = _Run(gap, first, buffer)
        self.counters.runs += 1
        run.task = asyncio.get_running_loop().create_task(self._run(stream, run), name=f"backfill-{stream}")
        logger.info("%s: %s to %s missed; backfilling over REST", stream, *gap)

    def forget(self, stream: str) -> None:
        """``stream`` was closed: drop its mark and any backfill under way."""
        self._marks.pop(stream, None)
        run = self._runs.pop(stream, None)
        if run is not None and run.task is not None:
            run.task.cancel()

    def running(self, stream: str) -> bool:
        return stream in self._runs

    async def stop(self) -> None:
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one backfill -----------------------------------------------------------------

    async def _run(self, stream: str, run: _Run) -> None:
        try:
            async with asyncio.timeout(self.deadline):
                fill = await self._fill(stream, run)
        except TimeoutError:
            logger.warning("%s: backfill over %g s; the gap is reported", stream, self.deadline)
            fill = Fill([], run.gap)
        except Exception:  # a task boundary: a bug must not keep the stream stale for ever
            logger.error("%s: backfill failed; the gap is reported", stream, exc_info=True)
            fill = Fill([], run.gap)
        if self._runs.get(stream) is run:
            del self._runs[stream]
            self._finish(stream, run, fill)

    async def _fill(self, stream: str, run: _Run) -> Fill:
        symbol = symbol_of_stream(stream)
        if isinstance(run.first, Trade):
            body, _ = await self._get("/api/v3/trades", {"symbol": symbol, "limit": str(TRADES_LIMIT)})
            rows: list[Any] = [] if body is None else _decode(stream, body, parse_rest_trades, symbol)
            return fill_trades(run.gap, rows)
        interval = run.first.interval
        query = {"symbol": symbol, "interval": interval, "limit": "1000"}
        body, recv_ms = await self._get("/api/v3/klines", query)
        rows = [] if body is None else _decode(stream, body, _klines(interval, recv_ms), symbol)
        return fill_klines(run.gap, rows)

    async def _get(self, path: str, query: dict[str, str]) -> tuple[bytes | None, int]:
        """One REST GET; a ``Retry-After`` up to ``wait_max`` is waited out, once."""
        for _ in range(2):
            body, recv_ms, retry = await self._fetch(path, query)
            if body is not None or retry is None or retry > self.wait_max:
                return body, recv_ms
            await asyncio.sleep(retry)
        return None, 0

    def _finish(self, stream: str, run: _Run, fill: Fill) -> None:
        for event in fill.events:
            self._publish(event)
        self.counters.filled += len(fill.events)
        if fill.lost is not None:
            self.counters.lost += 1
            logger.warning("%s: %s to %s lost: REST could not give them", stream, *fill.lost)
        flowing, rest, gap = _split(run.buffer)
        if rest and fill.lost is None:  # still stale: the next gap is filled before anyone hears live
            self._hand_back(stream, flowing, fill)
            self._start(stream, gap, rest)
            return
        self._done(stream, fill.lost)
        self._hand_back(stream, flowing, fill)
        if rest:
            self._start(stream, gap, rest)
            self._stale(stream)

    def _hand_back(self, stream: str, buffer: list[tuple[Event, str, int]], fill: Fill) -> None:
        """Release buffered live events, except any the backfill published (a guard: the gap
        lies before the first live event, and the normalizer dropped live copies already)."""
        high = _order(fill.events[-1]) if fill.events else None
        for event, text, recv_ms in buffer:
            if high is not None and _order(event) <= high:
                self.counters.duplicates += 1
                continue
            self._release(stream, event, text, recv_ms)


def _split(
    buffer: list[tuple[Event, str, int]],
) -> tuple[list[tuple[Event, str, int]], list[tuple[Event, str, int]], Span]:
    """(buffered events up to a gap among them, the rest, that gap): the connection dropped
    again while a backfill ran, and the live data after the reconnect does not follow on."""
    prev = buffer[0][0]
    for i in range(1, len(buffer)):
        event = buffer[i][0]
        gap = _gap(_key(prev), event)
        if gap is not None:
            return buffer[:i], buffer[i:], gap
        prev = event
    return buffer, [], (0, 0)


def _key(event: Event) -> Key:
    """The normalizer's key of a trade or a candle (:func:`_gap` reads only what it needs)."""
    if isinstance(event, Trade):
        return (event.id,)
    assert isinstance(event, Kline)
    return (event.event_time, event.open_time, int(event.final))


def _gap(key: Key, event: Event) -> Span | None:
    if isinstance(event, Trade):
        return trade_gap(key[0], event)
    if isinstance(event, Kline):
        _, open_time, final = key
        return kline_gap(open_time, bool(final), event)
    return None


def _order(event: Event) -> int:
    """Where an event stands in its stream: trade id, candle open time."""
    if isinstance(event, Trade):
        return event.id
    assert isinstance(event, Kline)
    return event.open_time


def _klines(interval: str, recv_ms: int) -> Callable[[bytes, str], list[Kline]]:
    return lambda body, symbol: parse_rest_klines(body, symbol, interval, recv_ms)


def _decode(stream: str, body: bytes, parse: Callable[[bytes, str], list[Any]], symbol: str) -> list[Any]:
    try:
        return parse(body, symbol)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        logger.warning("%s: unusable backfill body ignored: %s", stream, exc)
        return []
