"""The feed's socket: open, greet, read until it closes, reconnect by the close code.

A mixin of :class:`~tickwire.client.feed.Feed`: one background task runs
:meth:`FeedConnection._run`, which serves one connection at a time
(:meth:`FeedConnection._serve`: the welcome, the resubscribe, then every
frame to ``_dispatch``) and, when it ends, asks :func:`.backoff.policy` what
the close code means: reconnect soon, back off, back off longer, wait for a
new token, or end the iteration with the error. The methods run on the
feed's own state, which the ``TYPE_CHECKING`` block names.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import msgspec

from .backoff import Action, backoff, policy
from .errors import ClientError, ConnectionClosed, _EarlyClose
from .messages import Connected, Disconnected, decode


if TYPE_CHECKING:
    from .book import Book
    from .messages import Message
    from .requests import Request


__all__ = ["FeedConnection"]

logger = logging.getLogger("tickwire.client")

_STABLE_AFTER = 2.0
"""Seconds a connection must last before the back-off starts again from its minimum."""


class FeedConnection:
    """Connect, serve and reconnect (the connection task of a feed)."""

    if TYPE_CHECKING:  # provided by Feed
        url: str
        connections: int
        _token: str | None
        _min_delay: float
        _max_delay: float
        _long_delay: float
        _heartbeat: float | None
        _open_timeout: float
        _rng: random.Random
        _http: aiohttp.ClientSession | None
        _ws: aiohttp.ClientWebSocketResponse | None
        _token_changed: asyncio.Event
        _failure: ClientError | None
        _channels: dict[str, None]
        _books: dict[str, Book]
        _requests: dict[int, Request]
        _queue: asyncio.Queue[Message | ClientError | None]

        async def _emit(self, msg: Message) -> None: ...
        async def _dispatch(self, frame: str) -> None: ...
        async def _resubscribe(self, names: list[str] | None = None) -> None: ...

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
