"""Normalized market events: what every source produces, whatever the venue.

Events are immutable values built only by source parsers. Prices and
quantities stay :class:`~decimal.Decimal`, exactly the digits the venue sent,
so a relay never rounds a price through ``float``. Times are Unix epoch
milliseconds, as the venue stamps them (``event_time``), so latency can be
measured from the upstream clock to the client.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec


__all__ = [
    "BookUpdate",
    "Depth",
    "Event",
    "Kline",
    "Ticker",
    "Trade",
    "channels_of",
]

Level = tuple[Decimal, Decimal]
"""One book level: (price, quantity)."""


class Ticker(msgspec.Struct, frozen=True, kw_only=True):
    """Rolling 24 h statistics; feeds both ``price:S`` and ``ticker:S``."""

    symbol: str
    price: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    change: Decimal
    change_percent: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    event_time: int


class Kline(msgspec.Struct, frozen=True, kw_only=True):
    """One candle of ``interval``; ``final`` once the interval has closed."""

    symbol: str
    interval: str
    open_time: int  # ms
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    final: bool
    event_time: int


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One trade; ``buyer_taker`` is True when the buyer took liquidity."""

    symbol: str
    id: int
    price: Decimal
    quantity: Decimal
    buyer_taker: bool
    event_time: int


class Depth(msgspec.Struct, frozen=True, kw_only=True):
    """Top of the book, best level first on each side."""

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    last_update_id: int
    event_time: int


class BookUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """A change of a symbol's full book, verified in sequence by the source.

    With ``snapshot`` the levels are the whole book and replace it (``reset``
    too when it follows a resync, so clients are told); otherwise they are
    the levels that changed, quantity 0 removing one. ``update_id`` is the
    venue's (Binance ``u``, or ``lastUpdateId`` of a snapshot). ``precision``
    (price and quantity decimals) comes with snapshots. The ingest projects
    it onto every open ``book:SYMBOL:DEPTH`` channel.
    """

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    update_id: int
    event_time: int
    snapshot: bool = False
    reset: bool = False
    precision: tuple[int, int] | None = None


Event = Ticker | Kline | Trade | Depth | BookUpdate


def channels_of(event: Event) -> tuple[str, ...]:
    """The channel names an event is published on (none for a book update: the
    ingest projects it onto the open depths of its symbol)."""
    if isinstance(event, BookUpdate):
        return ()
    if isinstance(event, Ticker):
        return (f"price:{event.symbol}", f"ticker:{event.symbol}")
    if isinstance(event, Kline):
        return (f"klines:{event.symbol}:{event.interval}",)
    if isinstance(event, Trade):
        return (f"trades:{event.symbol}",)
    return (f"depth:{event.symbol}",)
