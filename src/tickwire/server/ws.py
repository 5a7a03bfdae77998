"""The WebSocket side of a connection: aiohttp's response with the 1009 hook, the
transport the session writes to (and the gateway's ping sweep watches), and what an
upgraded connection no longer needs."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..errors import CloseCode


__all__ = ["SWEEP", "WebSocket", "WsTransport", "release_http_state"]

SWEEP = "_data_received_cb" in RequestHandler.__slots__ and hasattr(
    web.WebSocketResponse, "_handle_ping_pong_exception"
)
"""Whether this aiohttp lets the gateway's one ping sweep (:mod:`.heartbeat`) replace its
per-connection heartbeat: the sweep hears incoming bytes through the protocol's data
callback and drops a silent peer as aiohttp's heartbeat does. Without them
(an aiohttp that renamed them), each connection keeps aiohttp's own heartbeat."""

_PING = b"\x89\x00"  # a server ping frame with no payload: FIN + ping opcode, unmasked, length 0


class WebSocket(web.WebSocketResponse):
    """aiohttp closes an over-size frame with 1009 before the handler sees it;
    this hook sends docs/protocol.md's MESSAGE_TOO_LARGE error just before that close."""

    # a slot, not an instance attribute: one attribute more in the instance dict makes
    # CPython 3.11 give every WebSocket a private 1.6 KB dict instead of the shared one
    __slots__ = ("on_too_big",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_too_big: Callable[[int], None] | None = None  # called with the limit

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if code == CloseCode.MESSAGE_TOO_BIG and self.on_too_big is not None:
            hook, self.on_too_big = self.on_too_big, None
            hook(self._max_msg_size)
        return await super().close(code=code, message=message, drain=drain)


def release_http_state(request: web.Request, ws: web.WebSocketResponse | None = None) -> None:
    """Free what an upgraded connection never uses again: aiohttp's HTTP/1 parser and
    its (empty) request queue, about 2.4 KB per connection; the 101 response's headers, once
    sent; and two per-writer objects a server WebSocket without compression never uses,
    about 1 KB together (docs/fanout.md, "Memory per connection")."""
    protocol = request.protocol
    if protocol is None or not protocol._upgraded:
        return
    protocol._parser = None  # aiohttp only needs it again if the upgrade is declined
    if not protocol._messages:
        protocol._messages = ()  # type: ignore[assignment]  # only len()-tested once upgraded
    if ws is None:
        return
    ws.headers.clear()  # the 101's headers: sent, never read again
    writer = ws._writer
    if writer is not None and not writer.use_mask and not writer.compress:
        writer.get_random_bits = _NO_MASK  # only a client masks its frames
        writer._background_tasks = _NO_TASKS  # only compressed sends start tasks


# shared by every connection's writer, in place of one partial and one empty set each
_NO_MASK = functools.partial(random.Random().getrandbits, 32)
_NO_TASKS: set[asyncio.Task[None]] = set()


class WsTransport:
    """Adapts an aiohttp WebSocket to :class:`session.Transport`.

    Data frames are written to the TCP transport directly (they are framed
    once by the hub); aiohttp keeps the handshake, reading, pings and close.
    The session writes through :attr:`socket`, the asyncio transport itself;
    over the high-water mark it pauses aiohttp's protocol, and ``drain``
    waits for the resume.
    """

    __slots__ = (
        "_closing", "_request", "_tasks", "_transport", "_ws", "awaiting", "closing_task", "heard", "slot",
    )  # fmt: skip

    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, tasks: set[asyncio.Task[Any]]
    ) -> None:
        self._ws = ws
        self._request = request
        transport = request.transport
        if transport is None:  # lost during the handshake
            raise ConnectionResetError("connection lost during the WebSocket handshake")
        self._transport: asyncio.Transport = transport
        self._tasks = tasks
        self._closing = False
        self.closing_task: asyncio.Task[Any] | None = None  # our close handshake, once started
        self.heard = True  # bytes arrived since the ping sweep last looked (heartbeat.Pulse)
        self.awaiting = False  # a ping went out and nothing has arrived since
        self.slot = 0  # the sweep's bucket

    def listen(self) -> None:
        """Have the protocol tell us when bytes arrive (the sweep's "heard"); call once
        after the handshake of a WebSocket made without aiohttp's heartbeat."""
        protocol = self._request.protocol
        if protocol is not None:
            protocol._data_received_cb = self._on_data

    def _on_data(self) -> None:
        self.heard = True

    def ping(self) -> bool:
        """Send a ping frame now (the sweep); False when the connection is closing.

        Written whole, like every frame of ours and aiohttp's, so it never
        lands inside another frame.
        """
        if self._ws.closed or self._transport.is_closing():
            return False
        self._transport.write(_PING)
        return True

    def lost(self) -> None:
        """No answer to the ping: drop the connection as aiohttp's heartbeat does (1006, no
        close frame: the peer is not reading), and wake the handler's read."""
        self._ws._handle_ping_pong_exception(TimeoutError("no answer to the ping"))

    @property
    def socket(self) -> asyncio.Transport:
        return self._transport

    def write(self, data: bytes) -> None:
        if not self._transport.is_closing() and not self._ws.closed:
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        """Bytes waiting in the socket buffer (stats and tests)."""
        return self._transport.get_write_buffer_size()

    async def drain(self) -> None:
        await self._request.writer.drain()

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        task = asyncio.get_running_loop().create_task(
            self._ws.close(code=code, message=reason.encode()[:120])
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.closing_task = task
