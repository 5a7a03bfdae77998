"""One client connection: its limits, outbox and writer, and its frames in.

The subscribe, unsubscribe and throttle handling is in :mod:`tickwire.subscriptions`,
the identity (``auth``, private channels, token expiry) in :mod:`tickwire.identity`:
both are mixins of :class:`Session`, which keeps the state (its slots) and the
fan-out's push path.

Theory of operation:

* The hub pushes frames with :meth:`Session.push_latest`,
  :meth:`Session.push_final` and (book channels) :meth:`Session.push_state`;
  they only queue into the client's
  :class:`~tickwire.outbox.Outbox` and, on the first frame of an idle outbox,
  mark the session in the node's :class:`~tickwire.flusher.Flusher`, so the
  fan-out never waits for this client and never wakes a task.
* The outbox holds the rules: latest values conflate per channel, final and
  control frames keep their order, a final frame pins its channel's pending
  latest frame so per-channel ``seq`` order holds, and at most ``max_queue``
  frames that must be delivered wait. One more closes the client with 4008
  (docs/backpressure.md).
* The flusher takes each marked session's pending frames once per loop
  iteration (or per write delay, :meth:`Session.take`) and writes them in
  one ``write`` (coalescing). When the socket's buffer is then over the
  high-water mark, the session parks (:meth:`Session.park`): it waits in
  one small task for the socket to drain and is skipped by the flusher
  meanwhile; latest values keep conflating and final frames queue up to
  ``max_queue``. Only parked clients have a task.
* Memory per client is bounded by ``max_queue`` final frames, one frame per
  subscribed channel, and the transport's high-water mark.
* A throttled subscription (``options.throttleMs``) is a
  :class:`~tickwire.throttle.Held` view in the hub instead of the session:
  it holds the newest value until its due time, and the node's one tick
  (``flusher.ticker``) releases it into the outbox (:meth:`Session.tick`,
  :mod:`tickwire.subscriptions`). Unthrottled subscriptions never pass through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from .bookview import BookView
from .channels import Channel
from .errors import CloseCode, ErrorCode, ProtocolError
from .flusher import Flusher
from .frames import text_frame
from .hub import Hub
from .identity import Authenticate, Identity, IdentityMixin
from .outbox import Outbox
from .protocol import (
    Auth,
    ClientMessage,
    List,
    Ping,
    Subscribe,
    Unsubscribe,
    encode_error,
    encode_pong,
    encode_subscriptions,
    parse_client,
)
from .ratelimit import TokenBucket
from .subscriptions import SubscriptionsMixin, Validate
from .throttle import Throttle


__all__ = ["Identity", "Limits", "Session", "Transport"]

logger = logging.getLogger("tickwire.session")


class Socket(Protocol):
    """The byte stream under a WebSocket (an asyncio transport): the flusher calls these
    C methods directly, once per write, with no Python frame of ours in between."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...


class Transport(Protocol):
    """A session's connection (an aiohttp WebSocket in the server)."""

    @property
    def socket(self) -> Socket:
        """The byte stream data frames are written to."""

    def write(self, data: bytes) -> None:
        """Write now, unless the connection is closing (shutdown, the 1009 error)."""

    async def drain(self) -> None:
        """Return once the socket's buffer is under its low-water mark again."""

    def close(self, code: int, reason: str) -> None: ...


class Limits:
    """Per-client limits (settings; docs/protocol.md "Errors")."""

    __slots__ = ("abuse_limit", "burst", "high_water", "max_queue", "max_subscriptions", "rate")

    def __init__(
        self,
        *,
        max_subscriptions: int = 50,
        rate: float = 10.0,
        burst: float = 20.0,
        max_queue: int = 1024,
        high_water: int = 256 * 1024,
        abuse_limit: int = 100,
    ) -> None:
        self.max_subscriptions = max_subscriptions
        self.rate = rate
        self.burst = burst
        self.max_queue = max_queue  # final frames and replies waiting for a slow client
        self.high_water = high_water  # bytes in the socket buffer before we wait
        self.abuse_limit = abuse_limit  # rate-limited frames before closing with 1008


class SessionStats(Protocol):
    def count_in(self) -> None: ...

    def count_error(self, code: ErrorCode) -> None: ...

    def count_conflated(self, subscribers: int = 1) -> None: ...

    def count_slow(self) -> None: ...

    def count_book_snapshot(self) -> None: ...

    def count_written(self, nbytes: int) -> None: ...

    def count_dropped(self, frames: int) -> None: ...

    def count_throttled(self, channel: str, frames: int = 1) -> None: ...


