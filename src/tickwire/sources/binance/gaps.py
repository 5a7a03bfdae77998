"""What an unplanned drop lost on a trade or kline stream, and what REST gives back (pure).

After a connection came back, the first live event of a stream tells where
the stream resumed; the de-duplication key the source had accepted before
the drop (:meth:`.parse.Normalizer.key`) tells where it stopped. Between them
lies the gap:

* trades: ids ``last + 1`` to ``first - 1`` (Binance trade ids are
  consecutive per symbol). ``GET /api/v3/trades?limit=1000`` gives the most
  recent 1000 trades, so the gap is filled from its *end*: the run of
  consecutive ids ending at ``first - 1`` is published, anything before it is
  lost for good and reported.
* klines: the candles opening from the one in progress at the drop (or the
  one after the last final seen) to the one before the first live candle.
  ``GET /api/v3/klines?limit=1000`` without a start gives the most recent
  candles, the current one included; again the run ending at the last
  missing candle is published (every candle before the first live one is
  closed, whatever the clocks say), the rest reported lost.

Nothing here awaits or reads the clock; :mod:`.backfill` runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

import msgspec

from ...channels import INTERVAL_SECONDS
from ...events import Event, Kline, Trade
from ...marketdata import interval_start, previous_start


__all__ = [
    "TRADES_LIMIT",
    "Fill",
    "Span",
    "fill_klines",
    "fill_trades",
    "kline_gap",
    "next_start",
    "parse_rest_trades",
    "trade_gap",
]

TRADES_LIMIT = 1000
"""Most trades ``GET /api/v3/trades`` returns (its ``limit`` maximum)."""

Span = tuple[int, int]
"""An inclusive range: trade ids, or candle open times in ms."""

_MONTH_MS = 32 * 86_400_000  # more than any month: interval_start brings it back to the 1st


class Fill(NamedTuple):
    """What to publish, oldest first, and what stays lost (None when nothing)."""

    events: list[Event]
    lost: Span | None


# -- REST body ------------------------------------------------------------------


class _RestTrade(msgspec.Struct):
    id: int
    price: Decimal
    qty: Decimal
    time: int
    isBuyerMaker: bool


_rest_trades = msgspec.json.Decoder(list[_RestTrade])


def parse_rest_trades(body: bytes, symbol: str) -> list[Trade]:
    """``GET /api/v3/trades?symbol=S&limit=1000``, oldest first::

        [{"id": 28457, "price": "4.00000100", "qty": "12.00000000", "quoteQty": "48.000012",
          "time": 1499865549590, "isBuyerMaker": true, "isBestMatch": true}]

    ``isBuyerMaker`` is the stream's ``m``: the taker sold when it is true.

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: not that shape.
    """
    return [
        Trade(symbol=symbol, id=r.id, price=r.price, quantity=r.qty, buyer_taker=not r.isBuyerMaker,
              event_time=r.time)
        for r in _rest_trades.decode(body)
    ]  # fmt: skip


# -- trades ---------------------------------------------------------------------


def trade_gap(last_id: int, first: Trade) -> Span | None:
    """The ids missed between the last trade seen before a drop and the first one after it."""
    return (last_id + 1, first.id - 1) if first.id > last_id + 1 else None


def fill_trades(gap: Span, rows: Sequence[Trade]) -> Fill:
    """The trades of ``gap`` that ``rows`` has, as the consecutive run ending at ``gap``'s end."""
    by_id = {t.id: t for t in rows if gap[0] <= t.id <= gap[1]}
    run: list[Event] = []
    at = gap[1]
    while at >= gap[0] and at in by_id:
        run.append(by_id[at])
        at -= 1
    run.reverse()
    return Fill(run, (gap[0], at) if at >= gap[0] else None)


# -- klines ---------------------------------------------------------------------


def next_start(start: int, interval: str) -> int:
    """Open time of the candle after the one opening at ``start``."""
    if interval == "1M":
        return interval_start(start + _MONTH_MS, "1M")
    return start + INTERVAL_SECONDS[interval] * 1000


def kline_gap(open_time: int, final: bool, first: Kline) -> Span | None:
    """The open times of the candles missed between the last candle seen before a drop
    (``open_time``, ``final`` or not) and the first one after it."""
    start = next_start(open_time, first.interval) if final else open_time
    if first.open_time <= start:
        return None
    return start, previous_start(first.open_time, first.interval)


def fill_klines(gap: Span, rows: Sequence[Kline]) -> Fill:
    """The candles of ``gap`` that ``rows`` has, as the run of consecutive candles ending at
    ``gap``'s end, each marked final: a candle before the first live one has closed."""
    by_time = {k.open_time: k for k in rows if gap[0] <= k.open_time <= gap[1]}
    run: list[Event] = []
    at = gap[1]
    while at >= gap[0] and at in by_time:
        candle = by_time[at]
        run.append(candle if candle.final else msgspec.structs.replace(candle, final=True))
        at = previous_start(at, candle.interval)
    run.reverse()
    return Fill(run, (gap[0], at) if at >= gap[0] else None)
