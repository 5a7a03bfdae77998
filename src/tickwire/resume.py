"""Resume after a reconnect: what a ``subscribe`` with ``since`` gets (docs/resume.md).

Pure: the hub passes a channel's epoch, position and ring; :func:`decide`
answers with the frames to replay or the reason there are none. Never a
partial replay: either every message after the client's position is there
(and within the caps), or the client gets ``recovered: false``, a reason,
and the usual snapshot.

The checks, in order: a latest-value channel recovers by snapshot whatever
its epoch (nothing more when the client is at the top); a channel without a
ring is ``not_recoverable``; another epoch is ``epoch_changed``; a position
past the top is ``ahead``; one below the ring's floor (evicted or expired)
is ``history_expired``; more frames than the cap is ``too_many``. A book
channel has a ring of its diffs and goes through the same checks, but any
reason is answered with its snapshot and ``recovered: true`` instead: a
snapshot brings a book back just as well (docs/book.md, "Resume of books").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .backlog import Backlog
from .history import Ring
from .messages import Ref
from .protocol import Position, encode_subscribed


__all__ = ["Greeting", "Outcome", "Reason", "decide", "position_of"]


class Reason(enum.StrEnum):
    """Why a resume was not recovered (the ack's ``reason``)."""

    EPOCH_CHANGED = "epoch_changed"
    HISTORY_EXPIRED = "history_expired"
    TOO_MANY = "too_many"
    NOT_RECOVERABLE = "not_recoverable"
    AHEAD = "ahead"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one channel's ``since``.

    ``replay`` holds the payloads to send after the ack (empty unless
    recovered from a ring); ``snapshot`` says the usual greeting (snapshot or
    stale status) follows instead.
    """

    recovered: bool
    reason: Reason | None = None
    replay: tuple[bytes, ...] = ()
    snapshot: bool = False

    @property
    def result(self) -> str:
        """``recovered`` or the reason, for metrics."""
        return "recovered" if self.reason is None else self.reason.value


_AT_TOP = Outcome(True)
_BY_SNAPSHOT = Outcome(True, snapshot=True)


def decide(
    since: Position,
    *,
    epoch: str,
    top: int,
    ring: Ring | Backlog | None,
    by_snapshot: bool,
    cap: int,
    now_ms: int,
) -> Outcome:
    """The outcome of resuming at ``since`` a channel whose position is (``epoch``, ``top``).

    Args:
        ring: the channel's history (None: it keeps none); a :class:`~.backlog.Backlog` when
            the bus's older messages extend it.
        by_snapshot: a latest-value or book channel (a snapshot recovers it).
        cap: most frames this replay may have (per channel, and what is left of the request's budget).
        now_ms: for the ring's age limit.
    """
    if ring is None:
        if by_snapshot:
            return _AT_TOP if since.epoch == epoch and since.seq == top else _BY_SNAPSHOT
        return _failed(Reason.NOT_RECOVERABLE)
    outcome = _from_ring(since, epoch, top, ring, cap, now_ms)
    if by_snapshot and not outcome.recovered:
        return _BY_SNAPSHOT  # a book: its snapshot, and recovered all the same
    return outcome


def _from_ring(since: Position, epoch: str, top: int, ring: Ring | Backlog, cap: int, now_ms: int) -> Outcome:
    if since.epoch != epoch:
        return _failed(Reason.EPOCH_CHANGED)
    if since.seq > top:
        return _failed(Reason.AHEAD)
    ring.expire(now_ms)
    if since.seq < ring.floor:
        return _failed(Reason.HISTORY_EXPIRED)
    if top - since.seq > cap:  # cheap refusal before collecting anything
        return _failed(Reason.TOO_MANY)
    replay = ring.after(since.seq)
    if len(replay) > cap:  # status frames count too
        return _failed(Reason.TOO_MANY)
    return Outcome(True, replay=tuple(replay))


def _failed(reason: Reason) -> Outcome:
    return Outcome(False, reason, snapshot=True)


def position_of(since: dict[str, Position] | None, raw: str, canonical: str) -> Position | None:
    """The client's position for a channel it may have spelled non-canonically (``trades:btcusdt``)."""
    if not since:
        return None
    found = since.get(canonical)
    return found if found is not None else since.get(raw)


class Greeting(list[bytes]):
    """What the hub answers a subscribe with: the frames to queue right after the ack
    (a list, as before), plus the channel's position and, after a ``since``, the outcome."""

    __slots__ = ("epoch", "outcome", "recoverable", "seq")

    def __init__(
        self, frames: list[bytes], *, epoch: str, seq: int, recoverable: bool, outcome: Outcome | None = None
    ) -> None:
        super().__init__(frames)
        self.epoch = epoch
        self.seq = seq
        self.recoverable = recoverable
        self.outcome = outcome

    @property
    def replayed(self) -> int:
        return len(self.outcome.replay) if self.outcome is not None else 0

    def ack(self, channel: str, now_ms: int, ref: Ref | None, **extra: Any) -> bytes:
        """The ``subscribed`` frame with this position (``extra``: other ack fields, e.g. options)."""
        outcome = self.outcome
        fields: dict[str, Any] = {"epoch": self.epoch, "seq": self.seq, "recoverable": self.recoverable}
        if outcome is not None:
            fields.update(
                was_recovering=True,
                recovered=outcome.recovered,
                replayed=len(outcome.replay) if outcome.recovered else None,
                reason=outcome.reason.value if outcome.reason is not None else None,
            )
        return encode_subscribed(channel, now_ms, ref, **fields, **extra)
