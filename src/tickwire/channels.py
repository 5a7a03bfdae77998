"""Channel grammar (docs/protocol.md, "Channels"): parsing, normalization, delivery class.

A channel name is split at its first colon into a kind and an argument.
Symbols are case-insensitive on input and upper-case on output; a private
channel's argument is a user id (the token's ``sub``) and is kept verbatim,
colons and ``|`` included.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from .errors import ErrorCode, ProtocolError


__all__ = [
    "BOOK_DEPTHS",
    "DEFAULT_BOOK_DEPTH",
    "INTERVALS",
    "INTERVAL_SECONDS",
    "MAX_CHANNEL_LENGTH",
    "Channel",
    "Delivery",
    "Kind",
    "parse_channel",
]

MAX_CHANNEL_LENGTH = 200
"""Longest channel name accepted: kind, colon and a 128-character user id fit."""

INTERVAL_SECONDS: dict[str, int] = {
    "1s": 1,
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "3d": 259200,
    "1w": 604800,
    "1M": 2592000,  # nominal: calendar months are cut by the source, not by this table
}
"""Kline intervals of the exchange, case-sensitive (``1m`` is a minute, ``1M`` a month)."""

INTERVALS = tuple(INTERVAL_SECONDS)

BOOK_DEPTHS = (10, 20, 50, 100, 500, 1000)
"""Depths of a ``book:SYMBOL:DEPTH`` channel; each depth is its own channel."""

DEFAULT_BOOK_DEPTH = 100
"""The depth of a bare ``book:SYMBOL`` (acked with its canonical name)."""

_DEPTH_NAMES = {str(depth): depth for depth in BOOK_DEPTHS}

_SYMBOL = re.compile(r"[A-Z0-9]{2,20}")
_USER = re.compile(r"\S{1,128}")


class Kind(enum.StrEnum):
    """The part of a channel name before the first colon."""

    PRICE = "price"
    TICKER = "ticker"
    KLINES = "klines"
    TRADES = "trades"
    DEPTH = "depth"
    BOOK = "book"
    SIGNALS = "signals"
    ORDERS = "orders"
    PORTFOLIO = "portfolio"
    ACCOUNT = "account"


class Delivery(enum.Enum):
    """How a slow client is treated (docs/backpressure.md)."""

    LATEST = "latest"  # conflated per client: a slow client gets the newest value
    EVERY = "every"  # bounded queue; overflow closes the client with 4008
    STATE = "state"  # diffs of a state (a book): a slow client's backlog becomes one snapshot, never 4008


MESSAGE_TYPE: dict[Kind, str] = {
    Kind.PRICE: "price",
    Kind.TICKER: "ticker",
    Kind.KLINES: "kline",
    Kind.TRADES: "trade",
    Kind.DEPTH: "depth",
    Kind.BOOK: "book",
    Kind.SIGNALS: "signal",
    Kind.ORDERS: "order",
    Kind.PORTFOLIO: "portfolio",
    Kind.ACCOUNT: "account",
}

MARKET_KINDS = frozenset({Kind.PRICE, Kind.TICKER, Kind.KLINES, Kind.TRADES, Kind.DEPTH, Kind.BOOK})
PRIVATE_KINDS = frozenset({Kind.ORDERS, Kind.PORTFOLIO, Kind.ACCOUNT})
PUBLISHABLE_KINDS = frozenset({Kind.SIGNALS}) | PRIVATE_KINDS
_LATEST_KINDS = frozenset({Kind.PRICE, Kind.TICKER, Kind.DEPTH})
_PRIVATE_PREFIXES = tuple(f"{k.value}:" for k in PRIVATE_KINDS)


def is_private_name(name: str) -> bool:
    """Whether a canonical channel name is a user's private channel (no parsing)."""
    return name.startswith(_PRIVATE_PREFIXES)


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed, normalized channel.

    ``name`` is the canonical spelling used on the wire and as a key.
    ``symbol`` is set for market and signal channels, ``user`` for private
    ones, ``interval`` for klines, ``depth`` for books.
    """

    name: str
    kind: Kind
    symbol: str | None = None
    interval: str | None = None
    user: str | None = None
    depth: int | None = None

    @property
    def message_type(self) -> str:
        return MESSAGE_TYPE[self.kind]

    @property
    def is_market(self) -> bool:
        return self.kind in MARKET_KINDS

    @property
    def is_private(self) -> bool:
        return self.kind in PRIVATE_KINDS

    @property
    def is_publishable(self) -> bool:
        return self.kind in PUBLISHABLE_KINDS

    @property
    def delivery(self) -> Delivery:
        """The channel's default class; a kline channel mixes both (see hub)."""
        if self.kind in _LATEST_KINDS or self.kind is Kind.KLINES:
            return Delivery.LATEST
        if self.kind is Kind.BOOK:
            return Delivery.STATE
        return Delivery.EVERY


