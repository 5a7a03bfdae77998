"""The Binance Spot source: combined-stream WebSocket connections plus REST.

Venue limits this connector is built to (Binance Spot, "WebSocket Streams",
https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md,
and rest-api.md of the same repository):

* combined streams ``/stream?streams=a/b/c``; frames are ``{"stream": name, "data": payload}``;
  stream names use the lower-case symbol, payloads the upper-case one;
* at most 1024 streams per connection: streams are sharded over connections;
* at most 5 incoming messages per second per connection, pings, pongs and
  ``SUBSCRIBE``/``UNSUBSCRIBE`` included; beyond that the server closes with
  1008 "Too many requests" (and repeat offenders get their IP banned). Control
  messages are batched and paced evenly (one per ``control_interval``, 0.3 s),
  counting the pongs we send, and reconnects put their streams in the URL;
* 300 connection attempts per 5 minutes per IP: capped, jittered backoff and a
  sliding connect budget;
* the server pings every 20 s and drops a connection that has not answered
  within a minute; pongs are sent at once, echoing the payload;
* a connection lives at most 24 h, and ``serverShutdown`` announces an early
  cut: connections are replaced make-before-break (``rotate_after``, 23 h),
  de-duplicated by trade id, update id and event time;
* a ``SUBSCRIBE`` to a symbol that does not exist is acknowledged and then
  silent: symbols are checked against ``/api/v3/exchangeInfo`` first;
* REST: 6000 request weight per minute per IP; 429 and 418 carry
  ``Retry-After`` (seconds), which is honoured for every later request.

Theory of operation: the ingest opens and closes channels; each channel maps
to one stream (``price:S`` and ``ticker:S`` share ``s@ticker``, refcounted
here). Each stream is assigned to one connection (:mod:`._binance_conn`),
which diffs what it should carry against what it told the server and sends
paced, batched control messages. Frames go through :mod:`.binance_parse`,
REST requests through :mod:`._binance_rest`. A per-stream
watchdog, the connection age and ``serverShutdown`` start a replacement
connection; the old one is closed ``overlap`` seconds after the new one
delivered data. Every stream whose connection is down or stalled is reported
stale, channel by channel, until data flows again.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import aiohttp

from ...backoff import ConnectBudget, backoff
from ...channels import Channel
from ...clock import wall_ms
from ...config import Settings
from ...errors import ErrorCode, ProtocolError, UpstreamError
from ...events import Event, Kline
from ...marketdata import SymbolInfo
from ..base import SourceHealth, SourceKind, SourceSink
from .connection import Connection, process_exception
from .history import BinanceHistory
from .parse import (
    DataFrame,
    Normalizer,
    Reply,
    ServerShutdown,
    parse_exchange_info,
    parse_frame,
    stream_kind,
    stream_of,
)
from .rest import RestClient, snapshot_request


__all__ = ["BinanceHealth", "BinanceSource", "process_exception"]

logger = logging.getLogger("tickwire.upstream.binance")


class BinanceHealth(SourceHealth, kw_only=True):
    active_streams: int
    connects: int
    rotations: int
    garbage_frames: int
    duplicates_dropped: int
    refused_subscriptions: int
    rest_blocked_seconds: float
    symbols: int | None  # symbols listed by exchangeInfo; None before the first answer


class BinanceSource:
    """Binance Spot market data for every market channel kind.

    Args:
        ws_url: stream base URL (``wss://stream.binance.com:9443``).
        rest_url: REST base URL (``https://api.binance.com``).
        rotate_after: seconds after which a connection is replaced, make-before-break.
        max_streams: streams per connection before another one is opened (venue: 1024).
        control_interval: seconds between two control messages on one connection.
        stall_after: seconds without data after which a stream of that type
            (``trade``, ``kline``, ``ticker``, ``depth``) is stale and its connection replaced.
        silence_timeout: seconds without any frame (pings included) before a connection is dropped.
        overlap: seconds both connections run after the replacement delivered data.
        backoff_initial, backoff_max: reconnect delays, seconds.
        policy_backoff: least delay, seconds, before reconnecting after a 1008 close.
        connect_limit, connect_window: connection attempts allowed per window (seconds).
        exchange_info_ttl: seconds between symbol list refreshes.
        snapshot_fresh: a value younger than this (seconds) needs no REST snapshot.
        snapshot_wait: longest ``Retry-After`` (seconds) a snapshot waits for.
        rest_timeout: seconds per REST request.
    """

    name = "binance"
    kind = SourceKind.LIVE

    # -- venue facts (see the module docstring for sources) --
    MAX_STREAMS_PER_CONNECTION = 1024
    INCOMING_MESSAGES_PER_SECOND = 5
    CONNECTS_PER_WINDOW = 300
    CONNECT_WINDOW_SECONDS = 300.0
    CONNECTION_LIFETIME_SECONDS = 24 * 3600.0
    SERVER_PING_SECONDS = 20.0
    PONG_DEADLINE_SECONDS = 60.0
    MAX_URL_LENGTH = 4000  # the server cuts near 8000 characters; stay well under
    MAX_PARAMS_PER_MESSAGE = 200  # keep one SUBSCRIBE far below the ~8000-character frame trouble
    REST_WEIGHT_PER_MINUTE = 6000
    REST_WEIGHTS: Mapping[str, int] = {
        "/api/v3/exchangeInfo": 20,
        "/api/v3/ticker/24hr": 2,
        "/api/v3/klines": 2,
        "/api/v3/depth": 5,  # limit 1-100
    }
    STALL_SECONDS: Mapping[str, float] = {"ticker": 30.0, "kline": 30.0, "depth": 30.0, "trade": 300.0}
    """Default watchdogs: tickers come every 1 s, klines every 2 s, books every 100 ms;
    a quiet symbol may not trade for minutes."""

    def __init__(
        self,
        *,
        ws_url: str = "wss://stream.binance.com:9443",
        rest_url: str = "https://api.binance.com",
        rotate_after: float = 23 * 3600.0,
        max_streams: int = 1024,
        control_interval: float = 0.3,
        stall_after: Mapping[str, float] | None = None,
        silence_timeout: float = 60.0,
        overlap: float = 1.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        policy_backoff: float = 30.0,
        connect_limit: int = 250,
        connect_window: float = 300.0,
        exchange_info_ttl: float = 3600.0,
        snapshot_fresh: float = 5.0,
        snapshot_wait: float = 10.0,
        rest_timeout: float = 10.0,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.ws_url = ws_url.rstrip("/")
        self.rest_url = rest_url.rstrip("/")
        self.rotate_after = rotate_after
        self.max_streams = min(max_streams, self.MAX_STREAMS_PER_CONNECTION)
        self.control_interval = control_interval
        self.stall_after = {**self.STALL_SECONDS, **(stall_after or {})}
        self.silence_timeout = silence_timeout
        self.overlap = overlap
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.policy_backoff = policy_backoff
        self.budget = ConnectBudget(limit=connect_limit, window=connect_window)
        self.exchange_info_ttl = exchange_info_ttl
        self.snapshot_fresh = snapshot_fresh
        self.snapshot_wait = snapshot_wait
        self.rest_timeout = rest_timeout
        self.clock_ms = clock_ms
        self._rng = rng if rng is not None else random.Random()
        self._sink: SourceSink | None = None
        self._http: aiohttp.ClientSession | None = None
        self._running = False
        self._norm = Normalizer()
        self._channels: dict[str, set[str]] = {}  # stream -> open channel names
        self._assign: dict[str, Connection] = {}  # stream -> connection that should carry it
        self._conns: dict[int, Connection] = {}
        self._cids = itertools.count(1)
        self._stale: dict[str, str] = {}  # stream -> reason
        self._since: dict[str, float] = {}  # stream -> last data or (re)subscribe, monotonic
        self._held: dict[str, tuple[Event, float]] = {}  # stream -> newest event, when
        self._snapshotting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._symbols: dict[str, str] | None = None
        self._symbols_at = -math.inf
        self._symbols_lock = asyncio.Lock()
        self._rest = RestClient(
            self.rest_url,
            http=self.http,
            weights=self.REST_WEIGHTS,
            weight_per_minute=self.REST_WEIGHT_PER_MINUTE,
            timeout=rest_timeout,
            clock_ms=clock_ms,
        )
        self.raw_hook: Callable[[str, int], None] | None = None
        """Called with (frame text, receive ms) for every accepted data frame (``tickwire record``)."""
        self.rest_hook: Callable[[str, bytes, int], None] | None = None
        """Called with (stream, body, receive ms) for every REST snapshot used."""
        # counters for /health and tests
        self.connects = 0
        self.reconnects = 0
        self.rotations = 0
        self.garbage_frames = 0
        self.duplicates = 0
        self.refused_subscriptions = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> BinanceSource:
        return cls(
            ws_url=settings.binance_ws_url,
            rest_url=settings.binance_rest_url,
            rotate_after=settings.binance_rotate_after,
        )

    # -- Source protocol ---------------------------------------------------------------

    def attach(self, sink: SourceSink) -> None:
        self._sink = sink

    async def run(self) -> None:
        self._running = True
        self.http()
        for conn in self._conns.values():
            self._start(conn)
        try:
            await self._watch()
        finally:
            self._running = False
            tasks = [c.task for c in self._conns.values() if c.task is not None] + list(self._tasks)
            for conn in list(self._conns.values()):
                conn.stop()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._http is not None:
                await self._http.close()
                self._http = None

    async def validate(self, channel: Channel) -> None:
        if self._symbols is None:
            await self._load_symbols()
        symbols = self._symbols
        if symbols is None:
            logger.warning("symbol list unavailable; %s not checked", channel.name)
            return
        status = symbols.get(channel.symbol or "")
        if status == "TRADING":
            return
        why = "does not list" if status is None else f"lists as {status}, not trading,"
        raise ProtocolError(ErrorCode.UNKNOWN_SYMBOL, f"Binance {why} {channel.symbol}", channel=channel.name)

    def open(self, channel: Channel) -> None:
        stream = stream_of(channel)
        names = self._channels.get(stream)
        held = self._held.get(stream)
        fresh = held is not None and time.monotonic() - held[1] < self.snapshot_fresh
        if names is None:
            self._channels[stream] = {channel.name}
            self._since[stream] = time.monotonic()
            self._place(stream)
            if held is not None and fresh:
                self._emit(held[0])
            else:
                self._snapshot_soon(stream)
            return
        names.add(channel.name)
        reason = self._stale.get(stream)
        if reason is not None:
            self._status(channel.name, False, reason)
        if not fresh:
            self._snapshot_soon(stream)

    def close(self, channel: Channel) -> None:
        stream = stream_of(channel)
        names = self._channels.get(stream)
        if names is None:
            return
        names.discard(channel.name)
        if names:
            return
        del self._channels[stream]
        self._stale.pop(stream, None)
        self._since.pop(stream, None)
        self._assign.pop(stream, None)
        self._norm.forget(stream)
        for conn in list(self._conns.values()):
            if stream in conn.wanted:
                conn.wanted.discard(stream)
                if conn.wanted:
                    conn.dirty.set()
                else:
                    self._drop(conn)

    def known_symbols(self) -> list[str] | None:
        """Symbols trading now per the cached exchangeInfo (None before it loaded)."""
        if self._symbols is None:
            return None
        return sorted(s for s, status in self._symbols.items() if status == "TRADING")

    def streams(self) -> list[str]:
        active: set[str] = set()
        for conn in self._conns.values():
            if conn.ws is not None:
                active |= conn.sent
        return sorted(active)

    @property
    def rest_limited(self) -> int:
        """REST requests answered 429 or 418."""
        return self._rest.limited

    def health(self) -> BinanceHealth:
        return BinanceHealth(
            source=self.name,
            live=not self._stale,
            streams=len(self._channels),
            active_streams=len(self.streams()),
            stale_streams=sorted(self._stale),
            connections=sum(1 for c in self._conns.values() if c.ws is not None),
            connects=self.connects,
            reconnects=self.reconnects,
            rotations=self.rotations,
            garbage_frames=self.garbage_frames,
            duplicates_dropped=self.duplicates,
            refused_subscriptions=self.refused_subscriptions,
            rest_calls=self._rest.calls,
            rest_limited=self.rest_limited,
            rest_blocked_seconds=round(self._rest.blocked_for(time.monotonic()), 1),
            symbols=len(self._symbols) if self._symbols is not None else None,
        )

    # -- market data over HTTP: all in history.py ---------------------------------------------

    @functools.cached_property
    def history(self) -> BinanceHistory:
        return BinanceHistory(self._rest, ttl=self.exchange_info_ttl, clock_ms=self.clock_ms)

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        return await self.history.klines(symbol, interval, limit=limit, end_time=end_time)

    async def symbols(self) -> list[SymbolInfo]:
        return await self.history.symbols()

    # -- plumbing used by connections ------------------------------------------------------

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=10.0)
            self._http = aiohttp.ClientSession(timeout=timeout)
        return self._http

    def new_backoff(self) -> Iterator[float]:
        return backoff(initial=self.backoff_initial, max_delay=self.backoff_max, rng=self._rng)

    def connected(self, conn: Connection, streams: list[str]) -> None:
        now = time.monotonic()
        for stream in streams:
            self._since[stream] = now

    def subscribed(self, streams: list[str]) -> None:
        now = time.monotonic()
        for stream in streams:
            if stream in self._since:
                self._since[stream] = now

    def lost(self, conn: Connection, reason: str) -> None:
        """``conn`` is down: its streams are stale unless another live connection carries them."""
        conn.down_reason = reason
        if not conn.retiring:
            logger.warning("conn %s: %s", conn.cid, reason)
        for stream in list(conn.wanted):
            if stream not in self._channels:
                continue
            if any(c is not conn and c.ws is not None and stream in c.wanted for c in self._conns.values()):
                continue
            self._set_stale(stream, reason)

    def refused(self, streams: list[str], reason: str) -> None:
        self.refused_subscriptions += len(streams)
        for stream in streams:
            if stream in self._channels:
                self._set_stale(stream, reason)

    def garbage(self, conn: Connection, what: str) -> None:
        self.garbage_frames += 1
        logger.warning("conn %s: unusable frame ignored: %s", conn.cid, what)

    def on_frame(self, conn: Connection, text: str, recv_ms: int) -> None:
        try:
            frame = parse_frame(text)
            if isinstance(frame, DataFrame):
                self._on_data(conn, frame, text, recv_ms)
            elif isinstance(frame, Reply):
                conn.on_reply(frame)
            elif isinstance(frame, ServerShutdown):
                logger.info("conn %s: serverShutdown announced; replacing the connection", conn.cid)
                self._rotate(conn, "serverShutdown")
        except UpstreamError as exc:
            self.garbage(conn, str(exc))

    # -- data -----------------------------------------------------------------------------------

    def _on_data(self, conn: Connection, frame: DataFrame, text: str, recv_ms: int) -> None:
        stream = frame.stream
        if stream not in self._channels:
            return  # unsubscribed a moment ago, or not ours
        event = self._norm.accept(stream, frame.data, recv_ms)
        if not conn.got_data:
            conn.got_data = True
            if conn.predecessor is not None:
                asyncio.get_running_loop().call_later(self.overlap, self._retire, conn)
        self._since[stream] = time.monotonic()
        self._set_live(stream)
        if event is None:
            self.duplicates += 1
            return
        self._held[stream] = (event, time.monotonic())
        if self.raw_hook is not None:
            self.raw_hook(text, recv_ms)
        self._emit(event)

    def _emit(self, event: Event) -> None:
        if self._sink is not None:
            self._sink.on_event(event)

    def _status(self, channel: str, live: bool, reason: str | None) -> None:
        if self._sink is not None:
            self._sink.on_status(channel, live, reason)

    def _set_stale(self, stream: str, reason: str) -> None:
        if stream in self._stale:
            return
        self._stale[stream] = reason
        for name in sorted(self._channels.get(stream, ())):
            self._status(name, False, reason)

    def _set_live(self, stream: str) -> None:
        if self._stale.pop(stream, None) is None:
            return
        logger.info("%s flows again", stream)
        for name in sorted(self._channels.get(stream, ())):
            self._status(name, True, None)

    # -- connections ---------------------------------------------------------------------------

    def _place(self, stream: str) -> None:
        for conn in self._conns.values():
            if not conn.retiring and not conn.stopped and len(conn.wanted) < self.max_streams:
                conn.wanted.add(stream)
                self._assign[stream] = conn
                conn.dirty.set()
                if conn.ws is None and conn.down_reason is not None:
                    self._set_stale(stream, conn.down_reason)
                return
        self._new_connection({stream})

    def _new_connection(self, streams: set[str]) -> Connection:
        conn = Connection(self, next(self._cids), streams)
        self._conns[conn.cid] = conn
        for stream in streams:
            self._assign[stream] = conn
        if self._running:
            self._start(conn)
        return conn

    def _start(self, conn: Connection) -> None:
        if conn.task is None and not conn.stopped:
            conn.task = asyncio.get_running_loop().create_task(conn.run(), name=f"binance-conn-{conn.cid}")
            conn.task.add_done_callback(lambda task: self._ended(conn, task))

    def _ended(self, conn: Connection, task: asyncio.Task[None]) -> None:
        if self._conns.get(conn.cid) is conn and (conn.retiring or conn.stopped):
            del self._conns[conn.cid]
        if task.cancelled() or task.exception() is None:
            return
        logger.error(
            "conn %s failed; restarting it in %.0f s", conn.cid, self.backoff_max, exc_info=task.exception()
        )
        self.lost(conn, "upstream connector error")
        conn.task = None
        if self._running and not conn.stopped:
            asyncio.get_running_loop().call_later(self.backoff_max, self._start, conn)

    def _drop(self, conn: Connection) -> None:
        self._conns.pop(conn.cid, None)
        conn.stop()

    def _rotate(self, conn: Connection, why: str) -> None:
        """Replace ``conn`` make-before-break: the new one connects with every stream in its URL."""
        if conn.retiring or conn.stopped or not conn.wanted:
            return
        self.rotations += 1
        logger.info("conn %s: replacing it (%s)", conn.cid, why)
        conn.retiring = True
        new = self._new_connection(set(conn.wanted))
        new.predecessor = conn

    def _retire(self, conn: Connection) -> None:
        old, conn.predecessor = conn.predecessor, None
        if old is not None and not old.stopped:
            logger.info("conn %s: replaced by conn %s", old.cid, conn.cid)
            self._drop(old)

    async def _watch(self) -> None:
        """The per-stream watchdog, connection ages and the symbol-list refresh."""
        tick = max(0.05, min(1.0, min(self.stall_after.values()) / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if conn.ws is not None and not conn.retiring and now - conn.connected_at >= self.rotate_after:
                    self._rotate(conn, f"{self.rotate_after:g} s old")
            for stream, conn in list(self._assign.items()):
                if conn.ws is None or stream in self._stale:
                    continue
                limit = self.stall_after[stream_kind(stream)]
                since = max(self._since.get(stream, now), conn.connected_at)
                if now - since > limit:
                    logger.warning("%s: no data for %.1f s; replacing conn %s", stream, now - since, conn.cid)
                    self._set_stale(stream, f"upstream stalled: no data for {limit:g} s")
                    self._rotate(conn, f"{stream} stalled")
            for stream, (_, at) in list(self._held.items()):
                if now - at > self.snapshot_fresh and stream not in self._channels:
                    del self._held[stream]
            if now - self._symbols_at > self.exchange_info_ttl and not self._symbols_lock.locked():
                self._spawn(self._load_symbols())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- REST ------------------------------------------------------------------------------------

    async def _load_symbols(self) -> None:
        async with self._symbols_lock:
            if time.monotonic() - self._symbols_at < self.exchange_info_ttl:
                return
            body, _, _ = await self._rest.get("/api/v3/exchangeInfo", {})
            if body is None:
                return
            try:
                self._symbols = parse_exchange_info(body)
            except UpstreamError as exc:
                logger.warning("%s", exc)
                return
            self._symbols_at = time.monotonic()
            logger.info("exchangeInfo: %d symbols", len(self._symbols))

    def _snapshot_soon(self, stream: str) -> None:
        if stream not in self._snapshotting and self._running:
            self._snapshotting.add(stream)
            self._spawn(self._snapshot(stream))

    async def _snapshot(self, stream: str) -> None:
        """Fetch the current value of a newly opened stream over REST, unless live data beats it."""
        try:
            request = snapshot_request(stream)
            if request is None:
                return
            path, params = request
            start = self._norm.key(stream)
            body: bytes | None = None
            for _ in range(3):
                body, recv_ms, retry = await self._rest.get(path, params)
                if body is not None or retry is None or retry > self.snapshot_wait:
                    break
                await asyncio.sleep(retry)
                if stream not in self._channels or self._norm.key(stream) != start:
                    return
            if body is None or stream not in self._channels or self._norm.key(stream) != start:
                return
            try:
                event = self._norm.accept_rest(stream, body, recv_ms)
            except UpstreamError as exc:
                logger.warning("%s", exc)
                return
            if event is not None:
                self._held[stream] = (event, time.monotonic())
                if self.rest_hook is not None:
                    self.rest_hook(stream, body, recv_ms)
                self._emit(event)
        finally:
            self._snapshotting.discard(stream)
