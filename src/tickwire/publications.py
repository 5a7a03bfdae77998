"""What moves over the bus: channel messages already encoded for the wire.

A :class:`Publication` is built once at ingest (or by the publish API) with
its ``seq`` assigned and its JSON encoded; every node and every subscriber
reuses those bytes. ``final`` marks a message that must never be conflated
away (a trade, a closed candle, a signal, a private event).
"""

from __future__ import annotations

import msgspec


__all__ = ["ChannelStatus", "Publication"]


class Publication(msgspec.Struct, frozen=True, array_like=True):
    channel: str
    seq: int
    payload: bytes  # the JSON data frame, without WebSocket framing
    final: bool
    event_time: int  # upstream event time, ms, for end-to-end latency


class ChannelStatus(msgspec.Struct, frozen=True, array_like=True):
    """The upstream behind ``channel`` went down (``live=False``) or came back.

    ``gap`` (on ``live`` only) is what the outage lost for good, inclusive:
    trade ids, or candle open times in ms (docs/resume.md, "Upstream backfill").
    """

    channel: str
    live: bool
    reason: str | None
    time: int  # ms
    gap: tuple[int, int] | None = None
