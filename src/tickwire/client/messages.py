"""Typed messages of the client library: what ``async for msg in feed`` yields.

Every server message of docs/protocol.md is a frozen msgspec Struct of
:mod:`tickwire.messages`, the module the gateway encodes with, re-exported
here and decoded straight from the frame with one
:class:`msgspec.json.Decoder` over the union. Prices and quantities are
:class:`~decimal.Decimal` with exactly the digits the gateway sent. Field
names are the wire's (``changePercent24h``), so docs/protocol.md reads
one-to-one. Unknown fields are ignored and an unknown ``type`` decodes to
:class:`Unknown`, because the protocol may grow (additions are allowed).

Messages made by the client itself, never sent by the gateway:
:class:`Gap` (a ``seq`` jump on a channel), :class:`Disconnected` (the
connection dropped; says when it retries), the ``resumed`` flag on
:class:`Connected` (this connection replaces an earlier one), and
:class:`Recovered` / :class:`NotRecovered` (how a channel resumed after a
reconnect, docs/resume.md).

The ``book`` message is :class:`BookMessage` here, because ``client.Book``
is the local order book that applies them (:mod:`.book`).
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from ..messages import (
    Account,
    Authenticated,
    Book as BookMessage,
    BookData,
    BookPrecision,
    Connected,
    Control,
    DataMessage,
    Depth,
    DepthData,
    Error,
    Kline,
    KlineData,
    Order,
    Pong,
    Portfolio,
    Price,
    PriceData,
    ServerMessage,
    Signal,
    Status,
    Subscribed,
    SubscribeOptions,
    Subscriptions,
    Ticker,
    TickerData,
    Trade,
    TradeData,
    Unsubscribed,
)


__all__ = [
    "Account",
    "Authenticated",
    "BookData",
    "BookMessage",
    "BookPrecision",
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
    "NotRecovered",
    "Order",
    "Pong",
    "Portfolio",
    "Price",
    "PriceData",
    "Recovered",
    "ServerMessage",
    "Signal",
    "Status",
    "SubscribeOptions",
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


class _Local(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    """Base of the messages the client makes itself; ``type`` is the tag."""


# --- made by the client -------------------------------------------------------------


class Gap(_Local, frozen=True, tag="gap"):
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


class Disconnected(_Local, frozen=True, tag="disconnected"):
    """The connection was lost or closed.

    ``retry_in`` is the delay in seconds before the next attempt, or ``None``
    when the feed waits for :meth:`Feed.set_token` (close code 4001).
    ``code`` is the WebSocket close code, ``None`` when no connection was made.
    """

    code: int | None
    reason: str
    retry_in: float | None
    attempt: int = 0


class Recovered(_Local, frozen=True, tag="recovered"):
    """After a reconnect, ``channel`` resumed exactly: the ``replayed`` messages it missed
    follow (status frames included), then live data; nothing was lost."""

    channel: str
    replayed: int


class NotRecovered(_Local, frozen=True, tag="not_recovered"):
    """After a reconnect, ``channel`` could not resume; messages were lost, a snapshot follows.

    ``reason``: ``epoch_changed`` (the gateway's history restarted),
    ``history_expired``, ``too_many``, ``not_recoverable`` or ``ahead``.
    """

    channel: str
    reason: str


class Unknown(msgspec.Struct, frozen=True):
    """A message of a type this client does not know (a newer gateway)."""

    type: str
    body: dict[str, Any]


Message = ServerMessage | Gap | Disconnected | Recovered | NotRecovered | Unknown
"""Everything ``async for msg in feed`` can yield."""


_decoder = msgspec.json.Decoder(ServerMessage)
_loose = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder(decimal_format="number")
_KNOWN = frozenset(cls.__struct_config__.tag for cls in typing.get_args(ServerMessage))


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