def _invalid(name: str, why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_CHANNEL, why, channel=name)


def _symbol(name: str, raw: str) -> str:
    symbol = raw.upper()
    if not _SYMBOL.fullmatch(symbol):
        raise _invalid(name, f"malformed symbol {raw!r}: 2-20 letters or digits")
    return symbol


@functools.lru_cache(maxsize=4096)
def parse_channel(name: str) -> Channel:
    """Parse and normalize a channel name.

    Cached: a channel is immutable, so every session subscribed to ``price:BTCUSDT``
    shares one :class:`Channel` and one name (~140 bytes per subscription otherwise);
    a name that fails is parsed again each time (exceptions are not cached).

    Raises:
        ProtocolError: ``INVALID_CHANNEL`` with a message saying what is wrong.
    """
    if len(name) > MAX_CHANNEL_LENGTH:
        raise _invalid(name[:MAX_CHANNEL_LENGTH], f"channel name over {MAX_CHANNEL_LENGTH} characters")
    raw_kind, sep, arg = name.partition(":")
    if not sep:
        raise _invalid(name, "channel must look like 'kind:ARGUMENT', e.g. 'price:BTCUSDT'")
    try:
        kind = Kind(raw_kind)
    except ValueError:
        raise _invalid(name, f"unknown channel kind {raw_kind!r}") from None
    if kind in PRIVATE_KINDS:
        if not _USER.fullmatch(arg):
            raise _invalid(name, "user id must be 1 to 128 characters without whitespace")
        return Channel(f"{kind.value}:{arg}", kind, user=arg)
    if kind is Kind.KLINES:
        raw_symbol, sep, interval = arg.partition(":")
        if not sep:
            raise _invalid(name, "klines channel must look like 'klines:SYMBOL:INTERVAL'")
        if interval not in INTERVAL_SECONDS:
            raise _invalid(name, f"unknown interval {interval!r}; one of {' '.join(INTERVALS)}")
        symbol = _symbol(name, raw_symbol)
        return Channel(f"klines:{symbol}:{interval}", kind, symbol=symbol, interval=interval)
    if kind is Kind.BOOK:
        return _book(name, arg)
    symbol = _symbol(name, arg)
    return Channel(f"{kind.value}:{symbol}", kind, symbol=symbol)


def _book(name: str, arg: str) -> Channel:
    raw_symbol, sep, raw_depth = arg.partition(":")
    symbol = _symbol(name, raw_symbol)
    depth = DEFAULT_BOOK_DEPTH
    if sep:
        if raw_depth not in _DEPTH_NAMES:
            raise _invalid(name, f"unknown book depth {raw_depth!r}; one of {' '.join(_DEPTH_NAMES)}")
        depth = _DEPTH_NAMES[raw_depth]
    return Channel(f"book:{symbol}:{depth}", Kind.BOOK, symbol=symbol, depth=depth)
