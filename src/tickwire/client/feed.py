"""The client connection: one WebSocket to a gateway, kept alive.

Theory of operation:

* ``async with connect(url) as feed`` makes the first connection and waits
  for the gateway's ``connected`` welcome (a wrong URL fails here, loudly).
  Then one background task owns the socket: it reads frames, decodes them
  (:mod:`.messages`), answers pending requests and queues everything else
  for ``async for msg in feed``.
* The queue is bounded. A caller that does not keep up stops the reader,
  the socket buffer fills, and the gateway conflates latest-value channels
  for us (seen here as :class:`~.messages.Gap` markers) or, on
  every-message channels, closes with 4008; we then reconnect.
* Subscriptions are remembered by canonical name. After every reconnect the
  feed subscribes to all of them again in one message, before it reads the
  first data frame of the new connection, with the position it holds in
  each (``since``: :mod:`.positions`), so the gateway replays what was
  missed; each channel then yields :class:`~.messages.Recovered` or
  :class:`~.messages.NotRecovered` (docs/resume.md).
* ``seq`` is tracked per channel. A jump forward yields a ``Gap`` before the
  message; a snapshot, or a ``seq`` that went back (a restarted gateway
  numbers from 1 again), resets the expectation silently. A throttled
  channel (``subscribe(..., throttle_ms=)``) skips seq numbers by design, so
  it yields no ``Gap``; its throttle is subscribed again after a reconnect.
* ``await feed.book(channel)`` gives a :class:`~.book.Book` the feed keeps
  in step: every message of its channel is applied before it is yielded, a
  gap or a checksum mismatch subscribes to the channel again (the gateway
  re-sends the snapshot), and a lost connection suspends it: a book still in
  step resumes with ``since`` (the missed diffs, or a snapshot), one that
  was not asks for the snapshot.
* When a connection ends, the close code decides (:func:`.backoff.policy`):
  reconnect soon, back off, back off longer, wait for a new token, or raise
  from the iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import msgspec

from ..channels import Delivery, parse_channel
from ..marketdata import SymbolInfo
from ..messages import SubscribeOptions
from ..protocol import THROTTLE_MAX_MS, THROTTLE_MIN_MS, THROTTLE_STEP_MS
from .backoff import Action, backoff, policy
from .book import RESYNC, Book
from .errors import ClientError, ConnectionClosed, SubscriptionError, _EarlyClose
from .market import fetch_klines, fetch_symbols, http_base
from .messages import (
    Account,
    Authenticated,
    BookMessage,
    Connected,
    Depth,
    Disconnected,
    Error,
    Gap,
    Kline,
    KlineData,
    Message,
    NotRecovered,
    Order,
    Pong,
    Portfolio,
    Price,
    Recovered,
    Signal,
    Status,
    Subscribed,
    Subscriptions,
    Ticker,
    Trade,
    Unsubscribed,
    decode,
)
from .positions import Positions
from .requests import Reply as _Reply, Request as _Request


__all__ = ["ClientError", "ConnectionClosed", "Feed", "SubscriptionError", "connect", "ws_url"]

logger = logging.getLogger("tickwire.client")

_DATA = (Price, Ticker, Kline, Trade, Depth, BookMessage, Signal, Order, Portfolio, Account)
_REPLIES = (Subscribed, Unsubscribed, Error, Pong, Authenticated, Subscriptions)
_STABLE_AFTER = 2.0
"""Seconds a connection must last before the back-off starts again from its minimum."""


def ws_url(url: str) -> str:
    """The WebSocket URL for ``url``: ``http(s)://host:port`` becomes ``ws(s)://host:port/ws``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a ws://, wss://, http:// or https:// URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def connect(url: str, token: str | None = None, **options: Any) -> Feed:
    """Open a feed: ``async with connect("ws://127.0.0.1:3000/ws") as feed: ...``.

    Args:
        url: the gateway's ``/ws`` URL (an ``http://host:port`` base works too).
        token: a JWT, sent as ``?token=``; replace it later with :meth:`Feed.set_token`.
        options: keyword options of :class:`Feed`.
    """
    return Feed(url, token, **options)


