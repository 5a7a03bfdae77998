"""The payloads the book engine reads, pure: no sockets, no clock reads.

Diff depth events (``<symbol>@depth@100ms``), REST depth snapshots
(``GET /api/v3/depth``) and what ``GET /api/v3/exchangeInfo`` says about
the book: each symbol's price and quantity decimals and the request-weight
limit. Prices and quantities are decoded straight into
:class:`~decimal.Decimal` (the digits the venue sent). Shapes:
web-socket-streams.md "Diff. Depth Stream" and rest-api.md of
https://github.com/binance/binance-spot-api-docs.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TypeVar

import msgspec

from ...errors import UpstreamError
from ...marketdata import decimals


__all__ = [
    "BOOK_SUFFIX",
    "DiffEvent",
    "ExchangeFacts",
    "RestBook",
    "SymbolFilter",
    "book_stream",
    "depth_weight",
    "digits_of",
    "is_book_stream",
    "parse_diff",
    "parse_exchange_facts",
    "parse_rest_book",
    "tick_and_step",
]

BOOK_SUFFIX = "@depth@100ms"
"""The diff depth stream behind every ``book:SYMBOL:DEPTH`` channel of a symbol."""

Levels = tuple[tuple[Decimal, Decimal], ...]


def book_stream(symbol: str) -> str:
    return symbol.lower() + BOOK_SUFFIX


def is_book_stream(stream: str) -> bool:
    return stream.endswith(BOOK_SUFFIX)


def depth_weight(limit: int) -> int:
    """Request weight of ``GET /api/v3/depth`` by ``limit`` (rest-api.md, since 2023-10-19)."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


class DiffEvent(msgspec.Struct, frozen=True):
    """One ``depthUpdate``: the levels that changed between update ids ``first`` and ``last``."""

    symbol: str
    first: int  # U
    last: int  # u
    bids: Levels
    asks: Levels
    event_time: int  # E, ms


class RestBook(msgspec.Struct, frozen=True):
    """A REST snapshot: the book as of ``last_update_id``, best level first on each side."""

    last_update_id: int
    bids: Levels
    asks: Levels


class _Diff(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[Decimal, Decimal]]
    a: list[tuple[Decimal, Decimal]]


class _Rest(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]


class SymbolFilter(msgspec.Struct):
    """One of an exchangeInfo symbol's ``filters`` (the fields that give its decimals)."""

    filterType: str
    tickSize: str | None = None
    stepSize: str | None = None


def tick_and_step(filters: list[SymbolFilter]) -> tuple[str | None, str | None]:
    """``PRICE_FILTER.tickSize`` and ``LOT_SIZE.stepSize`` of a symbol (None when missing)."""
    tick = next((f.tickSize for f in filters if f.filterType == "PRICE_FILTER" and f.tickSize), None)
    step = next((f.stepSize for f in filters if f.filterType == "LOT_SIZE" and f.stepSize), None)
    return tick, step


class _Symbol(msgspec.Struct):
    symbol: str
    filters: list[SymbolFilter] = []


class _RateLimit(msgspec.Struct):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class _Info(msgspec.Struct):
    symbols: list[_Symbol] = []
    rateLimits: list[_RateLimit] = []


_T = TypeVar("_T")

_diff = msgspec.json.Decoder(_Diff)
_rest = msgspec.json.Decoder(_Rest)
_info = msgspec.json.Decoder(_Info)


def _decode(decoder: msgspec.json.Decoder[_T], data: bytes, what: str) -> _T:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamError(f"bad {what}: {exc}") from exc


def parse_diff(data: bytes) -> DiffEvent:
    """``<symbol>@depth@100ms``::

        {"e": "depthUpdate", "E": 1672515782136, "s": "BNBBTC",
         "U": 157,                      // first update id in the event
         "u": 160,                      // last update id in the event
         "b": [["0.0024", "10"]],       // bids to update: price, quantity (0: remove)
         "a": [["0.0026", "100"]]}      // asks to update

    Raises:
        UpstreamError: not that shape.
    """
    m = _decode(_diff, data, "depthUpdate")
    return DiffEvent(m.s, m.U, m.u, tuple(m.b), tuple(m.a), m.E)


def parse_rest_book(body: bytes) -> RestBook:
    """``GET /api/v3/depth?symbol=S&limit=N``::

        {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]],
         "asks": [["4.00000200", "12.00000000"]]}

    Raises:
        UpstreamError: not that shape.
    """
    m = _decode(_rest, body, "depth snapshot")
    return RestBook(m.lastUpdateId, tuple(m.bids), tuple(m.asks))


class ExchangeFacts(msgspec.Struct, frozen=True):
    """What exchangeInfo says that the book engine and the weight budget use."""

    weight_per_minute: int | None  # REQUEST_WEIGHT per 1 MINUTE; None when not listed
    precisions: dict[str, tuple[int, int]]  # symbol -> (price decimals, qty decimals)


def parse_exchange_facts(body: bytes) -> ExchangeFacts:
    """``GET /api/v3/exchangeInfo``::

        {"rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                         "intervalNum": 1, "limit": 6000}, ...],
         "symbols": [{"symbol": "ETHBTC", "filters": [
             {"filterType": "PRICE_FILTER", "tickSize": "0.00001000", ...},
             {"filterType": "LOT_SIZE", "stepSize": "0.00010000", ...}, ...], ...}]}

    A symbol lacking either filter is left out (its precision is then taken
    from its snapshot's digits).

    Raises:
        UpstreamError: not that shape.
    """
    info = _decode(_info, body, "exchangeInfo")
    weight = next(
        (
            r.limit
            for r in info.rateLimits
            if r.rateLimitType == "REQUEST_WEIGHT" and r.interval == "MINUTE" and r.intervalNum == 1
        ),
        None,
    )
    precisions: dict[str, tuple[int, int]] = {}
    for s in info.symbols:
        tick, step = tick_and_step(s.filters)
        if tick and step:
            precisions[s.symbol] = (decimals(tick), decimals(step))
    return ExchangeFacts(weight, precisions)


def digits_of(*sides: Iterable[tuple[Decimal, Decimal]]) -> tuple[int, int]:
    """(price, qty) decimals the levels need, trailing zeros ignored: the fallback precision."""
    price = qty = 0
    for side in sides:
        for p, q in side:
            price = max(price, _places(p))
            qty = max(qty, _places(q))
    return price, qty


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
