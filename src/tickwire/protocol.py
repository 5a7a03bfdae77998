"""The client protocol (docs/protocol.md), sans I/O: bytes in, messages out, and back.

Nothing here awaits, reads the clock or touches a socket: callers pass the
current time in. Client frames are parsed in two steps so that every bad
frame gets the most precise answer: first JSON and the envelope (``type``,
``id``), then the fields of that one type. Server frames are the structs of
:mod:`tickwire.messages` (which the client library decodes into), encoded
straight to bytes once per message: the hub reuses them for every subscriber.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from . import messages
from .errors import ErrorCode, ProtocolError
from .events import BookUpdate, Event, Kline, Ticker, Trade
from .messages import Ref


__all__ = [
    "Auth",
    "ClientMessage",
    "List",
    "Ping",
    "Position",
    "Ref",
    "Subscribe",
    "Unsubscribe",
    "as_snapshot",
    "encode_authenticated",
    "encode_book",
    "encode_connected",
    "encode_error",
    "encode_event",
    "encode_pong",
    "encode_publication",
    "encode_status",
    "encode_subscribed",
    "encode_subscriptions",
    "encode_unsubscribed",
    "iso_time",
    "parse_client",
]

# --- client -> server ------------------------------------------------------


class Position(msgspec.Struct, frozen=True):
    """Where a client stands in a channel: the ``epoch`` and ``seq`` it saw last."""

    epoch: str
    seq: int


class Subscribe(msgspec.Struct, frozen=True):
    channels: list[str]
    id: Ref | None = None
    since: dict[str, Position] | None = None  # resume (docs/protocol.md)
    options: messages.SubscribeOptions | None = None  # throttle; normalized by parse_client


class Unsubscribe(msgspec.Struct, frozen=True):
    channels: list[str]
    id: Ref | None = None


class Ping(msgspec.Struct, frozen=True):
    id: Ref | None = None


class Auth(msgspec.Struct, frozen=True):
    token: str
    id: Ref | None = None


class List(msgspec.Struct, frozen=True):
    id: Ref | None = None


ClientMessage = Subscribe | Unsubscribe | Ping | Auth | List

_CLIENT_TYPES: dict[str, type[ClientMessage]] = {
    "subscribe": Subscribe,
    "unsubscribe": Unsubscribe,
    "ping": Ping,
    "auth": Auth,
    "list": List,
}
_json_decoder = msgspec.json.Decoder()


def parse_client(frame: str | bytes) -> ClientMessage:
    """Parse one client frame.

    Raises:
        ProtocolError: ``INVALID_MESSAGE`` or ``UNKNOWN_TYPE``, with ``ref``
            set to the frame's ``id`` whenever one could be read.
    """
    try:
        obj = _json_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "a message must be a JSON object")
    ref = obj.get("id")
    if ref is not None and (isinstance(ref, bool) or not isinstance(ref, str | int)):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'id' must be a string or a number")
    if isinstance(ref, str) and len(ref) > 128:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'id' is over 128 characters")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "missing string field 'type'", ref=ref)
    cls = _CLIENT_TYPES.get(kind)
    if cls is None:
        shown = kind if len(kind) <= 40 else kind[:40] + "..."
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {shown!r}; one of {', '.join(_CLIENT_TYPES)}",
            ref=ref,
        )
    del obj["type"]
    try:
        msg = msgspec.convert(obj, type=cls)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{kind}: {exc}", ref=ref) from None
    if isinstance(msg, Subscribe) and msg.options is not None:
        msg = msgspec.structs.replace(msg, options=_checked_options(msg.options, ref))
    return msg


THROTTLE_STEP_MS = 50
THROTTLE_MIN_MS = 100
THROTTLE_MAX_MS = 60_000


def _checked_options(options: messages.SubscribeOptions, ref: Ref | None) -> messages.SubscribeOptions:
    """``throttleMs`` is 0, or 100 to 60,000 rounded up to a multiple of 50 (docs/protocol.md)."""
    ms = options.throttleMs
    if ms == 0:
        return options
    if not THROTTLE_MIN_MS <= ms <= THROTTLE_MAX_MS:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"subscribe: options.throttleMs must be 0 or {THROTTLE_MIN_MS} to {THROTTLE_MAX_MS}, got {ms}",
            ref=ref,
        )
    return messages.SubscribeOptions(-(-ms // THROTTLE_STEP_MS) * THROTTLE_STEP_MS)


# --- server -> client: control messages ------------------------------------


def iso_time(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2024-12-06T12:00:00.000Z``."""
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_Out = messages.Msg  # the base of every message the gateway sends (its subclasses name the types)


_encoder = msgspec.json.Encoder(decimal_format="number")


def encode_connected(client_id: str, now_ms: int, *, user: str | None = None) -> bytes:
    return _encoder.encode(messages.Connected(client_id, user is not None, iso_time(now_ms), user))


def encode_subscribed(
    channel: str,
    now_ms: int,
    ref: Ref | None = None,
    *,
    epoch: str | None = None,
    seq: int | None = None,
    recoverable: bool | None = None,
    was_recovering: bool = False,
    recovered: bool | None = None,
    replayed: int | None = None,
    reason: str | None = None,
    options: messages.SubscribeOptions | None = None,
) -> bytes:
    """The ack of one channel; the keywords are the position and resume fields, left out when None."""
    return _encoder.encode(
        messages.Subscribed(
            channel=channel,
            timestamp=iso_time(now_ms),
            id=ref,
            epoch=epoch,
            seq=seq,
            recoverable=recoverable,
            wasRecovering=was_recovering,
            recovered=recovered,
            replayed=replayed,
            reason=reason,
            options=options,
        )
    )


