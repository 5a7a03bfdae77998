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

The code: this module holds the lifecycle, the requests and the iteration;
:mod:`.subscriptions` the remembered channels and every frame read
(:class:`~.subscriptions.FeedSubscriptions`), :mod:`.connection` the socket
and the reconnect loop (:class:`~.connection.FeedConnection`): mixins of
:class:`Feed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..channels import parse_channel
from ..marketdata import SymbolInfo
from .book import Book
from .connection import FeedConnection
from .errors import ClientError, ConnectionClosed, SubscriptionError, _EarlyClose
from .market import fetch_klines, fetch_symbols, http_base
from .messages import Gap, KlineData, Message, NotRecovered, Recovered, Status
from .positions import Positions
from .requests import Reply as _Reply, Request as _Request
from .subscriptions import DATA, FeedSubscriptions


__all__ = ["ClientError", "ConnectionClosed", "Feed", "SubscriptionError", "connect", "ws_url"]


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


class Feed(FeedSubscriptions, FeedConnection):
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
                isinstance(item, (*DATA, Status, Gap, Recovered, NotRecovered))
                and item.channel not in self._channels
            ):
                continue  # queued before an unsubscribe() returned
            return item

    async def _emit(self, msg: Message) -> None:
        await self._queue.put(msg)  # waits while the caller is behind: backpressure
