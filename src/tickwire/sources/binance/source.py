"""The Binance Spot source: combined-stream WebSocket connections plus REST.

The venue's limits it is built to are listed in the package docstring
(:mod:`tickwire.sources.binance`).

Theory of operation: the ingest opens and closes channels; each channel maps
to one stream (``price:S`` and ``ticker:S`` share ``s@ticker``, refcounted
here). Each stream is assigned to one connection (:mod:`.connection`), which
diffs what it should carry against what it told the server and sends paced,
batched control messages; it reports back through the
:class:`~.connection.ConnectionOwner` methods below. Frames are parsed by
:mod:`.parse`, REST goes through :mod:`.rest`, the symbol list through
:mod:`.symbols`. A per-stream watchdog (:mod:`.watchdog`), the connection age
and ``serverShutdown`` start a replacement connection; the old one is closed
``overlap`` seconds after the new one delivered data. ``book:`` channels go
to :mod:`.books` (one ``@depth@100ms`` stream and book engine per symbol),
which reports their status itself; every REST call shares one weight budget
(:mod:`.budget`), sized from exchangeInfo. Every stream whose
connection is down or stalled is reported stale, channel by channel, until
data flows again; ``health()`` is not live until the venue has been reached
and exchangeInfo answered. A trade or kline stream that comes back with a gap
is backfilled over REST before it is live again (:mod:`.backfill`). What the
connections report, and each stream's stale or live state, is handled in
:mod:`.streams` (a mixin of :class:`BinanceSource`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from ...backoff import ConnectBudget
from ...channels import Channel, Kind
from ...clock import wall_ms
from ...config import Settings
from ...errors import ErrorCode, ProtocolError, UpstreamError
from ...events import Kline
from ...marketdata import SymbolInfo
from ..base import SourceKind, SourceSink
from .backfill import Backfill
from .bookparse import book_stream, parse_exchange_facts
from .books import BookFeed
from .budget import Priority, RestBudget, WeightAccount
from .connection import ConnectionConfig
from .health import BinanceHealth, liveness
from .history import BinanceHistory
from .parse import Normalizer, stream_of
from .pool import ConnectionPool
from .rest import RestClient
from .snapshots import Snapshots
from .streams import StreamsMixin
from .symbols import SymbolList
from .watchdog import StallThresholds, StreamWatch


__all__ = ["BinanceHealth", "BinanceSource"]

logger = logging.getLogger("tickwire.upstream.binance")


class BinanceSource(StreamsMixin):
    """Binance Spot market data for every market channel kind.

    Args:
        rest_url: REST base URL (``https://api.binance.com``).
        connection: the connections' tunables: stream URL, rotation, pacing, backoff.
        stall: per-stream watchdog thresholds (a stalled stream is stale and its
            connection replaced).
        max_streams: streams per connection before another one is opened (venue: 1024).
        overlap: seconds both connections run after the replacement delivered data.
        connect_limit, connect_window: connection attempts allowed per window (seconds).
        exchange_info_ttl: seconds between symbol list refreshes.
        exchange_info_retry, exchange_info_retry_max: backoff delays, seconds, after a failed load.
        snapshot_fresh: a value younger than this (seconds) needs no REST snapshot.
        snapshot_wait: longest ``Retry-After`` (seconds) a snapshot waits for.
        rest_timeout: seconds per REST request.
        rest_in_flight: REST requests running at once.
        book_backoff_initial, book_backoff_max: a book's resync delays, seconds.
    """

    name = "binance"
    kind = SourceKind.LIVE

    # -- venue facts (see the package docstring for sources; per connection: ConnectionConfig) --
    MAX_STREAMS_PER_CONNECTION = 1024
    CONNECTS_PER_WINDOW = 300  # per IP, every process on the host: the default budget keeps a margin
    CONNECT_WINDOW_SECONDS = 300.0
    REST_WEIGHT_PER_MINUTE = 6000
    REST_WEIGHTS: Mapping[str, int] = {
        "/api/v3/exchangeInfo": 20,
        "/api/v3/ticker/24hr": 2,
        "/api/v3/klines": 2,
        "/api/v3/depth": 5,  # limit 1-100
        "/api/v3/trades": 25,  # backfill
    }

    def __init__(
        self,
        *,
        rest_url: str = "https://api.binance.com",
        connection: ConnectionConfig | None = None,
        stall: StallThresholds | None = None,
        max_streams: int = 1024,
        overlap: float = 1.0,
        connect_limit: int = 250,
        connect_window: float = 300.0,
        exchange_info_ttl: float = 3600.0,
        exchange_info_retry: float = 1.0,
        exchange_info_retry_max: float = 300.0,
        snapshot_fresh: float = 5.0,
        snapshot_wait: float = 10.0,
        rest_timeout: float = 10.0,
        rest_in_flight: int = 4,
        book_backoff_initial: float = 1.0,
        book_backoff_max: float = 60.0,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        config = connection if connection is not None else ConnectionConfig()
        self.config = dataclasses.replace(config, ws_url=config.ws_url.rstrip("/"))
        self.stall = stall if stall is not None else StallThresholds()
        self.rest_url = rest_url.rstrip("/")
        rng = rng if rng is not None else random.Random()
        self._pool = ConnectionPool(
            self,
            config=self.config,
            max_streams=min(max_streams, self.MAX_STREAMS_PER_CONNECTION),
            overlap=overlap,
            budget=ConnectBudget(limit=connect_limit, window=connect_window),
            rng=rng,
            clock_ms=clock_ms,
        )
        self._sink: SourceSink | None = None
        self._http: aiohttp.ClientSession | None = None
        self._norm = Normalizer()
        self._channels: dict[str, set[str]] = {}  # stream -> open channel names
        self._stale: dict[str, str] = {}  # stream -> reason
        self._watches: dict[str, StreamWatch] = {}  # stream -> its watchdog
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rest = RestClient(
            self.rest_url,
            http=self.http,
            weights=self.REST_WEIGHTS,
            weight_per_minute=self.REST_WEIGHT_PER_MINUTE,
            timeout=rest_timeout,
            clock_ms=clock_ms,
            budget=RestBudget(
                WeightAccount(per_minute=self.REST_WEIGHT_PER_MINUTE), max_in_flight=rest_in_flight
            ),
        )
        self._precisions: dict[str, tuple[int, int]] = {}  # from exchangeInfo's filters
        self.books = BookFeed(
            emit=self._emit,
            status=self._status,
            rest=self._rest,
            precision=self._precisions.get,
            backoff_initial=book_backoff_initial,
            backoff_max=book_backoff_max,
        )
        self._symbols = SymbolList(
            self._rest,
            ttl=exchange_info_ttl,
            retry_initial=exchange_info_retry,
            retry_max=exchange_info_retry_max,
            rng=rng,
        )
        self._symbols.info_hook = self._exchange_facts
        self.history = BinanceHistory(self._rest, ttl=exchange_info_ttl, clock_ms=clock_ms)  # /api/v1/klines
        self._snapshots = Snapshots(
            self._rest, self._norm, emit=self._emit, fresh=snapshot_fresh, wait=snapshot_wait
        )
        self.backfill = Backfill(  # its REST calls all go through this one fetch
            self._backfill_get,
            publish=self._emit,
            release=self._accepted,
            done=self._backfilled,
            stale=lambda stream: self._set_stale(stream, "upstream disconnected during the backfill"),
        )
        self.raw_hook: Callable[[str, int], None] | None = None
        """Called with (frame text, receive ms) for every accepted data frame (``tickwire record``)."""
        self._stream_up = False  # some connection has been up once
        self.duplicates = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> BinanceSource:
        return cls(
            rest_url=settings.binance_rest_url,
            connection=ConnectionConfig(
                ws_url=settings.binance_ws_url, rotate_after=settings.binance_rotate_after
            ),
            stall=StallThresholds(
                ticker=settings.stall_ticker,
                kline=settings.stall_kline,
                depth=settings.stall_depth,
                trades_min=settings.stall_trades_min,
            ),
        )

    @property
    def ws_url(self) -> str:
        return self.config.ws_url

    @property
    def rotate_after(self) -> float:
        return self.config.rotate_after

    @property
    def rest_hook(self) -> Callable[[str, bytes, int], None] | None:
        """Called with (stream, body, receive ms) for every REST snapshot used."""
        return self._snapshots.rest_hook

    @rest_hook.setter
    def rest_hook(self, hook: Callable[[str, bytes, int], None] | None) -> None:
        self._snapshots.rest_hook = hook
        self.books.rest_hook = hook

    def _exchange_facts(self, body: bytes) -> None:
        """exchangeInfo loaded: book precisions and the REST weight limit."""
        try:
            facts = parse_exchange_facts(body)
        except UpstreamError as exc:
            logger.warning("%s", exc)
            return
        self._precisions.update(facts.precisions)
        if facts.weight_per_minute:
            self._rest.budget.account.per_minute = facts.weight_per_minute

    async def _backfill_get(self, path: str, query: dict[str, str]) -> tuple[bytes | None, int, float | None]:
        """A backfill's REST GET: ranked right after a book resync, and queued in the weight
        budget up to the backfill's ``wait_max`` (a ``Retry-After`` holds it back like every
        caller, and it keeps its place in the queue meanwhile)."""
        return await self._rest.get(path, query, priority=Priority.BACKFILL, max_wait=self.backfill.wait_max)

    # -- Source protocol ---------------------------------------------------------------

    def attach(self, sink: SourceSink) -> None:
        self._sink = sink

    async def run(self) -> None:
        self.http()
        self._pool.start_all()
        try:
            await self._watch()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(
                self._pool.stop_all(),
                self._snapshots.stop(),
                self.books.stop(),
                self.backfill.stop(),
                *self._tasks,
                return_exceptions=True,
            )
            if self._http is not None:
                await self._http.close()
                self._http = None

    async def validate(self, channel: Channel) -> None:
        await self._symbols.ensure()
        symbols = self._symbols.symbols
        if symbols is None:
            logger.warning("symbol list unavailable; %s not checked", channel.name)
            return
        status = symbols.get(channel.symbol or "")
        if status == "TRADING":
            return
        why = "does not list" if status is None else f"lists as {status}, not trading,"
        raise ProtocolError(ErrorCode.UNKNOWN_SYMBOL, f"Binance {why} {channel.symbol}", channel=channel.name)

    def open(self, channel: Channel) -> None:
        if channel.kind is Kind.BOOK:
            self._open_book(channel)
            return
        stream = stream_of(channel)
        names = self._channels.get(stream)
        held = self._snapshots.fresh_value(stream)
        if names is None:
            self._channels[stream] = {channel.name}
            self._watches[stream] = StreamWatch(stream, self.stall, time.monotonic())
            conn = self._pool.place(stream)
            if conn.ws is None and conn.down_reason is not None:
                self._set_stale(stream, conn.down_reason)
            if held is not None:
                self._emit(held)
            else:
                self._snapshot_soon(stream)
            return
        names.add(channel.name)
        reason = self._stale.get(stream)
        if reason is not None:
            self._status(channel.name, False, reason)
        if held is None:
            self._snapshot_soon(stream)

    def _open_book(self, channel: Channel) -> None:
        stream = book_stream(channel.symbol or "")
        names = self._channels.setdefault(stream, set())
        if not names:
            self._watches[stream] = StreamWatch(stream, self.stall, time.monotonic())
            conn = self._pool.place(stream)
            if conn.ws is None and conn.down_reason is not None:
                self._stale[stream] = conn.down_reason
        names.add(channel.name)
        self.books.open(channel, self._stale.get(stream))

    def close(self, channel: Channel) -> None:
        if channel.kind is Kind.BOOK:
            self.books.close(channel)
        stream = book_stream(channel.symbol or "") if channel.kind is Kind.BOOK else stream_of(channel)
        names = self._channels.get(stream)
        if names is None:
            return
        names.discard(channel.name)
        if names:
            return
        del self._channels[stream]
        self._stale.pop(stream, None)
        self.backfill.forget(stream)
        self._watches.pop(stream, None)
        self._norm.forget(stream)
        self._pool.release(stream)

    def known_symbols(self) -> list[str] | None:
        """Symbols trading now per the cached exchangeInfo (None before it loaded)."""
        symbols = self._symbols.symbols
        if symbols is None:
            return None
        return sorted(s for s, status in symbols.items() if status == "TRADING")

    def streams(self) -> list[str]:
        return sorted(self._pool.active_streams())

    @property
    def rest_limited(self) -> int:
        """REST requests answered 429 or 418."""
        return self._rest.limited

    def health(self) -> BinanceHealth:
        live, reason = self._liveness()
        counts = self._pool.counters()
        symbols = self._symbols.symbols
        backfill = self.backfill.counters
        return BinanceHealth(
            source=self.name,
            live=live,
            reason=reason,
            streams=len(self._channels),
            active_streams=len(self.streams()),
            stale_streams=sorted(self._stale),
            connections=self._pool.open_count(),
            connects=counts.connects,
            reconnects=counts.reconnects,
            rotations=self._pool.rotations,
            garbage_frames=counts.garbage_frames,
            duplicates_dropped=self.duplicates,
            refused_subscriptions=counts.refused_subscriptions,
            control_failures=counts.control_failures,
            rest_calls=self._rest.calls,
            rest_limited=self.rest_limited,
            rest_blocked_seconds=round(self._rest.blocked_for(time.monotonic()), 1),
            symbols=len(symbols) if symbols is not None else None,
            book_resyncs=self.books.resyncs(),
            rest_weight_used=self._rest.budget.account.header,
            snapshot_weight=self.books.snapshot_weight,
            backfill_runs=backfill.runs,
            backfill_filled=backfill.filled,
            backfill_lost=backfill.lost,
            backfill_duplicates=backfill.duplicates,
        )

    # -- market data over HTTP: all in history.py ---------------------------------------------

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        return await self.history.klines(symbol, interval, limit=limit, end_time=end_time)

    async def symbols(self) -> list[SymbolInfo]:
        return await self.history.symbols()

    def _liveness(self) -> tuple[bool, str | None]:
        never = next((c.down_reason for c in self._pool.conns.values() if c.down_reason), None)
        return liveness(
            reached=self._stream_up or self._rest.responses > 0,
            unreached_because=self._rest.last_error or never,
            symbols_problem=self._symbols.problem(),
            wanted=bool(self._channels),
            stream_up=self._stream_up,
            stale=self._stale,
        )

    # -- ConnectionOwner: the rest of it is in streams.py -----------------------------------

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self.config.connect_timeout, sock_connect=self.config.connect_timeout
            )
            self._http = aiohttp.ClientSession(timeout=timeout)
        return self._http

    # -- watchdog ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        """The per-stream watchdog, the symbol-list refresh and the held-value cleanup."""
        tick = self.stall.tick()
        while True:
            now = time.monotonic()
            self._check_streams(now)
            self._snapshots.prune(self._channels)
            if self._symbols.due(now):
                self._spawn(self._symbols.load())
            await asyncio.sleep(tick)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _snapshot_soon(self, stream: str) -> None:
        if self._pool.running:
            self._snapshots.fetch_soon(stream, self._channels.__contains__)
