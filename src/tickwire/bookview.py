"""A book channel's current state, rebuilt from the channel's own publications.

Pure: msgspec and the standard library; no clock, no I/O. The hub keeps one
:class:`BookView` per ``book:SYMBOL:DEPTH`` channel it serves and applies
every publication of that channel to it, so that it can greet a subscriber
with a snapshot and replace a slow client's queued diffs by one
(docs/book.md, "Delivery to slow clients"). It is built from the publications alone, as a
gateway on the Redis bus sees them, never from the source's book.

Rules (docs/protocol.md, "Order book channel"):

1. A message with ``snapshot: true`` replaces the view; a diff sets each
   listed level (quantity 0 removes it). The view knows the ``seq``,
   ``checksum``, ``updateId`` and ``timestamp`` of the last message applied:
   the checksum of the snapshot at seq N is the one message N carried.
2. The view is *ready* only after a snapshot, and while the seqs it applied
   since are contiguous. A diff alone never makes a view: a diff that arrives
   while the view is not ready is held (bounded), and a snapshot at seq S
   then catches up through the held diffs S+1, S+2, ... So a snapshot older
   than diffs already seen (the Redis snapshot key read after the first
   diffs arrived) still makes a whole view.
3. :meth:`BookView.snapshot_frame` encodes the snapshot once per seq and
   caches the WebSocket frame, so every client that needs it shares it.
   Levels go out exactly as they were received: prices and quantities are
   kept as :class:`~decimal.Decimal` and formatted without exponent.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import msgspec

from .channels import parse_channel
from .frames import text_frame
from .messages import Book, BookPrecision


__all__ = ["MAX_HELD_DIFFS", "BookView", "Outcome"]

MAX_HELD_DIFFS = 1024
"""Diffs a view that is not ready keeps, waiting for a snapshot to catch up from."""

_decoder = msgspec.json.Decoder(Book)
_encoder = msgspec.json.Encoder()
_levels_encoder = msgspec.json.Encoder(decimal_format="number")


class Outcome(enum.Enum):
    """What a publication did to the view, which tells the hub what to fan out."""

    SNAPSHOT = "snapshot"  # it replaced the view: fan it out as a snapshot
    DIFF = "diff"  # it followed a ready view (applied, or a gap that broke it): fan it out
    HELD = "held"  # the view is not ready and was not before: nobody can use it; hold it


class _SnapshotData(msgspec.Struct, omit_defaults=True):
    """:class:`~tickwire.messages.BookData` with its levels pre-rendered (exact decimals)."""

    bids: msgspec.Raw
    asks: msgspec.Raw
    precision: BookPrecision | None
    checksum: int
    updateId: int
    timestamp: int


class _Snapshot(msgspec.Struct, tag_field="type", tag="book"):
    """:class:`~tickwire.messages.Book` as a snapshot, fields in the wire's order."""

    channel: str
    symbol: str
    depth: int
    seq: int
    snapshot: bool
    data: _SnapshotData


def _render(levels: list[tuple[Decimal, Decimal]]) -> msgspec.Raw:
    """The levels as JSON, with the digits as received (97523.40 stays 97523.40)."""
    text = _levels_encoder.encode(levels)  # in C: ~8x faster than formatting in Python
    if b"E" in text:  # a tiny or huge value went out as 1E-8: format "f" never uses an exponent
        text = ("[" + ",".join(f"[{p:f},{q:f}]" for p, q in levels) + "]").encode()
    return msgspec.Raw(text)


