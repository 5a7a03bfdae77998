"""A ring reaching further back: the bus's older messages joined to the hub's ring.

Pure: no asyncio, no clock reads, no I/O.

A gateway's ring starts when the gateway opens a channel; in a cluster the
channel's history began earlier, and the Redis bus keeps it in a stream
(docs/resume.md, "In a cluster"). When a resume's position is below the
ring's floor, the hub reads the messages after it from the bus (an await,
before the decision) and wraps them with the ring in a :class:`Backlog`,
which :func:`tickwire.resume.decide` reads as it reads a ring.

Joining, after the await (and before any other await, so the hub's top
cannot move): the bus's part is cut at the hub's top, since the stream may
already hold publications the hub has not received (pub/sub lags the
script): they reach the client live, so replaying them would send them
twice. The bus's part ends at its newest publication up to that top,
``upto``; the ring's part is ``ring.after(upto)``: the publications after it
that arrived meanwhile, and the status frames from ``upto`` on. That needs
the ring to reach back to ``upto`` still (``ring.floor <= upto``); if it
moved on, or lost its run to a gap, the backlog covers nothing more than the
ring. A status frame just after ``upto`` may come twice (once from each
part); a status is a state, so a repeat changes nothing. Never a hole, and
never a publication twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from .history import Ring
from .protocol import encode_status
from .publications import ChannelStatus, Publication


__all__ = ["Backlog", "payload_of"]


def payload_of(msg: Publication | ChannelStatus) -> bytes:
    """The frame payload a live subscriber got for ``msg`` (the hub encodes statuses so)."""
    if isinstance(msg, Publication):
        return msg.payload
    return encode_status(msg.channel, msg.live, msg.time, msg.reason, msg.gap)


class Backlog:
    """The messages after ``since`` that the bus returned, then ``ring``.

    Args:
        ring: the channel's ring, which goes on filling while the bus is read.
        since: the position the messages follow.
        messages: what the bus returned (more than ``limit``: the read stopped there).
        limit: the replay cap the bus was asked with.
        top: the hub's newest seq of the channel now: what the bus holds beyond it is not replayed.

    Attributes:
        floor: ``since`` when the two parts join, else the ring's own floor.
    """

    __slots__ = ("_oldest", "_payloads", "_ring", "_since", "_truncated", "_upto", "floor")

    def __init__(
        self, ring: Ring, since: int, messages: Sequence[Publication | ChannelStatus], limit: int, *, top: int
    ) -> None:
        self._ring = ring
        self._since = since
        upto, cut, beyond = since, 0, False
        for at, msg in enumerate(messages):
            if isinstance(msg, Publication):
                if msg.seq > top:
                    beyond = True  # not at the hub yet: it comes live
                    break
                upto, cut = msg.seq, at + 1
        # the read stopped short of the hub's top: more than the cap, nothing after it matters
        self._truncated = len(messages) > limit and not beyond
        kept = messages if self._truncated else messages[:cut]  # the ring has the statuses after upto
        self._upto = upto
        self._payloads = [payload_of(m) for m in kept]
        self._oldest = min((_time(m) for m in kept), default=None)
        self.floor = ring.floor

    def expire(self, now_ms: int) -> None:
        """Expire the ring, then see whether the parts still join (and are young enough)."""
        ring = self._ring
        ring.expire(now_ms)
        young = not ring.max_age_ms or self._oldest is None or self._oldest >= now_ms - ring.max_age_ms
        joined = self._truncated or (ring.top is not None and ring.floor <= self._upto)
        self.floor = self._since if young and joined and self._upto > self._since else ring.floor

    def after(self, seq: int) -> list[bytes]:
        """The payloads after ``seq``: the bus's part, then the ring's (``seq`` is ``since``)."""
        if seq != self._since or self.floor != self._since:
            return self._ring.after(seq)
        if self._truncated:
            return list(self._payloads)
        return self._payloads + self._ring.after(self._upto)


def _time(msg: Publication | ChannelStatus) -> int:
    return msg.event_time if isinstance(msg, Publication) else msg.time
