"""One Binance combined-stream connection: connect, read, pace and answer.

A :class:`Connection` is one upstream WebSocket of a
:class:`~tickwire.sources.binance.BinanceSource`, reconnected in place after a
drop. It diffs the streams it should carry against what it told the server
and sends batched ``SUBSCRIBE``/``UNSUBSCRIBE`` messages, paced under the
venue's 5 incoming messages per second (the pongs it sends count too). It
answers server pings at once itself (``autoping`` is off, so the pongs are
counted) and never pings the server. Frames go back to the source; the venue's
limits are listed in the docstring of :mod:`tickwire.sources.binance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING

import aiohttp
import msgspec

from ...errors import UpstreamError
from .parse import Reply


if TYPE_CHECKING:
    from .source import BinanceSource


__all__ = ["Connection", "connect_url", "process_exception", "retry_after"]

logger = logging.getLogger("tickwire.upstream.binance")


def process_exception(exc: BaseException) -> BaseException | None:
    """None when a failed connect or a dropped connection is worth retrying;
    the exception itself when it is a bug that retrying cannot fix."""
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError | UpstreamError):
        return None
    return exc


def retry_after(exc: BaseException) -> float:
    """``Retry-After`` of a refused handshake (429/418), else 0."""
    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status in (418, 429) and exc.headers:
        with contextlib.suppress(ValueError):
            return float(exc.headers.get("Retry-After", "0"))
    return 0.0


def connect_url(ws_url: str, streams: list[str], *, max_length: int) -> tuple[str, list[str]]:
    """The connect URL and the streams it carries (the rest go by SUBSCRIBE).

    Args:
        ws_url: the stream base URL, without a trailing slash.
        streams: stream names, in the order they should be put in the URL.
        max_length: the longest URL to build, in characters.
    """
    base = f"{ws_url}/stream?streams="
    included: list[str] = []
    length = len(base)
    for stream in streams:
        if length + len(stream) + 1 > max_length:
            break
        included.append(stream)
        length += len(stream) + 1
    return base + "/".join(included), included


class Connection:
    """One upstream WebSocket (reconnected in place after a drop) and its control channel."""

    def __init__(self, source: BinanceSource, cid: int, streams: set[str]) -> None:
        self.source = source
        self.cid = cid
        self.wanted: set[str] = set(streams)  # streams this connection must carry
        self.sent: set[str] = set()  # streams the server was told about (URL or SUBSCRIBE)
        self.refused: set[str] = set()  # SUBSCRIBE answered with an error: not retried on this socket
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.connected_at = 0.0
        self.down_reason: str | None = None
        self.got_data = False
        self.retiring = False
        self.stopped = False
        self.predecessor: Connection | None = None
        self.pending: dict[int, tuple[str, list[str]]] = {}
        self.dirty = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._sends: deque[float] = deque()  # times of every message we sent (controls and pongs)
        self._last_control = -math.inf

    def __repr__(self) -> str:
        return f"<conn {self.cid} streams={len(self.wanted)}>"

    # -- lifecycle -------------------------------------------------------------

    async def run(self) -> None:
        src = self.source
        delays = src.new_backoff()
        while not self.stopped:
            wait = src.budget.delay(time.monotonic())
            if wait > 0:
                logger.warning("conn %s: connect budget used up, waiting %.1f s", self.cid, wait)
                await asyncio.sleep(wait)
                continue
            src.budget.record(time.monotonic())
            src.connects += 1
            url, included = connect_url(src.ws_url, sorted(self.wanted), max_length=src.MAX_URL_LENGTH)
            try:
                ws = await src.http().ws_connect(
                    url,
                    autoping=False,  # we answer pings ourselves, to count the pongs against 5/s
                    heartbeat=None,  # never ping the server: it pings us every 20 s
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
                    max_msg_size=16 * 1024 * 1024,
                )
            except Exception as exc:
                if process_exception(exc) is not None:
                    raise
                src.lost(self, f"upstream connect failed: {type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(max(next(delays), retry_after(exc)))
                continue
            reason, code = await self._serve(ws, included)
            if self.stopped:
                return
            if self.got_data:
                delays = src.new_backoff()  # this connection worked: start over
            src.lost(self, reason)
            if self.retiring:
                return  # the replacement carries the streams
            delay = next(delays)
            if code == 1008:
                logger.error("conn %s closed with 1008 (rate limit); backing off %.1f s", self.cid, delay)
                delay = max(delay, src.policy_backoff)
            src.reconnects += 1
            await asyncio.sleep(delay)

    async def _serve(
        self, ws: aiohttp.ClientWebSocketResponse, included: list[str]
    ) -> tuple[str, int | None]:
        self.ws = ws
        self.connected_at = time.monotonic()
        self.down_reason = None
        self.got_data = False
        self.sent = set(included)
        self.refused.clear()
        self.pending.clear()
        self.source.connected(self, included)
        logger.info("conn %s: connected with %d streams in the URL", self.cid, len(included))
        self.dirty.set()
        control = asyncio.get_running_loop().create_task(
            self._control(ws), name=f"binance-control-{self.cid}"
        )
        try:
            return await self._read(ws)
        finally:
            control.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await control
            self.ws = None
            self.sent = set()
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 1.0)

    def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()

    # -- reading -------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[str, int | None]:
        src = self.source
        while True:
            try:
                msg = await ws.receive(timeout=src.silence_timeout)
            except TimeoutError:
                return f"upstream silent for {src.silence_timeout:g} s", None
            except (aiohttp.ClientError, ConnectionError) as exc:
                return f"upstream disconnected: {exc}", None
            kind = msg.type
            if kind is aiohttp.WSMsgType.TEXT:
                src.on_frame(self, msg.data, src.clock_ms())
            elif kind is aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
                self._sends.append(time.monotonic())
            elif kind is aiohttp.WSMsgType.BINARY:
                src.garbage(self, f"binary frame of {len(msg.data)} bytes")
            elif kind is aiohttp.WSMsgType.CLOSE:
                code = ws.close_code
                return f"upstream closed the connection ({code} {msg.extra or ''})".strip(), code
            elif kind is aiohttp.WSMsgType.ERROR:
                return f"upstream disconnected: {msg.data}", None
            elif kind in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return "upstream disconnected", ws.close_code

    def on_reply(self, reply: Reply) -> None:
        ident = reply.id
        if ident is None and self.pending:
            ident = min(self.pending)  # the flat error form may come without an id: oldest request
        entry = self.pending.pop(ident, None) if isinstance(ident, int) else None
        if entry is None:
            logger.warning("conn %s: reply to unknown request %r: %r", self.cid, reply.id, reply)
            return
        method, params = entry
        if reply.error is None:
            return
        code, text = reply.error
        logger.warning("conn %s: %s %s refused: code %s %s", self.cid, method, params[:5], code, text)
        if method == "SUBSCRIBE":
            self.sent.difference_update(params)
            self.refused.update(params)
            self.source.refused(params, f"upstream refused the subscription: {text} (code {code})")

    # -- control messages ------------------------------------------------------------

    def _next_batch(self) -> tuple[str, list[str]] | None:
        limit = self.source.MAX_PARAMS_PER_MESSAGE
        subscribe = sorted(self.wanted - self.sent - self.refused)
        if subscribe:
            return "SUBSCRIBE", subscribe[:limit]
        unsubscribe = sorted(self.sent - self.wanted)
        if unsubscribe:
            return "UNSUBSCRIBE", unsubscribe[:limit]
        return None

    async def _pace(self) -> None:
        """Wait until one more control message keeps us under the incoming limit.

        Messages are spaced ``control_interval`` apart, and at most
        ``INCOMING_MESSAGES_PER_SECOND - 2`` of ours (pongs included) may be in
        the last second when one is sent: one slot stays free for a pong.
        """
        src = self.source
        budget = src.INCOMING_MESSAGES_PER_SECOND - 2
        while True:
            now = time.monotonic()
            while self._sends and self._sends[0] <= now - 1.0:
                self._sends.popleft()
            wait = self._last_control + src.control_interval - now
            if len(self._sends) >= budget:
                wait = max(wait, self._sends[0] + 1.0 - now)
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def _control(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            while self._next_batch() is not None:
                await self._pace()
                batch = self._next_batch()  # demand may have changed while we waited
                if batch is None:
                    break
                method, params = batch
                ident = next(self._ids)
                self.pending[ident] = (method, params)
                if method == "SUBSCRIBE":
                    self.sent.update(params)
                    self.source.subscribed(params)
                else:
                    self.sent.difference_update(params)
                request = msgspec.json.encode({"method": method, "params": params, "id": ident})
                await ws.send_str(request.decode())  # a text frame: the venue ignores binary ones
                now = time.monotonic()
                self._last_control = now
                self._sends.append(now)
                logger.debug("conn %s: %s %d streams (id %d)", self.cid, method, len(params), ident)