class BookView:
    """The book of one ``book:SYMBOL:DEPTH`` channel as its subscribers hold it.

    Args:
        channel: the canonical channel name (``book:BTCUSDT:100``).
        max_held: diffs kept while not ready (the oldest go first).
    """

    __slots__ = (
        "_asks",
        "_bids",
        "_frame",
        "_held",
        "_max_held",
        "channel",
        "checksum",
        "depth",
        "precision",
        "ready",
        "seq",
        "snapshot_size",
        "symbol",
        "timestamp",
        "update_id",
    )

    def __init__(self, channel: str, *, max_held: int = MAX_HELD_DIFFS) -> None:
        parsed = parse_channel(channel)
        self.channel = parsed.name
        self.symbol = parsed.symbol or ""
        self.depth = parsed.depth or 0
        self.ready = False
        self.seq = 0
        self.checksum = 0
        self.update_id = 0
        self.timestamp = 0
        self.precision: BookPrecision | None = None
        self.snapshot_size = 0
        """Bytes of the last snapshot frame seen or encoded: the slow-client rule's yardstick."""
        self._bids: dict[Decimal, Decimal] = {}
        self._asks: dict[Decimal, Decimal] = {}
        self._frame: bytes | None = None  # the snapshot frame at ``seq``, once encoded
        self._held: dict[int, Book] = {}  # seq -> diff, while not ready
        self._max_held = max_held

    # -- applying publications ---------------------------------------------------

    def apply(self, seq: int, payload: bytes) -> Outcome:
        """Apply the message ``payload`` published with ``seq``; in any seq order."""
        was_ready = self.ready
        try:
            msg = _decoder.decode(payload)
        except msgspec.DecodeError:
            self._break()  # a message we cannot read: the view cannot be trusted past it
            return Outcome.DIFF if was_ready else Outcome.HELD
        if msg.snapshot:
            if was_ready and seq <= self.seq:
                return Outcome.HELD  # an older snapshot than the view (a late read of a key)
            self._replace(seq, msg, len(payload))
            self._catch_up()
            return Outcome.SNAPSHOT if self.ready else Outcome.HELD
        if was_ready and seq == self.seq + 1:
            self._apply_diff(seq, msg)
            return Outcome.DIFF
        if was_ready and seq <= self.seq:
            return Outcome.HELD  # a duplicate
        self._break()
        self._hold(seq, msg)
        # the diff that breaks a ready view still goes out: its clients see the gap themselves
        return Outcome.DIFF if was_ready else Outcome.HELD

    def _replace(self, seq: int, msg: Book, size: int) -> None:
        data = msg.data
        self._bids = {p: q for p, q in data.bids if q}
        self._asks = {p: q for p, q in data.asks if q}
        if data.precision is not None:
            self.precision = data.precision
        self._set_position(seq, msg)
        self.ready = True
        self.snapshot_size = size + 4  # about the frame: payload and a 2-4 byte header

    def _apply_diff(self, seq: int, msg: Book) -> None:
        data = msg.data
        for side, levels in ((self._bids, data.bids), (self._asks, data.asks)):
            for price, qty in levels:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self._set_position(seq, msg)

    def _set_position(self, seq: int, msg: Book) -> None:
        self.seq = seq
        self.checksum = msg.data.checksum
        self.update_id = msg.data.updateId
        self.timestamp = msg.data.timestamp
        self._frame = None

    def _hold(self, seq: int, msg: Book) -> None:
        held = self._held
        held[seq] = msg
        if len(held) > self._max_held:
            del held[next(iter(held))]

    def _catch_up(self) -> None:
        """After a snapshot: apply the held diffs that follow it, without a gap."""
        held, self._held = self._held, {}
        seq = self.seq + 1
        while seq in held:
            self._apply_diff(seq, held.pop(seq))
            seq += 1
        # diffs past a gap: the stream has moved on beyond what this snapshot can
        # reach, so the view waits for a newer snapshot (older diffs are dropped)
        self._held = {s: m for s, m in held.items() if s > seq}
        if self._held:
            self._break()

    def _break(self) -> None:
        self.ready = False
        self._frame = None

    # -- reading -------------------------------------------------------------------

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(bids best first, asks best first), at most ``depth`` each."""
        bids = sorted(self._bids.items(), reverse=True)[: self.depth]
        asks = sorted(self._asks.items())[: self.depth]
        return bids, asks

    def snapshot_frame(self) -> bytes | None:
        """The snapshot at the current seq as a WebSocket frame (None while not ready).

        Encoded on the first call after a change and cached: one encoding per
        seq, shared by every client that needs it.
        """
        if not self.ready:
            return None
        frame = self._frame
        if frame is None:
            frame = self._frame = text_frame(self.snapshot_payload())
            self.snapshot_size = len(frame)
        return frame

    def snapshot_payload(self) -> bytes:
        """The snapshot message at the current seq (JSON, no framing); encoded on each call."""
        bids, asks = self.levels()
        data = _SnapshotData(
            _render(bids), _render(asks), self.precision, self.checksum, self.update_id, self.timestamp
        )
        return _encoder.encode(_Snapshot(self.channel, self.symbol, self.depth, self.seq, True, data))
