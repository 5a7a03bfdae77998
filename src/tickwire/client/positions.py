"""Where the client stands in each channel: ``(epoch, seq)``, for resuming after a reconnect.

The epoch comes from each ``subscribed`` ack; the seq from the ack (the
channel's position when nothing is replayed) and then from every data
message. On a reconnect the feed sends them as the ``since`` map of its
subscribe, and each ack of that subscribe becomes a :class:`~.messages.Recovered`
or :class:`~.messages.NotRecovered` event (docs/resume.md). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from .book import Book
from .messages import NotRecovered, Recovered, Subscribed


__all__ = ["Positions"]


class Positions:
    """``(epoch, seq)`` per channel, kept from acks and data."""

    __slots__ = ("_epochs", "seqs")

    def __init__(self) -> None:
        self._epochs: dict[str, str] = {}
        self.seqs: dict[str, int] = {}  # the last seq seen per channel (also the feed's gap check)

    def acked(self, ack: Subscribed) -> Recovered | NotRecovered | None:
        """Take the position of an ack; after a ``since``, the event that says how it went."""
        if ack.epoch is None or ack.seq is None:
            return None  # a gateway before v1.1: no positions
        self._epochs[ack.channel] = ack.epoch
        replaying = bool(ack.recovered and ack.replayed)
        if not replaying:  # else the replayed messages bring the seq up to the ack's
            self.seqs[ack.channel] = ack.seq
        if not ack.wasRecovering:
            return None
        if ack.recovered:
            return Recovered(ack.channel, ack.replayed or 0)
        return NotRecovered(ack.channel, ack.reason or "unknown")

    def seen(self, channel: str, seq: int) -> int | None:
        """A data message's seq; returns the previous one (None when there was none)."""
        last = self.seqs.get(channel)
        self.seqs[channel] = seq
        return last

    def forget(self, channel: str) -> None:
        self._epochs.pop(channel, None)
        self.seqs.pop(channel, None)

    def since(
        self, channels: list[str], books: Mapping[str, Book] | None = None
    ) -> dict[str, dict[str, str | int]]:
        """The ``since`` map for ``channels``: those with a known position.

        A ``book:`` channel is resumed only from a book held in step (``books``:
        the feed's, :attr:`.book.Book.resumable`), at that book's seq: a book
        that lost sync, or that nobody applies, asks for a snapshot instead.
        """
        found: dict[str, dict[str, str | int]] = {}
        for name in channels:
            epoch, seq = self._epochs.get(name), self.seqs.get(name)
            if name.startswith("book:"):
                book = books.get(name) if books is not None else None
                seq = book.seq if book is not None and book.resumable else None
            if epoch is not None and seq is not None:
                found[name] = {"epoch": epoch, "seq": seq}
        return found

    def get(self, channel: str) -> tuple[str, int] | None:
        """``(epoch, seq)`` of ``channel``, or None before its first ack."""
        epoch, seq = self._epochs.get(channel), self.seqs.get(channel)
        return (epoch, seq) if epoch is not None and seq is not None else None