def encode_unsubscribed(
    channel: str, now_ms: int, ref: Ref | None = None, *, reason: str | None = None
) -> bytes:
    return _encoder.encode(messages.Unsubscribed(channel, iso_time(now_ms), reason, ref))


def encode_pong(now_ms: int, ref: Ref | None = None) -> bytes:
    return _encoder.encode(messages.Pong(now_ms, ref))


def encode_authenticated(user: str, expires_at_ms: int | None, ref: Ref | None = None) -> bytes:
    return _encoder.encode(messages.Authenticated(user, expires_at_ms, ref))


def encode_subscriptions(channels: list[str], ref: Ref | None = None) -> bytes:
    return _encoder.encode(messages.Subscriptions(channels, ref))


def encode_error(error: ProtocolError, now_ms: int) -> bytes:
    return _encoder.encode(
        messages.Error(error.code.value, error.message, iso_time(now_ms), error.channel, error.ref)
    )


def encode_status(channel: str, live: bool, now_ms: int, reason: str | None = None) -> bytes:
    return _encoder.encode(messages.Status(channel, "live" if live else "stale", iso_time(now_ms), reason))


# --- server -> client: data messages ---------------------------------------


def _ticker_message(channel: str, seq: int, e: Ticker) -> messages.Price | messages.Ticker:
    if channel.startswith("price:"):
        price = messages.PriceData(e.price, e.change, e.change_percent, e.high, e.low, e.volume, e.event_time)
        return messages.Price(channel, e.symbol, seq, price)
    ticker = messages.TickerData(
        e.price, e.bid, e.ask, e.bid_qty, e.ask_qty, e.open, e.high, e.low, e.change,
        e.change_percent, e.volume, e.quote_volume, e.trades, e.event_time,
    )  # fmt: skip
    return messages.Ticker(channel, e.symbol, seq, ticker)


def encode_event(channel: str, seq: int, event: Event) -> bytes:
    """The data frame of ``event`` on ``channel`` (one of :func:`events.channels_of`)."""
    msg: messages.Msg
    if isinstance(event, Ticker):
        msg = _ticker_message(channel, seq, event)
    elif isinstance(event, Kline):
        data = messages.KlineData(
            event.open_time // 1000, event.open, event.high, event.low, event.close,
            event.volume, event.final,
        )  # fmt: skip
        msg = messages.Kline(channel, event.symbol, event.interval, seq, data)
    elif isinstance(event, Trade):
        side = "buy" if event.buyer_taker else "sell"
        trade = messages.TradeData(event.id, event.price, event.quantity, side, event.event_time)
        msg = messages.Trade(channel, event.symbol, seq, trade)
    elif isinstance(event, BookUpdate):
        raise TypeError("a book update is projected per depth by the ingest, not encoded as one event")
    else:
        depth = messages.DepthData(event.bids, event.asks, event.last_update_id, event.event_time)
        msg = messages.Depth(channel, event.symbol, seq, depth)
    return _encoder.encode(msg)


class _BookDataOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``messages.BookData`` with each side already JSON (``orderbook.levels_json``): the
    numbers keep the symbol's precision and never take an exponent."""

    bids: msgspec.Raw
    asks: msgspec.Raw
    precision: messages.BookPrecision | None = None
    checksum: int
    updateId: int
    timestamp: int


class _BookOut(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="book"):
    """``messages.Book`` on the way out, field for field."""

    channel: str
    symbol: str
    depth: int | None = None
    seq: int
    snapshot: bool = False
    reset: bool = False
    data: _BookDataOut


def encode_book(
    channel: str,
    symbol: str,
    seq: int,
    *,
    bids: bytes,
    asks: bytes,
    checksum: int,
    update_id: int,
    timestamp: int,
    snapshot: bool = False,
    depth: int | None = None,
    precision: tuple[int, int] | None = None,
    reset: bool = False,
) -> bytes:
    """A ``book`` message (docs/protocol.md, "Order book channel"), decodable as ``messages.Book``.

    Args:
        bids, asks: each side as a JSON array of ``[price, qty]`` (``orderbook.levels_json``).
        snapshot: a snapshot; it also carries ``depth`` and ``precision``
            (price and quantity decimals), and ``reset`` after a resync.
    """
    data = _BookDataOut(
        bids=msgspec.Raw(bids),
        asks=msgspec.Raw(asks),
        precision=messages.BookPrecision(*precision) if precision is not None else None,
        checksum=checksum,
        updateId=update_id,
        timestamp=timestamp,
    )
    msg = _BookOut(
        channel=channel, symbol=symbol, depth=depth, seq=seq, snapshot=snapshot, reset=reset, data=data
    )
    return _encoder.encode(msg)


class _Publication(msgspec.Struct, omit_defaults=True):
    """The publish API's frame: any message type, the publisher's JSON kept raw."""

    type: str
    channel: str
    seq: int
    data: msgspec.Raw
    symbol: str | None = None


def encode_publication(
    message_type: str, channel: str, seq: int, data: msgspec.Raw, *, symbol: str | None = None
) -> bytes:
    """A frame for the publish API; ``data`` is the publisher's JSON, kept as raw bytes."""
    return _encoder.encode(_Publication(message_type, channel, seq, data, symbol))


def as_snapshot(frame: bytes) -> bytes:
    """The same data frame marked ``"snapshot": true`` (docs/protocol.md, subscribe)."""
    return b'{"snapshot":true,' + frame[1:]
