"""A book client written from docs/protocol.md alone, for tests: it applies ``book``
messages as decoded JSON (numbers as floats, as a browser has them) and
computes book checksum v1 its own way, so it checks the gateway rather than
repeating the gateway's code."""

from __future__ import annotations

import zlib
from typing import Any


__all__ = ["ClientBook"]


class ClientBook:
    """One ``book:SYMBOL:DEPTH`` channel as a client holds it."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.precision: tuple[int, int] | None = None
        self.seq: int | None = None
        self.messages = 0
        self.snapshots = 0

    def apply(self, msg: dict[str, Any]) -> None:
        """Apply one message: a snapshot replaces the book, a diff must follow the last seq."""
        assert msg["type"] == "book"
        data = msg["data"]
        if msg.get("snapshot"):
            precision = data["precision"]
            self.precision = (precision["price"], precision["qty"])
            self.bids = {float(p): float(q) for p, q in data["bids"]}
            self.asks = {float(p): float(q) for p, q in data["asks"]}
            assert all(q > 0 for q in (*self.bids.values(), *self.asks.values())), "a snapshot lists no 0"
            self.snapshots += 1
        else:
            assert self.seq is not None, "a diff before any snapshot"
            assert msg["seq"] == self.seq + 1, f"seq gap: {self.seq} -> {msg['seq']}"
            assert "precision" not in data and "depth" not in msg
            for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
                for price, qty in levels:
                    if qty:
                        side[float(price)] = float(qty)
                    else:
                        side.pop(float(price), None)
        self.seq = msg["seq"]
        self.messages += 1

    def top_bids(self, n: int) -> list[tuple[float, float]]:
        return sorted(self.bids.items(), reverse=True)[:n]

    def top_asks(self, n: int) -> list[tuple[float, float]]:
        return sorted(self.asks.items())[:n]

    def checksum(self) -> int:
        """Book checksum v1 over this client's top 10 levels (``format(x, f".{p}f")``)."""
        assert self.precision is not None
        pp, qp = self.precision
        text = ""
        for price, qty in (*self.top_asks(10), *self.top_bids(10)):
            for value, places in ((price, pp), (qty, qp)):
                text += format(value, f".{places}f").replace(".", "").lstrip("0") or "0"
        return zlib.crc32(text.encode())

    def verify(self, msg: dict[str, Any]) -> None:
        """Apply ``msg`` and check its checksum against this book."""
        self.apply(msg)
        assert msg["data"]["checksum"] == self.checksum(), f"checksum mismatch at seq {msg['seq']}"
