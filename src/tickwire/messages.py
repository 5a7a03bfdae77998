"""The server -> client messages of the protocol (docs/protocol.md), one set for both sides.

The gateway encodes these structs (:mod:`tickwire.protocol`) and the client
library decodes into them (:mod:`tickwire.client.messages`), so a field
exists in one place. Field names are the wire's (``changePercent24h``) and
field order is the order on the wire. Pure: msgspec and the standard
library only, so the client installs without the server's dependencies.

Every message derives from :class:`Msg`: a frozen struct tagged by its
``type``, whose fields at their default value are left out of the frame
(``id`` when the request had none, ``snapshot`` on live data, ...). Prices
and quantities are :class:`~decimal.Decimal` and go out as JSON numbers with
the venue's digits. Unknown fields are ignored on decoding, because the
protocol may grow (additions are allowed).

Not here: the publish API's messages (``signal``, ``order``, ...) are
encoded by :func:`tickwire.protocol.encode_publication` from the publisher's
raw JSON, whatever the channel kind; the structs below only decode them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec


__all__ = [
    "Account",
    "Authenticated",
    "Book",
    "BookData",
    "BookPrecision",
    "Connected",
    "Control",
    "DataMessage",
    "Depth",
    "DepthData",
    "Error",
    "Kline",
    "KlineData",
    "Msg",
    "Order",
    "Pong",
    "Portfolio",
    "Price",
    "PriceData",
    "Ref",
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
    "Unsubscribed",
    "UpstreamGap",
]

Ref = str | int
"""The optional ``id`` of a client message, echoed on every direct reply."""


class Msg(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    """Base of every message the gateway sends; ``type`` is the tag."""


# --- data payloads ------------------------------------------------------------------


class PriceData(msgspec.Struct, frozen=True):
    price: Decimal
    change24h: Decimal
    changePercent24h: Decimal
    high24h: Decimal
    low24h: Decimal
    volume24h: Decimal
    timestamp: int


class TickerData(msgspec.Struct, frozen=True):
    price: Decimal
    bid: Decimal
    ask: Decimal
    bidQty: Decimal
    askQty: Decimal
    open24h: Decimal
    high24h: Decimal
    low24h: Decimal
    change24h: Decimal
    changePercent24h: Decimal
    volume24h: Decimal
    quoteVolume24h: Decimal
    trades24h: int
    timestamp: int


class KlineData(msgspec.Struct, frozen=True):
    time: int  # candle open time, Unix seconds (charting libraries expect seconds)
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    isFinal: bool


class TradeData(msgspec.Struct, frozen=True):
    id: int
    price: Decimal
    quantity: Decimal
    side: str  # the taker's side: "buy" or "sell"
    timestamp: int


class DepthData(msgspec.Struct, frozen=True):
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    lastUpdateId: int
    timestamp: int


class BookPrecision(msgspec.Struct, frozen=True):
    """Decimals of price and quantity (from the symbol's tick and step sizes)."""

    price: int
    qty: int


class BookData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A book snapshot (``precision`` set) or diff; levels are ``[price, qty]``, qty 0 removes."""

    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    precision: BookPrecision | None = None
    checksum: int
    updateId: int
    timestamp: int


# --- data messages --------------------------------------------------------------------
# ``snapshot`` is never set when encoding: protocol.as_snapshot marks a cached frame's
# bytes instead, so a snapshot costs no re-encoding.


class Price(Msg, frozen=True, tag="price"):
    channel: str
    symbol: str
    seq: int
    data: PriceData
    snapshot: bool = False


class Ticker(Msg, frozen=True, tag="ticker"):
    channel: str
    symbol: str
    seq: int
    data: TickerData
    snapshot: bool = False


class Kline(Msg, frozen=True, tag="kline"):
    channel: str
    symbol: str
    interval: str
    seq: int
    data: KlineData
    snapshot: bool = False


class Trade(Msg, frozen=True, tag="trade"):
    channel: str
    symbol: str
    seq: int
    data: TradeData
    snapshot: bool = False


class Depth(Msg, frozen=True, tag="depth"):
    channel: str
    symbol: str
    seq: int
    data: DepthData
    snapshot: bool = False


class Book(Msg, frozen=True, tag="book", kw_only=True):
    """A ``book:SYMBOL:DEPTH`` message: a snapshot (``depth`` set, maybe ``reset``) or a diff."""

    channel: str
    symbol: str
    depth: int | None = None
    seq: int
    snapshot: bool = False
    reset: bool = False
    data: BookData


class Signal(Msg, frozen=True, tag="signal"):
    """A publication on ``signals:SYMBOL``; ``data`` is the publisher's JSON."""

    channel: str
    seq: int
    data: Any
    symbol: str | None = None
    snapshot: bool = False


class Order(Msg, frozen=True, tag="order"):
    """A private event on ``orders:USERID``; ``data`` is the publisher's JSON."""

    channel: str
    seq: int
    data: Any
    snapshot: bool = False


class Portfolio(Msg, frozen=True, tag="portfolio"):
    channel: str
    seq: int
    data: Any
    snapshot: bool = False


class Account(Msg, frozen=True, tag="account"):
    channel: str
    seq: int
    data: Any
    snapshot: bool = False


DataMessage = Price | Ticker | Kline | Trade | Depth | Book | Signal | Order | Portfolio | Account
"""A message of a channel, with a ``seq``."""


# --- control messages -------------------------------------------------------------------


class UpstreamGap(msgspec.Struct, frozen=True):
    """What an upstream outage lost for good, inclusive: trade ids, or candle open times (ms)."""

    from_: int = msgspec.field(name="from")
    to: int = msgspec.field()


class Status(Msg, frozen=True, tag="status"):
    """The upstream behind ``channel`` went down (``stale``) or came back (``live``).

    ``gap`` on ``live``: what the outage lost and REST could not fill (docs/resume.md, "Upstream backfill").
    """

    channel: str
    status: str
    timestamp: str
    reason: str | None = None
    gap: UpstreamGap | None = None

    @property
    def live(self) -> bool:
        return self.status == "live"


class Connected(Msg, frozen=True, tag="connected"):
    """The gateway's welcome.

    ``resumed`` is never sent: the client library sets it on every
    connection after the first.
    """

    clientId: str
    authenticated: bool
    timestamp: str
    userId: str | None = None
    resumed: bool = False


class SubscribeOptions(msgspec.Struct, frozen=True):
    """A subscription's options (docs/protocol.md, "Throttle per subscription").

    Encoded in full, defaults included: an ack after ``throttleMs: 0`` says
    ``"options":{"throttleMs":0}``, the value in force, not ``{}``.
    """

    throttleMs: int = 0


class Subscribed(Msg, frozen=True, tag="subscribed", kw_only=True):
    """The ack of one channel; with its position (``epoch``, ``seq``) and, after a
    ``since``, whether it was recovered (docs/protocol.md, "Resume")."""

    channel: str
    timestamp: str
    id: Ref | None = None
    epoch: str | None = None
    seq: int | None = None
    recoverable: bool | None = None
    wasRecovering: bool = False
    recovered: bool | None = None
    replayed: int | None = None
    reason: str | None = None
    options: SubscribeOptions | None = None


class Unsubscribed(Msg, frozen=True, tag="unsubscribed"):
    channel: str
    timestamp: str
    reason: str | None = None
    id: Ref | None = None


class Pong(Msg, frozen=True, tag="pong"):
    timestamp: int
    id: Ref | None = None


class Authenticated(Msg, frozen=True, tag="authenticated"):
    userId: str
    expiresAt: int | None = None
    id: Ref | None = None


class Subscriptions(Msg, frozen=True, tag="subscriptions"):
    channels: list[str]
    id: Ref | None = None


class Error(Msg, frozen=True, tag="error"):
    """An ``error`` frame (docs/protocol.md "Errors"); the connection stays open.

    The gateway always sends ``timestamp``; the default only lets the client
    decode an error frame that lacks it.
    """

    code: str
    message: str
    timestamp: str = ""
    channel: str | None = None
    id: Ref | None = None


Control = Status | Connected | Subscribed | Unsubscribed | Pong | Authenticated | Subscriptions | Error

ServerMessage = DataMessage | Control
