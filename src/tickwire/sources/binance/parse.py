"""Binance Spot payloads -> :mod:`events`, pure: no sockets, no clock reads.

Live data (:mod:`.binance`) and replays (:mod:`.replay`) both go through
:func:`parse_frame` and :class:`Normalizer`, so a replay shows clients exactly
what they saw live. Prices and quantities arrive as decimal strings and are
decoded straight into :class:`~decimal.Decimal` by msgspec: the digits the
venue sent are the digits a client gets (never a ``float`` in between).

Payload shapes: https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md
and ``rest-api.md`` of the same repository (see also docs/binance.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from ...channels import Channel, Kind
from ...errors import UpstreamError
from ...events import BookUpdate, Depth, Event, Kline, Ticker, Trade


__all__ = [
    "DEPTH_LEVELS",
    "DataFrame",
    "Frame",
    "Normalizer",
    "Reply",
    "ServerShutdown",
    "parse_depth",
    "parse_exchange_info",
    "parse_frame",
    "parse_kline",
    "parse_rest_depth",
    "parse_rest_kline",
    "parse_rest_ticker",
    "parse_ticker",
    "parse_trade",
    "stream_kind",
    "stream_of",
    "symbol_of_stream",
]

DEPTH_LEVELS = 10
"""Levels of the partial book stream a ``depth:S`` channel maps to."""

_DEPTH_SUFFIX = f"@depth{DEPTH_LEVELS}@100ms"


# --- channel <-> stream -----------------------------------------------------


def stream_of(channel: Channel) -> str:
    """The upstream stream behind a market channel (lower-case symbol).

    ``price:S`` and ``ticker:S`` share ``s@ticker``.
    """
    if channel.symbol is None or not channel.is_market:
        raise ValueError(f"{channel.name} has no upstream stream")
    s = channel.symbol.lower()
    if channel.kind in (Kind.PRICE, Kind.TICKER):
        return f"{s}@ticker"
    if channel.kind is Kind.KLINES:
        return f"{s}@kline_{channel.interval}"
    if channel.kind is Kind.TRADES:
        return f"{s}@trade"
    return s + _DEPTH_SUFFIX


def stream_kind(stream: str) -> str:
    """``trade``, ``kline``, ``ticker``, ``depth`` or ``book``; UpstreamError for any other stream."""
    _, _, rest = stream.partition("@")
    if rest == "trade":
        return "trade"
    if rest == "ticker":
        return "ticker"
    if rest.startswith("kline_"):
        return "kline"
    if rest.startswith("depth") and rest[5:6].isdigit():
        return "depth"
    if rest == "depth@100ms":
        return "book"  # the diff depth stream of book:S:D channels (sources/binance/books.py)
    raise UpstreamError(f"unexpected stream {stream!r}")


def symbol_of_stream(stream: str) -> str:
    return stream.partition("@")[0].upper()


# --- frames -----------------------------------------------------------------


class DataFrame(msgspec.Struct, frozen=True):
    """A combined-stream data frame: ``{"stream": name, "data": payload}``."""

    stream: str
    data: msgspec.Raw


class Reply(msgspec.Struct, frozen=True):
    """The answer to a control message; ``error`` is None on success.

    ``id`` is None for the flat error form, which may come without one.
    """

    id: int | str | None
    result: Any = None
    error: tuple[int, str] | None = None


class ServerShutdown(msgspec.Struct, frozen=True):
    """``{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":...}}``: reconnect now."""

    time: int


Frame = DataFrame | Reply | ServerShutdown


class _Err(msgspec.Struct):
    code: int
    msg: str


class _Envelope(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")  # msgspec takes no Raw in a union: empty means absent
    id: int | str | msgspec.UnsetType | None = msgspec.UNSET
    result: Any = None
    error: _Err | None = None
    code: int | None = None
    msg: str | None = None


class _Shutdown(msgspec.Struct):
    E: int


_envelope = msgspec.json.Decoder(_Envelope)
_shutdown = msgspec.json.Decoder(_Shutdown)


def parse_frame(text: str | bytes) -> Frame:
    """Classify one upstream text frame.

    Error replies come in two forms and both are accepted::

        {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": 19}
        {"code": 2, "msg": "Invalid request: invalid stream", "id": 3}   (id may be missing)

    Raises:
        UpstreamError: not JSON, or a shape this connector does not know.
    """
    try:
        env = _envelope.decode(text)
        if env.stream is not None and len(env.data):
            if env.stream == "!serverShutdown":
                return ServerShutdown(_shutdown.decode(env.data).E)
            return DataFrame(env.stream, env.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamError(f"bad frame: {exc}: {_clip(text)}") from exc
    ident = None if isinstance(env.id, msgspec.UnsetType) else env.id
    if env.error is not None:
        return Reply(ident, None, (env.error.code, env.error.msg))
    if env.code is not None and env.msg is not None:
        return Reply(ident, None, (env.code, env.msg))
    if not isinstance(env.id, msgspec.UnsetType):
        return Reply(ident, env.result)
    raise UpstreamError(f"unknown frame: {_clip(text)}")


def _clip(text: str | bytes, n: int = 120) -> str:
    shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return shown if len(shown) <= n else shown[:n] + "..."


# --- stream payloads ----------------------------------------------------------


class _BinanceTrade(msgspec.Struct):
    E: int
    s: str
    t: int
    p: Decimal
    q: Decimal
    T: int
    m: bool


class _KlineBody(msgspec.Struct):
    t: int
    i: str
    o: Decimal
    c: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - the venue's field name
    v: Decimal
    x: bool


class _BinanceKline(msgspec.Struct):
    E: int
    s: str
    k: _KlineBody


class _BinanceTicker(msgspec.Struct):
    E: int
    s: str
    p: Decimal
    P: Decimal
    c: Decimal
    b: Decimal
    B: Decimal
    a: Decimal
    A: Decimal
    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - the venue's field name
    v: Decimal
    q: Decimal
    n: int


class _BinanceDepth(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]


_trade = msgspec.json.Decoder(_BinanceTrade)
_kline = msgspec.json.Decoder(_BinanceKline)
_ticker = msgspec.json.Decoder(_BinanceTicker)
_depth = msgspec.json.Decoder(_BinanceDepth)


def parse_trade(data: bytes) -> Trade:
    """``<symbol>@trade``::

        {"e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345,
         "p": "0.001", "q": "100", "T": 1672515782136, "m": true, "M": true}

    ``m`` true means the buyer was the maker, so the taker sold:
    ``buyer_taker = not m``. The trade time ``T`` is the event time.
    """
    m = _trade.decode(data)
    return Trade(symbol=m.s, id=m.t, price=m.p, quantity=m.q, buyer_taker=not m.m, event_time=m.T)


def parse_kline(data: bytes) -> Kline:
    """``<symbol>@kline_<interval>``::

    {"e": "kline", "E": 1672515782136, "s": "BNBBTC",
     "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m",
           "f": 100, "L": 200, "o": "0.0010", "c": "0.0020", "h": "0.0025",
           "l": "0.0015", "v": "1000", "n": 100, "x": false, "q": "1.0000",
           "V": "500", "Q": "0.500", "B": "123456"}}
    """
    m = _kline.decode(data)
    k = m.k
    return Kline(
        symbol=m.s, interval=k.i, open_time=k.t, open=k.o, high=k.h, low=k.l, close=k.c,
        volume=k.v, final=k.x, event_time=m.E,
    )  # fmt: skip


def parse_ticker(data: bytes) -> Ticker:
    """``<symbol>@ticker`` (rolling 24 h)::

    {"e": "24hrTicker", "E": 1672515782136, "s": "BNBBTC", "p": "0.0015",
     "P": "250.00", "w": "0.0018", "x": "0.0009", "c": "0.0025", "Q": "10",
     "b": "0.0024", "B": "10", "a": "0.0026", "A": "100", "o": "0.0010",
     "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18", "O": 0,
     "C": 86400000, "F": 0, "L": 18150, "n": 18151}
    """
    m = _ticker.decode(data)
    return Ticker(
        symbol=m.s, price=m.c, open=m.o, high=m.h, low=m.l, change=m.p, change_percent=m.P,
        volume=m.v, quote_volume=m.q, trades=m.n, bid=m.b, bid_qty=m.B, ask=m.a, ask_qty=m.A,
        event_time=m.E,
    )  # fmt: skip


def parse_depth(data: bytes, symbol: str, recv_ms: int) -> Depth:
    """``<symbol>@depth10@100ms`` (partial book, a full top-10 each time)::

        {"lastUpdateId": 160, "bids": [["0.0024", "10"]], "asks": [["0.0026", "100"]]}

    No ``e``, ``E`` or ``s``: the symbol comes from the stream name and the
    event time is the receive time.
    """
    m = _depth.decode(data)
    return _book(m, symbol, recv_ms)


def _book(m: _BinanceDepth, symbol: str, event_time: int) -> Depth:
    return Depth(
        symbol=symbol,
        bids=tuple(m.bids[:DEPTH_LEVELS]),
        asks=tuple(m.asks[:DEPTH_LEVELS]),
        last_update_id=m.lastUpdateId,
        event_time=event_time,
    )


# --- REST bodies ----------------------------------------------------------------


class _RestTicker(msgspec.Struct):
    symbol: str
    priceChange: Decimal
    priceChangePercent: Decimal
    lastPrice: Decimal
    bidPrice: Decimal
    bidQty: Decimal
    askPrice: Decimal
    askQty: Decimal
    openPrice: Decimal
    highPrice: Decimal
    lowPrice: Decimal
    volume: Decimal
    quoteVolume: Decimal
    closeTime: int
    count: int


class _SymbolInfo(msgspec.Struct):
    symbol: str
    status: str


class _ExchangeInfo(msgspec.Struct):
    symbols: list[_SymbolInfo]


_rest_ticker = msgspec.json.Decoder(_RestTicker)
_rest_klines = msgspec.json.Decoder(list[list[msgspec.Raw]])  # 12 mixed fields per row, maybe more later
_exchange_info = msgspec.json.Decoder(_ExchangeInfo)


def parse_rest_ticker(body: bytes) -> Ticker:
    """``GET /api/v3/ticker/24hr?symbol=S``::

    {"symbol": "BNBBTC", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
     "weightedAvgPrice": "0.29628482", "prevClosePrice": "0.10002000",
     "lastPrice": "4.00000200", "lastQty": "200.00000000", "bidPrice": "4.00000000",
     "bidQty": "100.00000000", "askPrice": "4.00000200", "askQty": "100.00000000",
     "openPrice": "99.00000000", "highPrice": "100.00000000", "lowPrice": "0.10000000",
     "volume": "8913.30000000", "quoteVolume": "15.30000000", "openTime": 1499783499040,
     "closeTime": 1499869899040, "firstId": 28385, "lastId": 28460, "count": 76}
    """
    m = _rest_ticker.decode(body)
    return Ticker(
        symbol=m.symbol, price=m.lastPrice, open=m.openPrice, high=m.highPrice, low=m.lowPrice,
        change=m.priceChange, change_percent=m.priceChangePercent, volume=m.volume,
        quote_volume=m.quoteVolume, trades=m.count, bid=m.bidPrice, bid_qty=m.bidQty,
        ask=m.askPrice, ask_qty=m.askQty, event_time=m.closeTime,
    )  # fmt: skip


def parse_rest_kline(body: bytes, symbol: str, interval: str, recv_ms: int) -> Kline | None:
    """``GET /api/v3/klines?symbol=S&interval=I&limit=1`` (the newest candle last)::

        [[1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
          "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
          "28.46694368", "0"]]

    Fields by index: open time, open, high, low, close, volume, close time, ...
    The candle is final once its close time has passed.
    """
    rows = _rest_klines.decode(body)
    if not rows:
        return None
    row = rows[-1]
    if len(row) < 7:
        raise msgspec.ValidationError(f"kline row of {len(row)} fields")
    t, close_time = (msgspec.json.decode(row[i], type=int) for i in (0, 6))
    o, h, low, c, v = (msgspec.json.decode(row[i], type=Decimal) for i in range(1, 6))
    return Kline(
        symbol=symbol, interval=interval, open_time=t, open=o, high=h, low=low, close=c,
        volume=v, final=close_time < recv_ms, event_time=recv_ms,
    )  # fmt: skip


def parse_rest_depth(body: bytes, symbol: str, recv_ms: int) -> Depth:
    """``GET /api/v3/depth?symbol=S&limit=10``::

    {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]],
     "asks": [["4.00000200", "12.00000000"]]}
    """
    return _book(_depth.decode(body), symbol, recv_ms)


def parse_exchange_info(body: bytes) -> dict[str, str]:
    """``GET /api/v3/exchangeInfo`` -> ``{symbol: status}``::

    {"timezone": "UTC", "serverTime": 1565246363776, "rateLimits": [...],
     "exchangeFilters": [], "symbols": [{"symbol": "ETHBTC", "status": "TRADING",
     "baseAsset": "ETH", "quoteAsset": "BTC", ...}]}
    """
    try:
        info = _exchange_info.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamError(f"bad exchangeInfo: {exc}") from exc
    return {s.symbol: s.status for s in info.symbols}


# --- normalization with de-duplication ---------------------------------------------

Key = tuple[int, ...]


def _key(event: Event) -> Key:
    if isinstance(event, Trade):
        return (event.id,)
    if isinstance(event, Kline):
        return (event.event_time, event.open_time, int(event.final))
    if isinstance(event, Ticker):
        return (event.event_time,)
    if isinstance(event, BookUpdate):
        return (event.update_id,)
    return (event.last_update_id,)


class Normalizer:
    """Stream payload -> event, dropping anything not newer than what was accepted.

    During a make-before-break rotation two connections carry the same
    streams; the first copy of each item wins. Keys, per stream: trade id,
    kline (event time, open time, final), ticker event time, book
    ``lastUpdateId``. Keys only grow, so a late copy can never step back.
    """

    def __init__(self) -> None:
        self._keys: dict[str, Key] = {}

    def key(self, stream: str) -> Key | None:
        return self._keys.get(stream)

    def reset(self) -> None:
        self._keys.clear()

    def forget(self, stream: str) -> None:
        """Drop a stream's key (it was closed; a later open starts afresh)."""
        self._keys.pop(stream, None)

    def accept(self, stream: str, data: bytes, recv_ms: int) -> Event | None:
        """The event of one data payload, or None when it is a duplicate.

        Raises:
            UpstreamError: the payload does not have its stream's shape.
        """
        event = self.parse(stream, data, recv_ms)
        return self._admit(stream, event)

    def parse(self, stream: str, data: bytes, recv_ms: int) -> Event:
        kind = stream_kind(stream)
        try:
            if kind == "trade":
                return parse_trade(data)
            if kind == "kline":
                return parse_kline(data)
            if kind == "ticker":
                return parse_ticker(data)
            return parse_depth(data, symbol_of_stream(stream), recv_ms)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamError(f"bad {kind} payload on {stream}: {exc}") from exc

    def _admit(self, stream: str, event: Event) -> Event | None:
        key = _key(event)
        last = self._keys.get(stream)
        if last is not None and key <= last:
            return None
        self._keys[stream] = key
        return event

    def accept_rest(self, stream: str, body: bytes, recv_ms: int) -> Event | None:
        """The event of a REST snapshot body for ``stream``, unless live data is newer.

        A REST kline has no event time comparable with the stream's, so it is
        only taken while the stream has delivered nothing; it never moves the key.

        Raises:
            UpstreamError: the body does not have the endpoint's shape.
        """
        kind = stream_kind(stream)
        symbol = symbol_of_stream(stream)
        try:
            if kind == "ticker":
                return self._admit(stream, parse_rest_ticker(body))
            if kind == "depth":
                return self._admit(stream, parse_rest_depth(body, symbol, recv_ms))
            if kind == "kline":
                interval = stream.partition("@kline_")[2]
                if stream in self._keys:
                    return None
                return parse_rest_kline(body, symbol, interval, recv_ms)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamError(f"bad REST body for {stream}: {exc}") from exc
        return None
