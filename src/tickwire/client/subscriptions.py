"""The feed's subscriptions: subscribe, unsubscribe, books, throttles, and what comes back.

A mixin of :class:`~tickwire.client.feed.Feed`. Subscriptions are remembered
by canonical name, with the throttle in force on each; after a reconnect
:meth:`FeedSubscriptions._resubscribe` sends them again, one message per
throttle, with the position held in each (``since``, :mod:`.positions`).
Every decoded frame passes :meth:`FeedSubscriptions._dispatch`: acks update
positions and throttles (and a resumed channel yields
:class:`~.messages.Recovered` or :class:`~.messages.NotRecovered`), replies
complete their requests, data is checked for a ``seq`` gap, and a book
channel's messages are applied to its :class:`~.book.Book` before they are
yielded. The methods run on the feed's own state, which the
``TYPE_CHECKING`` block names.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from ..channels import Delivery, parse_channel
from ..messages import SubscribeOptions
from ..protocol import THROTTLE_MAX_MS, THROTTLE_MIN_MS, THROTTLE_STEP_MS
from .book import RESYNC, Book
from .errors import SubscriptionError
from .messages import (
    Account,
    Authenticated,
    BookMessage,
    Depth,
    Error,
    Gap,
    Kline,
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


__all__ = ["DATA", "FeedSubscriptions"]

logger = logging.getLogger("tickwire.client")

DATA = (Price, Ticker, Kline, Trade, Depth, BookMessage, Signal, Order, Portfolio, Account)
"""The channel messages (each with a ``seq``)."""
_REPLIES = (Subscribed, Unsubscribed, Error, Pong, Authenticated, Subscriptions)


class FeedSubscriptions:
    """The remembered subscriptions of a feed and the handling of every frame it reads."""

    if TYPE_CHECKING:  # provided by Feed
        url: str
        gaps: int
        resumes: list[Recovered | NotRecovered]
        _ws: aiohttp.ClientWebSocketResponse | None
        _channels: dict[str, None]
        _positions: Positions
        _throttles: dict[str, int]
        _books: dict[str, Book]
        _requests: dict[int, _Request]
        _ids: itertools.count[int]

        def _names(self, channels: tuple[str, ...]) -> list[str]: ...
        async def _request(
            self, body: dict[str, Any], expected: int, *, emit: bool = False
        ) -> list[_Reply]: ...
        async def _emit(self, msg: Message) -> None: ...

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
        if isinstance(msg, DATA):
            await self._check_seq(msg)
        if isinstance(msg, (BookMessage, Status)) and msg.channel in self._books:
            if self._books[msg.channel].apply(msg) is RESYNC and self._ws is not None:
                await self._resubscribe([msg.channel])  # the gateway re-sends the snapshot
        elif isinstance(msg, Unsubscribed):
            self._channels.pop(msg.channel, None)  # e.g. "re-authenticated" ends private channels
        await self._emit(msg)

    async def _check_seq(self, msg: Message) -> None:
        assert isinstance(msg, DATA)
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
