"""One Binance combined-stream connection: connect, read, pace and answer.

A :class:`Connection` is one upstream WebSocket, reconnected in place after a
drop. It diffs the streams it should carry (``wanted``, set by its owner)
against what it told the server and sends batched ``SUBSCRIBE``/
``UNSUBSCRIBE`` messages, paced under the venue's 5 incoming messages per
second (the pongs it sends count too). It answers server pings at once
itself (``autoping`` is off, so the pongs are counted) and never pings the
server. It parses each frame just enough to route it: replies to its own
requests stay here, data and ``serverShutdown`` go to its owner through the
small :class:`ConnectionOwner` protocol. Its tunables are one frozen
:class:`ConnectionConfig`; its counters are its own, and the owner sums them.

Two tasks run per socket: the reader (this task) and the control task. If
the control task dies of a bug, the socket is closed, the failure is logged
with its traceback and the connection reconnects: a connection whose
control task is gone would never subscribe anything again. The venue's
limits are listed in the docstring of :mod:`tickwire.sources.binance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import msgspec

from ...backoff import ConnectBudget, backoff
from ...errors import UpstreamError
from .limits import Pacer, connect_url, process_exception, retry_after
from .parse import DataFrame, Reply, ServerShutdown, parse_frame


__all__ = ["Connection", "ConnectionConfig", "ConnectionCounters", "ConnectionOwner"]

logger = logging.getLogger("tickwire.upstream.binance")

POLICY_VIOLATION = 1008  # the venue's close code for "Too many requests"


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """What one connection needs to know; shared by all connections of a source.

    Args:
        ws_url: stream base URL, without a trailing slash.
        rotate_after: seconds after which the owner is asked to replace the connection.
        silence_timeout: seconds without any frame (pings included) before the socket is dropped.
        control_interval: least seconds between two control messages.
        incoming_per_second: the venue's limit on messages we send per second.
        max_params: streams per ``SUBSCRIBE``/``UNSUBSCRIBE``.
        max_url_length: longest connect URL, characters.
        backoff_initial, backoff_max: reconnect delays, seconds.
        policy_backoff: least delay, seconds, before reconnecting after a 1008 close.
        connect_timeout: seconds for the TCP and WebSocket handshake.
    """

    ws_url: str = "wss://stream.binance.com:9443"
    rotate_after: float = 23 * 3600.0
    silence_timeout: float = 60.0
    control_interval: float = 0.3
    incoming_per_second: int = 5
    max_params: int = 200
    max_url_length: int = 4000
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    policy_backoff: float = 30.0
    connect_timeout: float = 10.0


@dataclass(slots=True)
class ConnectionCounters:
    """Counters of one connection since it was made; the owner sums them for ``/health``."""

    connects: int = 0  # connection attempts
    reconnects: int = 0  # reconnects after an unplanned drop
    garbage_frames: int = 0  # frames that could not be used
    refused_subscriptions: int = 0  # streams a SUBSCRIBE was refused for
    control_failures: int = 0  # control tasks that died of a bug

    def add(self, other: ConnectionCounters) -> None:
        self.connects += other.connects
        self.reconnects += other.reconnects
        self.garbage_frames += other.garbage_frames
        self.refused_subscriptions += other.refused_subscriptions
        self.control_failures += other.control_failures


class ConnectionOwner(Protocol):
    """What a :class:`Connection` tells (and asks) the source that owns it."""

    def http(self) -> aiohttp.ClientSession:
        """The shared HTTP client session."""

    def deliver(self, conn: Connection, frame: DataFrame, text: str, recv_ms: int) -> None:
        """A data frame arrived (``text`` verbatim, received at ``recv_ms``)."""

    def streams_sent(self, conn: Connection, streams: list[str]) -> None:
        """The server was just asked for ``streams`` (connect URL or SUBSCRIBE)."""

    def lost(self, conn: Connection, reason: str) -> None:
        """The socket is down (or never came up); ``reason`` is for people."""

    def refused(self, conn: Connection, streams: list[str], reason: str) -> None:
        """The server refused to subscribe ``streams``."""

    def replace(self, conn: Connection, why: str) -> None:
        """Replace ``conn`` make-before-break (``serverShutdown``, or it is ``rotate_after`` old)."""


class Connection:
    """One upstream WebSocket (reconnected in place after a drop) and its control channel.

    Args:
        owner: the source it reports to.
        cid: its number, for logs.
        streams: the streams it should carry first.
        config: its tunables.
        budget: the connect budget shared by every connection of the IP.
        rng: randomness for the reconnect jitter.
        clock_ms: wall clock, ms, for the receive time of a frame.
    """

    def __init__(
        self,
        owner: ConnectionOwner,
        cid: int,
        streams: set[str],
        *,
        config: ConnectionConfig,
        budget: ConnectBudget,
        rng: random.Random,
        clock_ms: Callable[[], int],
    ) -> None:
        self.owner = owner
        self.cid = cid
        self.config = config
        self.counters = ConnectionCounters()
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
        self._budget = budget
        self._rng = rng
        self._clock_ms = clock_ms
        self._ids = itertools.count(1)
        self._pacer = Pacer(interval=config.control_interval, per_second=config.incoming_per_second)

    def __repr__(self) -> str:
        return f"<conn {self.cid} streams={len(self.wanted)}>"

    # -- what the owner changes ---------------------------------------------------

    def want(self, stream: str) -> None:
        self.wanted.add(stream)
        self.dirty.set()

    def unwant(self, stream: str) -> None:
        self.wanted.discard(stream)
        self.dirty.set()

    def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()

    # -- lifecycle -------------------------------------------------------------

    def _backoff(self) -> Iterator[float]:
        cfg = self.config
        return backoff(initial=cfg.backoff_initial, max_delay=cfg.backoff_max, rng=self._rng)

    async def run(self) -> None:
        delays = self._backoff()
        while not self.stopped:
            wait = self._budget.delay(time.monotonic())
            if wait > 0:
                logger.warning("conn %s: connect budget used up, waiting %.1f s", self.cid, wait)
                await asyncio.sleep(wait)
                continue
            self._budget.record(time.monotonic())
            self.counters.connects += 1
            try:
                ws, included = await self._connect()
            except Exception as exc:
                if process_exception(exc) is not None:
                    raise
                self.owner.lost(self, f"upstream connect failed: {type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(max(next(delays), retry_after(exc)))
                continue
            reason, code = await self._serve(ws, included)
            if self.stopped:
                return
            if self.got_data:
                delays = self._backoff()  # this connection worked: start over
            self.owner.lost(self, reason)
            if self.retiring:
                return  # the replacement carries the streams
            self.counters.reconnects += 1
            await asyncio.sleep(self._reconnect_delay(next(delays), code))

    def _reconnect_delay(self, delay: float, code: int | None) -> float:
        """The backoff delay, but at least ``policy_backoff`` after a 1008: the venue
        bans IPs that keep reconnecting into its rate limit."""
        if code != POLICY_VIOLATION:
            return delay
        delay = max(delay, self.config.policy_backoff)
        logger.error("conn %s closed with 1008 (rate limit); backing off %.1f s", self.cid, delay)
        return delay

    async def _connect(self) -> tuple[aiohttp.ClientWebSocketResponse, list[str]]:
        cfg = self.config
        url, included = connect_url(cfg.ws_url, sorted(self.wanted), max_length=cfg.max_url_length)
        ws = await self.owner.http().ws_connect(
            url,
            autoping=False,  # we answer pings ourselves, to count the pongs against 5/s
            heartbeat=None,  # never ping the server: it pings us every 20 s
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
            max_msg_size=16 * 1024 * 1024,
        )
        return ws, included

    async def _serve(
        self, ws: aiohttp.ClientWebSocketResponse, included: list[str]
    ) -> tuple[str, int | None]:
        """Read ``ws`` until it ends; (why it ended, close code)."""
        self.ws = ws
        self.connected_at = time.monotonic()
        self.down_reason = None
        self.got_data = False
        self.sent = set(included)
        self.refused.clear()
        self.pending.clear()
        self.owner.streams_sent(self, included)
        logger.info("conn %s: connected with %d streams in the URL", self.cid, len(included))
        self.dirty.set()
        loop = asyncio.get_running_loop()
        aging = loop.call_later(self.config.rotate_after, self._aged)
        control = loop.create_task(self._control(ws), name=f"binance-control-{self.cid}")
        reader = loop.create_task(self._read(ws), name=f"binance-read-{self.cid}")
        try:
            await asyncio.wait((reader, control), return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                return self._control_failed(control)
            return reader.result()
        finally:
            aging.cancel()
            for task in (control, reader):
                task.cancel()
            for task in (control, reader):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.ws = None
            self.sent = set()
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 1.0)

    def _control_failed(self, control: asyncio.Task[None]) -> tuple[str, int | None]:
        """The control task ended while the socket is up: a bug. Say so, and reconnect."""
        exc = None if control.cancelled() else control.exception()
        self.counters.control_failures += 1
        logger.error(
            "conn %s: control task failed; reconnecting", self.cid, exc_info=exc or RuntimeError("ended")
        )
        return f"upstream connector error: control task failed ({type(exc).__name__})", None

    def _aged(self) -> None:
        if not self.retiring and not self.stopped:
            self.owner.replace(self, f"{self.config.rotate_after:g} s old")

    # -- reading -------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[str, int | None]:
        silence = self.config.silence_timeout
        while True:
            try:
                msg = await ws.receive(timeout=silence)
            except TimeoutError:
                return f"upstream silent for {silence:g} s", None
            except (aiohttp.ClientError, ConnectionError) as exc:
                return f"upstream disconnected: {exc}", None
            kind = msg.type
            if kind is aiohttp.WSMsgType.TEXT:
                self._on_text(msg.data, self._clock_ms())
            elif kind is aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
                self._pacer.sent(time.monotonic())
            elif kind is aiohttp.WSMsgType.BINARY:
                self._garbage(f"binary frame of {len(msg.data)} bytes")
            elif kind is aiohttp.WSMsgType.CLOSE:
                code = ws.close_code
                return f"upstream closed the connection ({code} {msg.extra or ''})".strip(), code
            elif kind is aiohttp.WSMsgType.ERROR:
                return f"upstream disconnected: {msg.data}", None
            elif kind in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return "upstream disconnected", ws.close_code

    def _on_text(self, text: str, recv_ms: int) -> None:
        try:
            frame = parse_frame(text)
        except UpstreamError as exc:
            self._garbage(str(exc))
            return
        if isinstance(frame, DataFrame):
            self.owner.deliver(self, frame, text, recv_ms)
        elif isinstance(frame, Reply):
            self.on_reply(frame)
        elif isinstance(frame, ServerShutdown):
            logger.info("conn %s: serverShutdown announced; replacing the connection", self.cid)
            self.owner.replace(self, "serverShutdown")

    def _garbage(self, what: str) -> None:
        self.counters.garbage_frames += 1
        logger.warning("conn %s: unusable frame ignored: %s", self.cid, what)

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
            self.counters.refused_subscriptions += len(params)
            self.owner.refused(self, params, f"upstream refused the subscription: {text} (code {code})")

    # -- control messages ------------------------------------------------------------

    def _next_batch(self) -> tuple[str, list[str]] | None:
        limit = self.config.max_params
        subscribe = sorted(self.wanted - self.sent - self.refused)
        if subscribe:
            return "SUBSCRIBE", subscribe[:limit]
        unsubscribe = sorted(self.sent - self.wanted)
        if unsubscribe:
            return "UNSUBSCRIBE", unsubscribe[:limit]
        return None

    async def _pace(self) -> None:
        """Wait until one more control message keeps us under the incoming limit."""
        while True:
            wait = self._pacer.wait(time.monotonic())
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
                try:
                    await self._send_control(ws, *batch)
                except (aiohttp.ClientError, ConnectionError):
                    await asyncio.Event().wait()  # the socket is going: the reader reports why

    async def _send_control(
        self, ws: aiohttp.ClientWebSocketResponse, method: str, params: list[str]
    ) -> None:
        ident = next(self._ids)
        self.pending[ident] = (method, params)
        if method == "SUBSCRIBE":
            self.sent.update(params)
            self.owner.streams_sent(self, params)
        else:
            self.sent.difference_update(params)
        request = msgspec.json.encode({"method": method, "params": params, "id": ident})
        await ws.send_str(request.decode())  # a text frame: the venue ignores binary ones
        self._pacer.sent(time.monotonic(), control=True)
        logger.debug("conn %s: %s %d streams (id %d)", self.cid, method, len(params), ident)