class Feed:
    """A live, self-healing subscription to a gateway; iterate it for messages.

    Args:
        url: the gateway's ``/ws`` URL.
        token: a JWT for private channels.
        min_delay: seconds; the first reconnect waits up to this (jittered).
        max_delay: seconds; the cap of the exponential back-off.
        long_delay: seconds; the least wait after 4008 (slow consumer) and 4029
            (too many connections); the wait is drawn from [x, 1.5 x].
        heartbeat: seconds between our WebSocket pings; a silent server is dropped.
        open_timeout: seconds for the handshake and the welcome.
        request_timeout: seconds to wait for the replies to subscribe/unsubscribe/ping.
        max_queue: messages held for a caller that has not read them yet.
        rng: random source of the jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        min_delay: float = 0.5,
        max_delay: float = 30.0,
        long_delay: float = 10.0,
        heartbeat: float | None = 20.0,
        open_timeout: float = 10.0,
        request_timeout: float = 10.0,
        max_queue: int = 4096,
        rng: random.Random | None = None,
    ) -> None:
        self.url = ws_url(url)
        self._token = token
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._long_delay = long_delay
        self._heartbeat = heartbeat
        self._open_timeout = open_timeout
        self._request_timeout = request_timeout
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[Message | ClientError | None] = asyncio.Queue(max_queue)
        self._channels: dict[str, None] = {}  # remembered subscriptions, in order
        self._positions = Positions()  # (epoch, seq) per channel, sent as `since` on reconnects
        self._throttles: dict[str, int] = {}  # channel -> throttle in force (ms), throttled ones only
        self._books: dict[str, Book] = {}  # the books kept in step (Feed.book)
        self._requests: dict[int, _Request] = {}
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._token_changed = asyncio.Event()
        self._failure: ClientError | None = None
        self._closed = False
        self.connections = 0
        """Connections made so far (1 after ``async with``; +1 per reconnect)."""
        self.gaps = 0
        """Gap markers yielded so far."""
        self.resumes: list[Recovered | NotRecovered] = []
        """How each channel resumed after each reconnect, in order (also yielded as messages)."""

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession()
        try:
            ws, welcome = await self._open()
        except _EarlyClose as exc:
            await self._http.close()
            raise ConnectionClosed(exc.code, exc.reason) from None
        except BaseException:
            await self._http.close()
            raise
        self._ws = ws  # subscribe() right after this sends at once
        self._task = asyncio.get_running_loop().create_task(self._run(ws, welcome), name="tickwire-feed")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection and end the iteration (idempotent)."""
        if self._closed and self._task is None:
            return
        self._closed = True
        tasks = [t for t in (self._task, *self._side_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._http is not None:
            await self._http.close()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # wake a reader blocked in __anext__

    @property
    def connected(self) -> bool:
        """True while a connection is open and greeted."""
        return self._ws is not None and not self._ws.closed

    def position(self, channel: str) -> tuple[str, int] | None:
        """``(epoch, seq)`` this feed holds in ``channel`` (what a reconnect resumes from)."""
        return self._positions.get(parse_channel(channel).name)

    @property
    def channels(self) -> tuple[str, ...]:
        """The remembered subscriptions (canonical names), subscribed again after a reconnect."""
        return tuple(self._channels)

    # -- requests ----------------------------------------------------------------

    async def subscribe(self, *channels: str, throttle_ms: int | None = None) -> list[str]:
        """Subscribe to ``channels`` and remember them for reconnects.

        Names are checked and normalized here first (``price:btcusdt`` is
        ``price:BTCUSDT``). While disconnected, the channels are only
        remembered; they are subscribed on the next connection, and a refusal
        then arrives in the stream as an :class:`~.messages.Error`.

        Args:
            throttle_ms: at most one message per this many ms on each channel,
                always the newest (docs/protocol.md, "Throttle per subscription"):
                0 removes a throttle; 100 to 60,000, rounded up to a multiple of
                50 by the gateway (:meth:`options` then says the value in force).
                Without it, a channel keeps the throttle it has. Latest-value and
                book channels only.

        Returns:
            the canonical channel names.

        Raises:
            ProtocolError: a malformed channel name (nothing is sent).
            ValueError: a throttle out of range, or on an every-message channel
                (trades, signals, private), which takes none (nothing is sent).
            SubscriptionError: the gateway refused some channels (unknown
                symbol, private channel without token, limit); the others
                are subscribed.
            TimeoutError: no reply within ``request_timeout``.
        """
        names = self._names(channels)
        body: dict[str, Any] = {"type": "subscribe", "channels": names}
        if throttle_ms is not None:
            body["options"] = {"throttleMs": _checked_throttle(names, throttle_ms)}
        for name in names:
            self._channels[name] = None
            if throttle_ms is not None:
                self._note_throttle(name, -(-throttle_ms // THROTTLE_STEP_MS) * THROTTLE_STEP_MS)
        answers = await self._request(body, len(names))
        errors = [a for a in answers if isinstance(a, Error)]
        for error in errors:
            refused = [error.channel] if error.channel is not None else names
            for name in refused:
                self._channels.pop(name, None)
                self._throttles.pop(name, None)
        if errors:
            raise SubscriptionError(errors)
        return names

    async def book(self, channel: str) -> Book:
        """Subscribe to a ``book:SYMBOL:DEPTH`` channel and return its local book, kept in step.

        The feed applies each message of the channel to the book before
        yielding it (so the book is current when you see the message), and
        asks for the snapshot again on a seq gap or a checksum mismatch.
        Asking twice for one channel returns the same book.

        Raises:
            ValueError: not a ``book:`` channel.
            SubscriptionError, TimeoutError: as :meth:`subscribe`.
        """
        [name] = self._names((channel,))
        if not name.startswith("book:"):
            raise ValueError(f"not a book channel: {name}")
        book = self._books.setdefault(name, Book(name))
        try:
            await self.subscribe(name)
        except SubscriptionError:
            self._books.pop(name, None)
            raise
        return book

    async def unsubscribe(self, *channels: str) -> list[str]:
        """Leave ``channels``; no message of them is yielded after this returns."""
        names = self._names(channels)
        for name in names:
            self._channels.pop(name, None)
            self._positions.forget(name)
            self._throttles.pop(name, None)
            self._books.pop(name, None)
        await self._request({"type": "unsubscribe", "channels": names}, len(names))
        return names

    def options(self, channel: str) -> SubscribeOptions:
        """The options in force on ``channel``, as the gateway's last ack stated them."""
        return SubscribeOptions(self._throttles.get(parse_channel(channel).name, 0))

    def _note_throttle(self, channel: str, ms: int) -> None:
        if ms:
            self._throttles[channel] = ms
        else:
            self._throttles.pop(channel, None)

    async def ping(self) -> float:
        """An application-level round trip; returns it in seconds.

        Raises:
            ConnectionError: not connected right now.
        """
        if not self.connected:
            raise ConnectionError("not connected")
        start = time.perf_counter()
        await self._request({"type": "ping"}, 1)
        return time.perf_counter() - start

    async def klines(
        self, symbol: str, interval: str, *, limit: int | None = None, end_time: int | None = None
    ) -> list[KlineData]:
        """Candles of ``symbol`` from the same gateway over HTTP (``GET /api/v1/klines``), oldest first.

        Args:
            limit: 1 to 1000 candles (the gateway's default: 500).
            end_time: ms; the newest candle is the last opening at or before it (default: now).

        Raises:
            MarketDataError: refused (400) or the upstream cannot answer (503).
        """
        return await fetch_klines(
            self._session(), http_base(self.url), symbol, interval,
            limit=limit, end_time=end_time, request_timeout=self._request_timeout,
        )  # fmt: skip

    async def symbols(self) -> list[SymbolInfo]:
        """The symbols of the gateway's source (``GET /api/v1/symbols``).

        Raises:
            MarketDataError: the upstream cannot answer (503).
        """
        return await fetch_symbols(
            self._session(), http_base(self.url), request_timeout=self._request_timeout
        )

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            raise ClientError("the feed is not open: use `async with connect(url) as feed`")
        return self._http

    def set_token(self, token: str | None) -> None:
        """Use ``token`` from now on: sent with ``auth`` now, and on every reconnect.

        After a 4001 close (token expired), the feed reconnects as soon as this is called.
        """
        self._token = token
        self._token_changed.set()
        if token is not None and self.connected:
            task = asyncio.get_running_loop().create_task(
                self._request({"type": "auth", "token": token}, 1, emit=True)
            )
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    def _names(self, channels: tuple[str, ...]) -> list[str]:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise ClientError("the feed is closed")
        if not channels:
            raise ValueError("name at least one channel")
        return list(dict.fromkeys(parse_channel(c).name for c in channels))

    async def _request(self, body: dict[str, Any], expected: int, *, emit: bool = False) -> list[_Reply]:
        """Send ``body`` with a fresh ``id`` and wait for its replies.

        If the connection drops meanwhile, returns what arrived so far: the
        remembered state is sent again on the next connection.
        """
        ws = self._ws
        if ws is None or ws.closed:
            return []
        ref = next(self._ids)
        future: asyncio.Future[list[_Reply]] = asyncio.get_running_loop().create_future()
        self._requests[ref] = _Request(expected, future, emit=emit)
        try:
            await ws.send_str(json.dumps({**body, "id": ref}))
            async with asyncio.timeout(self._request_timeout):
                return await future
        except (ConnectionError, aiohttp.ClientError):
            return []
        finally:
            self._requests.pop(ref, None)

    # -- iteration ---------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        while True:
            if self._closed and self._queue.empty():
                raise StopAsyncIteration
            item = await self._queue.get()
            if item is None:
                raise StopAsyncIteration
            if isinstance(item, ClientError):
                self._closed = True
                raise item
            if (
                isinstance(item, (*_DATA, Status, Gap, Recovered, NotRecovered))
                and item.channel not in self._channels
            ):
                continue  # queued before an unsubscribe() returned
            return item

    async def _emit(self, msg: Message) -> None:
        await self._queue.put(msg)  # waits while the caller is behind: backpressure

    # -- the connection task ---------------------------------------------------------

    def _full_url(self) -> str:
        if self._token is None:
            return self.url
        parts = urlsplit(self.url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "token"] + [("token", self._token)]
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _open(self) -> tuple[aiohttp.ClientWebSocketResponse, Connected]:
        """Connect and read the welcome.

        Raises:
            _EarlyClose: the server closed before its welcome.
            aiohttp.ClientError, OSError, TimeoutError: no connection.
        """
        assert self._http is not None
        async with asyncio.timeout(self._open_timeout):
            ws = await self._http.ws_connect(self._full_url(), heartbeat=self._heartbeat)
            try:
                first = await ws.receive()
                if first.type is aiohttp.WSMsgType.TEXT:
                    welcome = decode(first.data)
                    if isinstance(welcome, Connected):
                        return ws, welcome
                    raise _EarlyClose(None, f"expected 'connected' first, got {type(welcome).__name__}")
                raise _EarlyClose(ws.close_code, str(first.extra or "closed before the welcome"))
            except BaseException:
                await ws.close()
                raise

    async def _run(self, ws: aiohttp.ClientWebSocketResponse | None, welcome: Connected) -> None:
        """Serve connections until closed or a fatal close code (see :mod:`.backoff`)."""
        delays = self._backoff()
        attempt = 0
        code: int | None = None
        reason = ""
        while True:
            if ws is not None:
                started = time.monotonic()
                code, reason = await self._serve(ws, welcome)
                ws = None
                if time.monotonic() - started >= _STABLE_AFTER:
                    delays, attempt = self._backoff(), 0
            action = policy(code)
            logger.info("disconnected from %s: code=%s %s (%s)", self.url, code, reason, action.value)
            if action is Action.FATAL:
                await self._fail(ConnectionClosed(code, reason))
                return
            attempt += 1
            if action is Action.WAIT_TOKEN:
                self._token_changed.clear()
                await self._emit(Disconnected(code, reason, None, attempt))
                await self._token_changed.wait()
            else:
                delay = self._delay(action, delays)
                await self._emit(Disconnected(code, reason, round(delay, 3), attempt))
                await asyncio.sleep(delay)
            try:
                ws, welcome = await self._open()
            except _EarlyClose as exc:
                code, reason = exc.code, exc.reason
            except aiohttp.WSServerHandshakeError as exc:
                code, reason = self._handshake_code(exc), f"handshake refused: HTTP {exc.status}"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                code, reason = None, str(exc) or type(exc).__name__

    def _backoff(self) -> Iterator[float]:
        return backoff(initial=self._min_delay, max_delay=self._max_delay, rng=self._rng)

    def _delay(self, action: Action, delays: Iterator[float]) -> float:
        delay = next(delays)
        if action is Action.SOON:
            return self._rng.uniform(0.0, self._min_delay)
        if action is Action.LONG:
            return max(delay, self._rng.uniform(self._long_delay, 1.5 * self._long_delay))
        return delay

    @staticmethod
    def _handshake_code(exc: aiohttp.WSServerHandshakeError) -> int | None:
        if exc.status == 429:
            return 4029  # the same meaning as the close code: slow down
        if exc.status in (400, 401, 403, 404):
            return 1008  # retrying the same request fails the same way
        return None

    async def _fail(self, error: ClientError) -> None:
        self._failure = error
        await self._emit_error(error)

    async def _emit_error(self, error: ClientError) -> None:
        await self._queue.put(error)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, welcome: Connected) -> tuple[int | None, str]:
        """Greet, subscribe again, then read until the socket closes; returns (code, reason)."""
        self._ws = ws
        self.connections += 1
        logger.info("connected to %s as %s", self.url, welcome.clientId)
        try:
            resumed = self.connections > 1
            await self._emit(msgspec.structs.replace(welcome, resumed=resumed) if resumed else welcome)
            if resumed and self._channels:
                await self._resubscribe()
            reason = ""
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._dispatch(msg.data)
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                ):
                    reason = str(msg.extra or "")
                    break
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    reason = str(msg.data)
                    break
        finally:
            self._ws = None
            for book in self._books.values():
                book.suspend()  # in step: the next subscribe resumes it (since); else a snapshot
            for request in self._requests.values():
                request.finish()
            if not ws.closed:
                await ws.close()
        return ws.close_code, reason

    async def _resubscribe(self, names: list[str] | None = None) -> None:
        """Subscribe to ``names`` (every remembered channel) without waiting; errors are yielded.

        One message per throttle in force: options apply to a whole message.
        """
        groups: dict[int, list[str]] = {}
        for name in list(self._channels) if names is None else names:
            groups.setdefault(self._throttles.get(name, 0), []).append(name)
        for ms, group in groups.items():
            body: dict[str, Any] = {"type": "subscribe", "channels": group}
            if ms:
                body["options"] = {"throttleMs": ms}
            await self._send_resubscribe(body, len(group))

    async def _send_resubscribe(self, body: dict[str, Any], replies: int) -> None:
        ref = next(self._ids)
        future: asyncio.Future[list[_Reply]] = asyncio.get_running_loop().create_future()
        self._requests[ref] = _Request(replies, future, emit=True)
        future.add_done_callback(lambda _: self._requests.pop(ref, None))
        assert self._ws is not None
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            # a book resumes only while held in step; a resync asks for its snapshot (no `since`)
            since = self._positions.since(body["channels"], self._books)
            await self._ws.send_str(json.dumps({**body, "id": ref, **({"since": since} if since else {})}))

    async def _dispatch(self, frame: str) -> None:
        try:
            msg = decode(frame)
        except msgspec.DecodeError as exc:
            logger.warning("undecodable frame from %s: %s", self.url, exc)
            return
        if isinstance(msg, Subscribed) and msg.options is not None and msg.channel in self._channels:
            # the value in force (a late ack of a channel left since does not bring it back)
            self._note_throttle(msg.channel, msg.options.throttleMs)
        resumed = self._positions.acked(msg) if isinstance(msg, Subscribed) else None
        if resumed is not None:
            if isinstance(resumed, Recovered) and resumed.channel in self._books:
                self._books[resumed.channel].resume()  # in step again; the replayed diffs follow
            self.resumes.append(resumed)
            await self._emit(resumed)
        if isinstance(msg, _REPLIES) and isinstance(msg.id, int) and msg.id in self._requests:
            request = self._requests[msg.id]
            if request.add(msg):
                self._requests.pop(msg.id, None)
            if not request.emit or isinstance(msg, Subscribed):
                return
            if isinstance(msg, Error) and msg.channel is not None:
                self._channels.pop(msg.channel, None)  # refused on resubscribe: forget it
        if isinstance(msg, _DATA):
            await self._check_seq(msg)
        if isinstance(msg, (BookMessage, Status)) and msg.channel in self._books:
            if self._books[msg.channel].apply(msg) is RESYNC and self._ws is not None:
                await self._resubscribe([msg.channel])  # the gateway re-sends the snapshot
        elif isinstance(msg, Unsubscribed):
            self._channels.pop(msg.channel, None)  # e.g. "re-authenticated" ends private channels
        await self._emit(msg)

    async def _check_seq(self, msg: Message) -> None:
        assert isinstance(msg, _DATA)
        channel = msg.channel
        last = self._positions.seen(channel, msg.seq)
        if (
            last is not None
            and not msg.snapshot
            and msg.seq > last + 1
            and channel in self._channels
            and channel not in self._throttles  # a throttle skips seq numbers by design
        ):
            self.gaps += 1
            await self._emit(Gap(channel, last, msg.seq))


def _checked_throttle(names: list[str], ms: int) -> int:
    """``ms`` if the gateway would take it on every one of ``names``; the gateway rounds it."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise TypeError(f"throttle_ms must be an int, got {type(ms).__name__}")
    if ms and not THROTTLE_MIN_MS <= ms <= THROTTLE_MAX_MS:
        raise ValueError(f"throttle_ms must be 0 or {THROTTLE_MIN_MS} to {THROTTLE_MAX_MS}, got {ms}")
    every = [name for name in names if parse_channel(name).delivery is Delivery.EVERY]
    if ms and every:
        raise ValueError(f"every message matters on {', '.join(every)}: it takes no throttle")
    return ms
