"""Typed messages of the client library: what ``async for msg in feed`` yields.

Every server message of PROTOCOL.md has a frozen msgspec Struct here, tagged
by its ``type``, decoded straight from the frame with one
:class:`msgspec.json.Decoder` over the union. Prices and quantities are
:class:`~decimal.Decimal` with exactly the digits the gateway sent. Field
names are the wire's (``changePercent24h``), so the docs of PROTOCOL.md read
one-to-one. Unknown fields are ignored and an unknown ``type`` decodes to
:class:`Unknown`, because the protocol may grow (PROTOCOL.md: additions are
allowed).

Three messages are made by the client itself, never sent by the gateway:
:class:`Gap` (a ``seq`` jump on a channel), :class:`Disconnected` (the
connection dropped; says when it retries) and the ``resumed`` flag on
:class:`Connected` (this connection replaces an earlier one).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..protocol import DepthData, KlineData, PriceData, TickerData, TradeData


__all__ = [
    "Account",
    "Authenticated",
    "Connected",
    "Control",
    "DataMessage",
    "Depth",
    "DepthData",
    "Disconnected",
    "Error",
    "Gap",
    "Kline",
    "KlineData",
    "Message",
    "Order",
    "Pong",
    "Portfolio",
    "Price",
    "PriceData",
    "ServerMessage",
    "Signal",
    "Status",
    "Subscribed",
    "Subscriptions",
    "Ticker",
    "TickerData",
    "Trade",
    "TradeData",
    "Unknown",
    "Unsubscribed",
    "decode",
    "encode",
]


class _Msg(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    """Base of every message; ``type`` is the tag."""


# --- data payloads: PriceData, TickerData, KlineData, TradeData and DepthData are the
# server's own structs (tickwire.protocol), so both sides read one definition.


# --- data messages ------------------------------------------------------------


class Price(_Msg, frozen=True, tag="price"):
    channel: str
    symbol: str
    seq: int
    data: PriceData
    snapshot: bool = False


class Ticker(_Msg, frozen=True, tag="ticker"):
    channel: str
    symbol: str
    seq: int
    data: TickerData
    snapshot: bool = False


class Kline(_Msg, frozen=True, tag="kline"):
    channel: str
    symbol: str
    interval: str
    seq: int
    data: KlineData
    snapshot: bool = False


class Trade(_Msg, frozen=True, tag="trade"):
    channel: str
    symbol: str
    seq: int
    data: TradeData
    snapshot: bool = False


class Depth(_Msg, frozen=True, tag="depth"):
    channel: str
    symbol: str
    seq: int
    data: DepthData
    snapshot: bool = False


class Signal(_Msg, frozen=True, tag="signal"):
    """A publication on ``signals:SYMBOL``; ``data`` is the publisher's JSON."""

    channel: str
    seq: int
    data: Any
    symbol: str | None = None
    snapshot: bool = False


class Order(_Msg, frozen=True, tag="order"):
    """A private event on ``orders:USERID``; ``data`` is the publisher's JSON."""

    channel: str
    seq: int
    data: Any
    snapshot: bool = False


class Portfolio(_Msg, frozen=True, tag="portfolio"):
    channel: str
    seq: int
    data: Any
    snapshot: bool = False


class Account(_Msg, frozen=True, tag="account"):
    channel: str
    seq: int
    data: Any
    snapshot: bool = False


DataMessage = Price | Ticker | Kline | Trade | Depth | Signal | Order | Portfolio | Account
"""A message of a channel, with a ``seq``."""


# --- control messages -----------------------------------------------------------


class Status(_Msg, frozen=True, tag="status"):
    """The upstream behind ``channel`` went down (``stale``) or came back (``live``)."""

    channel: str
    status: str
    timestamp: str
    reason: str | None = None

    @property
    def live(self) -> bool:
        return self.status == "live"


class Connected(_Msg, frozen=True, tag="connected"):
    """The gateway's welcome; ``resumed`` is True on every connection after the first."""

    clientId: str
    authenticated: bool
    timestamp: str
    userId: str | None = None
    resumed: bool = False


class Subscribed(_Msg, frozen=True, tag="subscribed"):
    channel: str
    timestamp: str
    id: str | int | None = None


class Unsubscribed(_Msg, frozen=True, tag="unsubscribed"):
    channel: str
    timestamp: str
    reason: str | None = None
    id: str | int | None = None


class Pong(_Msg, frozen=True, tag="pong"):
    timestamp: int
    id: str | int | None = None


class Authenticated(_Msg, frozen=True, tag="authenticated"):
    userId: str
    expiresAt: int | None = None
    id: str | int | None = None


class Subscriptions(_Msg, frozen=True, tag="subscriptions"):
    channels: list[str]
    id: str | int | None = None


class Error(_Msg, frozen=True, tag="error"):
    """An ``error`` frame (PROTOCOL.md "Errors"); the connection stays open."""

    code: str
    message: str
    timestamp: str = ""
    channel: str | None = None
    id: str | int | None = None


Control = Status | Connected | Subscribed | Unsubscribed | Pong | Authenticated | Subscriptions | Error

ServerMessage = DataMessage | Control


# --- made by the client -------------------------------------------------------------


class Gap(_Msg, frozen=True, tag="gap"):
    """Messages of ``channel`` were missed: ``seq`` jumped from ``after`` to ``seq``.

    A gap appears right before the message that revealed it. It happens when
    the connection dropped while the channel kept publishing, or when the
    gateway conflated latest-value messages for this (slow) client.
    """

    channel: str
    after: int
    seq: int

    @property
    def missed(self) -> int:
        return self.seq - self.after - 1


class Disconnected(_Msg, frozen=True, tag="disconnected"):
    """The connection was lost or closed.

    ``retry_in`` is the delay in seconds before the next attempt, or ``None``
    when the feed waits for :meth:`Feed.set_token` (close code 4001).
    ``code`` is the WebSocket close code, ``None`` when no connection was made.
    """

    code: int | None
    reason: str
    retry_in: float | None
    attempt: int = 0


class Unknown(msgspec.Struct, frozen=True):
    """A message of a type this client does not know (a newer gateway)."""

    type: str
    body: dict[str, Any]


Message = ServerMessage | Gap | Disconnected | Unknown
"""Everything ``async for msg in feed`` can yield."""


_decoder = msgspec.json.Decoder(ServerMessage)
_loose = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder(decimal_format="number")
_KNOWN = frozenset(
    "price ticker kline trade depth signal order portfolio account".split()
    + "status connected subscribed unsubscribed pong authenticated subscriptions error".split()
)


def decode(frame: str | bytes) -> ServerMessage | Unknown:
    """Decode one server frame.

    Raises:
        msgspec.DecodeError: the frame is not JSON, or a known type is malformed.
    """
    try:
        msg: ServerMessage = _decoder.decode(frame)
    except msgspec.ValidationError:
        body = _loose.decode(frame)
        if isinstance(body, dict) and isinstance(body.get("type"), str):
            if body["type"] not in _KNOWN:
                return Unknown(body["type"], body)
        raise
    return msg


def encode(msg: Message) -> bytes:
    """One JSON line for a message (``tickwire watch --json``); numbers stay numbers."""
    if isinstance(msg, Unknown):
        return _encoder.encode(msg.body)
    return _encoder.encode(msg)