class Session(SubscriptionsMixin, IdentityMixin):
    """One client. Create it, ``start()`` it, feed it frames, then ``close()``."""

    # slots: less memory per idle connection, and faster attribute reads on the fan-out path.
    # The first line is what every delivery reads (push and take), first so that they share
    # the object's first cache lines: at one frame per write a delivery's cost is mostly
    # fetching its objects from memory (docs/fanout.md, "The write path").
    __slots__ = (  # noqa: RUF023
        "closed", "_marked", "_parked", "_outbox", "_flusher", "socket", "high_water",
        "_authenticate", "_bucket", "_clock", "_clock_ms", "_expiry", "_hub", "_limits", "_stats",
        "_throttle", "_transport", "_validate", "_violations", "client_id", "close_code", "close_reason",
        "identity", "subscriptions",
    )  # fmt: skip

    def __init__(
        self,
        client_id: str,
        transport: Transport,
        hub: Hub,
        *,
        limits: Limits,
        stats: SessionStats,
        clock: Callable[[], float],
        clock_ms: Callable[[], int],
        validate: Validate,
        authenticate: Authenticate | None = None,
        identity: Identity | None = None,
        flusher: Flusher | None = None,
    ) -> None:
        self.client_id = client_id
        self.identity = identity
        self.subscriptions: dict[str, Channel] = {}
        self.closed = False
        self._transport = transport
        self._hub = hub
        self._limits = limits
        self._stats = stats
        self._clock = clock
        self._clock_ms = clock_ms
        self._validate = validate
        self._authenticate = authenticate
        self._bucket = TokenBucket(rate=limits.rate, burst=limits.burst, now=clock())
        self._violations = 0
        self.close_code: int | None = None  # set when the server closes this client
        self.close_reason: str | None = None
        # called, not bound once into slots: a bound method is one more object per delivery to fetch
        # from memory, and one more per connection (docs/fanout.md, "The write path")
        self._outbox = Outbox(limits.max_queue)
        self._flusher = flusher if flusher is not None else Flusher()
        self.socket: Socket | None = None  # set by start(); the flusher writes to it
        self.high_water = limits.high_water  # bytes buffered in the socket before we park
        self._marked = False  # in the flusher's list for its next flush
        self._parked: asyncio.Task[None] | None = None  # waits for the socket to drain
        self._expiry: asyncio.TimerHandle | None = None  # closes with 4001 when the token expires
        self._throttle: Throttle | None = None  # made on the first throttled subscribe

    # -- outbox (called by the hub; never blocks) -----------------------------

    def push_latest(self, channel: str, frame: bytes) -> None:
        if self.closed:
            return
        if self._outbox.push_latest(channel, frame):
            self._stats.count_conflated()
        elif not self._marked and self._parked is None:  # _mark() inlined: once per delivery
            self._marked = True
            self._flusher.mark(self)

    def push_final(self, channel: str, frame: bytes) -> None:
        if self.closed:
            return
        if not self._outbox.push_final(channel, frame):
            self._overflow()
        elif not self._marked and self._parked is None:  # _mark() inlined: once per delivery
            self._marked = True
            self._flusher.mark(self)

    def push_state(self, channel: str, frame: bytes, snapshot: bool, view: BookView) -> None:
        """A book frame: never counted toward ``max_queue``, never a 4008 (docs/book.md)."""
        if self.closed:
            return
        if self._outbox.push_state(channel, frame, snapshot, view):
            self._stats.count_book_snapshot()
        if not self._marked and self._parked is None:  # _mark() inlined: once per delivery
            self._marked = True
            self._flusher.mark(self)

    def _overflow(self) -> None:
        self._stats.count_slow()
        finals = self._outbox.finals
        logger.info("client %s: slow consumer, %d frames queued", self.client_id, finals)
        self.close(CloseCode.SLOW_CONSUMER, "slow consumer: outbox limit reached")
        self._stats.count_dropped(1)  # the frame that did not fit

    def send(self, payload: bytes) -> None:
        """Queue a direct reply (ack, error, pong): never conflated, in order with data."""
        if self.closed:
            return
        if not self._outbox.push_control(text_frame(payload)):
            self._overflow()
        else:
            self._mark()

    def _mark(self) -> None:
        """Ask the flusher for a write in its next flush (unless asked already or parked)."""
        if not self._marked and self._parked is None:
            self._marked = True
            self._flusher.mark(self)

    @property
    def queued(self) -> int:
        """Frames waiting in the outbox."""
        return self._outbox.queued

    def start(self) -> None:
        """Begin writing: the socket pauses its protocol over ``high_water`` buffered bytes."""
        self.socket = self._transport.socket
        self.socket.set_write_buffer_limits(high=self.high_water)

    def take(self) -> bytes:
        """For the flusher: everything pending as one ``bytes`` for :attr:`socket`; ``b""`` for nothing."""
        self._marked = False
        if self.closed or self._parked is not None:
            return b""
        socket = self.socket
        if socket is None or socket.is_closing():  # the reader sees the close and cleans up
            return b""
        return self._outbox.take()  # b"" when empty: no Outbox.__bool__ call per session (hot)

    def park(self) -> None:
        """For the flusher: the socket's buffer is over the high-water mark; wait for it."""
        if self._parked is None and not self.closed:
            self._parked = asyncio.get_running_loop().create_task(
                self._wait_writable(), name=f"parked-{self.client_id}"
            )

    async def _wait_writable(self) -> None:
        """Parked: the socket buffer is full. Resume when the transport has drained."""
        try:
            await self._transport.drain()
        except ConnectionError:
            return  # the server's reader sees the close and cleans up
        self._parked = None
        if self._outbox and not self.closed:
            self._mark()

    def close(self, code: int, reason: str) -> None:
        """Stop queueing and close the socket; the server then calls :meth:`cleanup`."""
        if self.closed:
            return
        self.closed = True
        self.close_code, self.close_reason = code, reason
        self._cancel_expiry()
        dropped = self._outbox.clear()
        if dropped:
            self._stats.count_dropped(dropped)
        self._transport.close(code, reason)

    async def cleanup(self) -> None:
        """Leave every channel and stop waiting for the socket (idempotent)."""
        self.closed = True
        self._cancel_expiry()
        self._leave_all()
        parked, self._parked = self._parked, None
        if parked is not None:
            parked.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await parked

    def too_big(self, limit: int) -> None:
        """The client sent a frame over ``limit`` bytes and the server closes it with 1009:
        the MESSAGE_TOO_LARGE error goes out first (docs/protocol.md, "Errors")."""
        text = f"frame over {limit} bytes"
        self._error(ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"{text}; closing with 1009"))
        self.flush_now()
        self.close_code, self.close_reason = CloseCode.MESSAGE_TOO_BIG, text
        self.closed = True

    def flush_now(self) -> None:
        """Write what is pending now (before a close frame, at shutdown)."""
        if self._outbox and not self.closed:
            data = self._outbox.take()
            self._transport.write(data)
            self._stats.count_written(len(data))

    # -- client frames -------------------------------------------------------

    async def receive(self, frame: str | bytes) -> None:
        """Handle one client frame; every problem is answered, none is raised."""
        self._stats.count_in()
        if not self._bucket.take(self._clock()):
            self._violations += 1
            if self._violations == 1:  # one line per run of violations, not per frame
                logger.info("client %s: limit hit RATE_LIMITED: %s", self.client_id, self._rate_text())
            if self._violations > self._limits.abuse_limit:
                self.close(CloseCode.POLICY_VIOLATION, "message rate limit repeatedly exceeded")
                return
            self._error(ProtocolError(ErrorCode.RATE_LIMITED, self._rate_text()))
            return
        self._violations = 0
        try:
            msg = parse_client(frame)
            await self._dispatch(msg)
        except ProtocolError as exc:
            self._error(exc)

    def _rate_text(self) -> str:
        limits = self._limits
        return f"over {limits.rate:g} messages/s (bursts of {limits.burst:g}); message dropped"

    def _error(self, exc: ProtocolError) -> None:
        self._stats.count_error(exc.code)
        if exc.code is ErrorCode.SUBSCRIPTION_LIMIT:
            logger.info("client %s: limit hit %s: %s", self.client_id, exc.code.value, exc.message)
        self.send(encode_error(exc, self._clock_ms()))

    async def _dispatch(self, msg: ClientMessage) -> None:
        match msg:
            case Subscribe():
                await self._subscribe(msg)
            case Unsubscribe():
                self._unsubscribe(msg)
            case Ping():
                self.send(encode_pong(self._clock_ms(), msg.id))
            case List():
                self.send(encode_subscriptions(list(self.subscriptions), msg.id))
            case Auth():
                await self._auth(msg)
