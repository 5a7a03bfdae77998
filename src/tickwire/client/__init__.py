"""The tickwire client library: typed, self-healing feeds from a gateway.

::

    import asyncio
    from tickwire import client

    async def main() -> None:
        async with client.connect("ws://127.0.0.1:3000/ws") as feed:
            await feed.subscribe("price:BTCUSDT", "trades:BTCUSDT")
            async for msg in feed:
                match msg:
                    case client.Price():
                        print(msg.symbol, msg.data.price)
                    case client.Gap():
                        print("missed", msg.missed, "on", msg.channel)

A ``book:`` channel comes with a local book the feed keeps verified
(``book = await feed.book("book:BTCUSDT:20")``; ``book.bids``,
``book.best_ask``, ``book.spread``; see docs/book.md, "Client book").

    asyncio.run(main())

It imports only the pure core of tickwire (channels, errors, backoff, the
message structs of :mod:`tickwire.messages`, which the gateway encodes with,
and the book checksum of :mod:`tickwire.orderbook`)
and aiohttp's client, never the server's dependencies. See docs/client.md.
"""

from __future__ import annotations

from ..marketdata import Precision, SymbolInfo
from .backoff import Action, backoff, policy
from .book import Applied, Book
from .feed import ClientError, ConnectionClosed, Feed, SubscriptionError, connect, ws_url
from .market import MarketDataError
from .messages import (
    Account,
    Authenticated,
    BookData,
    BookMessage,
    BookPrecision,
    Connected,
    Control,
    DataMessage,
    Depth,
    DepthData,
    Disconnected,
    Error,
    Gap,
    Kline,
    KlineData,
    Message,
    NotRecovered,
    Order,
    Pong,
    Portfolio,
    Price,
    PriceData,
    Recovered,
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
    Unknown,
    Unsubscribed,
    decode,
    encode,
)


__all__ = [
    # connecting
    "connect",
    "Feed",
    "ws_url",
    # errors
    "ClientError",
    "ConnectionClosed",
    "SubscriptionError",
    "MarketDataError",
    # messages
    "Message",
    "DataMessage",
    "ServerMessage",
    "Control",
    "Price",
    "PriceData",
    "Ticker",
    "TickerData",
    "Kline",
    "KlineData",
    "Trade",
    "TradeData",
    "Depth",
    "DepthData",
    "BookMessage",
    "BookData",
    "BookPrecision",
    "Signal",
    "Order",
    "Portfolio",
    "Account",
    "Status",
    "Connected",
    "SubscribeOptions",
    "Subscribed",
    "Unsubscribed",
    "Pong",
    "Authenticated",
    "Subscriptions",
    "Error",
    "Gap",
    "Recovered",
    "NotRecovered",
    "Disconnected",
    "Unknown",
    "SymbolInfo",
    "Precision",
    "decode",
    "encode",
    # the local order book of a book:SYMBOL:DEPTH channel
    "Book",
    "Applied",
    # reconnect policy
    "Action",
    "backoff",
    "policy",
]
