"""Book messages for tests: encode them as the ingest does, checksum them, rebuild books.

Until the ingest projects books (orderbook.py), tests publish these payloads
straight into the bus or the hub. Levels are given as ``(price, qty)``
strings so the digits on the wire are exactly the test's.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

import msgspec

from tickwire.messages import Book, BookData, BookPrecision


__all__ = ["Levels", "RefBook", "book_payload", "checksum_v1"]

Levels = list[tuple[str, str]]


def _dec(x: Any) -> Decimal:
    """A level number as sent or received (str, Decimal, or a JSON float: its shortest repr)."""
    return x if isinstance(x, Decimal) else Decimal(str(x))


_encoder = msgspec.json.Encoder(decimal_format="number")


def _digits(x: Decimal, decimals: int) -> str:
    return format(x, f".{decimals}f").replace(".", "").lstrip("0") or "0"


def checksum_v1(
    bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]], precision: tuple[int, int]
) -> int:
    """Book checksum v1 (docs/protocol.md): top 10 asks ascending, then bids descending."""
    p, q = precision
    top = sorted(asks)[:10] + sorted(bids, reverse=True)[:10]
    text = "".join(_digits(price, p) + _digits(qty, q) for price, qty in top)
    return zlib.crc32(text.encode())


class RefBook:
    """A reference book: what a correct client holds, built from wire messages (dicts or Levels)."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.seq = 0

    def apply_levels(self, bids: Any, asks: Any, *, snapshot: bool = False) -> None:
        if snapshot:
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, qty in levels:
                if _dec(qty):
                    side[_dec(price)] = _dec(qty)
                else:
                    side.pop(_dec(price), None)

    def apply(self, msg: dict[str, Any]) -> None:
        """Apply a received ``book`` message (a decoded JSON object)."""
        data = msg["data"]
        snapshot = bool(msg.get("snapshot"))
        if not snapshot:
            assert msg["seq"] == self.seq + 1, f"gap: {self.seq} then {msg['seq']}"
        self.apply_levels(data["bids"], data["asks"], snapshot=snapshot)
        self.seq = msg["seq"]

    def top(self, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        return sorted(self.bids.items(), reverse=True)[:depth], sorted(self.asks.items())[:depth]


def book_payload(
    channel: str,
    seq: int,
    bids: Levels,
    asks: Levels,
    *,
    snapshot: bool = False,
    book: RefBook | None = None,
    precision: tuple[int, int] = (2, 5),
    update_id: int | None = None,
    timestamp: int = 1_723_161_255_208,
) -> bytes:
    """A ``book`` message as the ingest publishes it; with ``book`` (the book after
    applying it) its checksum is the real v1 checksum, else 0."""
    symbol, depth = channel.split(":")[1], int(channel.split(":")[2])
    checksum = 0
    if book is not None:
        top_bids, top_asks = book.top(depth)
        checksum = checksum_v1(top_bids, top_asks, precision)
    data = BookData(
        bids=tuple((Decimal(p), Decimal(q)) for p, q in bids),
        asks=tuple((Decimal(p), Decimal(q)) for p, q in asks),
        precision=BookPrecision(*precision) if snapshot else None,
        checksum=checksum,
        updateId=update_id if update_id is not None else 1000 + seq,
        timestamp=timestamp,
    )
    msg = Book(
        channel=channel,
        symbol=symbol,
        depth=depth if snapshot else None,
        seq=seq,
        snapshot=snapshot,
        data=data,
    )
    return _encoder.encode(msg)
