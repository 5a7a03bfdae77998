"""The hftbacktest capture for W6, with the partial depth stream Binance would have sent beside it.

W6 compares ``book:BTCUSDT:DEPTH`` with ``depth:BTCUSDT`` on one feed. The
capture (tests/data/binance/captures/SOURCES.md, file 1) holds the diff depth
stream ``btcusdt@depth@100ms`` and one REST snapshot, but not the partial
book stream ``btcusdt@depth10@100ms`` that a ``depth:`` channel maps to.
Binance builds that stream from the same book at the same 100 ms cadence (a
full top 10 of each side, ``lastUpdateId`` = the last diff's ``u``), so we
derive it: the snapshot is bridged to the diffs by Binance's rules, and after
the snapshot (the diffs received before it applied, as Binance's procedure
buffers them) and every later diff a ``depth10`` frame with the top 10 levels (the venue's
own decimal strings) is inserted at the diff's receive time. Everything else
of the capture is kept, in order, so the replay source plays the same frames
to the book engine in both runs.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from tickwire.orderbook import BookSide
from tickwire.sources.replay import Capture, read_capture


__all__ = ["CAPTURE", "with_partial_depth"]

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "tests" / "data" / "binance" / "captures" / "hftbacktest_spot_btcusdt_20240808.ws.jsonl"
_LEVELS = 10


class _Book:
    """Both sides of one symbol's book, bridged to the diff stream by Binance's rules."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.bids, self.asks = BookSide(bids=True), BookSide(bids=False)
        self.last: int = snapshot["lastUpdateId"]
        self._apply(snapshot["bids"], snapshot["asks"])

    def _apply(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, qty in levels:
                side.set(Decimal(price), Decimal(qty))

    def diff(self, data: dict[str, Any]) -> bool:
        """Apply one ``depthUpdate``; False when it is older than the book (``u <= lastUpdateId``)."""
        if data["u"] <= self.last:
            return False
        if data["U"] > self.last + 1:  # the capture's chain is gapless (SOURCES.md): a gap is a bug here
            raise ValueError(f"diff {data['U']}..{data['u']} does not follow {self.last}")
        self._apply(data["b"], data["a"])
        self.last = data["u"]
        return True

    def partial(self) -> str:
        """The ``@depth10@100ms`` payload of the book as it is now."""

        def side(levels: BookSide) -> list[list[str]]:
            return [[str(price), str(qty)] for price, qty in levels.top(_LEVELS)]

        body = {"lastUpdateId": self.last, "bids": side(self.bids), "asks": side(self.asks)}
        return json.dumps(body, separators=(",", ":"))


def with_partial_depth(out: Path, source: Path = CAPTURE) -> dict[str, int]:
    """Write ``source`` as a ``tickwire record`` capture (JSON lines) with a derived ``depth10`` stream.

    Returns:
        counts: frames kept, diffs applied, depth10 frames added.
    """
    books: dict[str, _Book] = {}
    early: dict[str, list[dict[str, Any]]] = {}  # diffs received before the symbol's snapshot
    lines: list[bytes] = []
    counts = {"frames": 0, "diffs": 0, "partials": 0}
    encode = msgspec.json.Encoder().encode

    def partial(symbol: str, t: int) -> None:
        body = books[symbol].partial()
        lines.append(encode(Capture(t, ws=f'{{"stream":"{symbol}@depth{_LEVELS}@100ms","data":{body}}}')))
        counts["partials"] += 1

    for record in read_capture(source):
        lines.append(encode(record))
        counts["frames"] += 1
        if record.rest is not None and record.body is not None:
            symbol = record.rest.split("@", 1)[0]
            book = books[symbol] = _Book(json.loads(record.body))
            counts["diffs"] += sum(book.diff(data) for data in early.pop(symbol, []))
            partial(symbol, record.t)
            continue
        frame = json.loads(record.ws or "{}")
        stream: str = frame.get("stream", "")
        symbol = stream.split("@", 1)[0]
        if not stream.endswith("@depth@100ms"):
            continue
        if symbol not in books:
            early.setdefault(symbol, []).append(frame["data"])
        elif books[symbol].diff(frame["data"]):
            counts["diffs"] += 1
            partial(symbol, record.t)
    out.write_bytes(b"\n".join(lines) + b"\n")
    return counts
