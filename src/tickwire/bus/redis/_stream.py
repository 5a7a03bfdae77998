"""Reading a channel's epoch and history from Redis (the hub side's queries; :mod:`._wire`,
"History in Redis", says what the scripts keep)."""

from __future__ import annotations

import secrets

from ...publications import ChannelStatus, Publication
from ._link import Link
from ._wire import EPOCH, HISTORY, SEQ_TTL_MS, as_bytes, stream_after


__all__ = ["Streams"]


class Streams:
    """The reads; Redis errors propagate to the caller, which knows what to fall back to."""

    def __init__(self, link: Link) -> None:
        self._keys = link.keys
        self._epoch_script = link.redis.register_script(EPOCH)
        self._history_script = link.redis.register_script(HISTORY)

    async def epoch(self, channel: str) -> str:
        """The channel's epoch, made now (and announced) when it has none."""
        k = self._keys
        raw = await self._epoch_script(
            keys=[k.seq(channel), k.last(channel), k.epoch(channel), k.hist(channel)],
            args=[k.pub(channel), secrets.token_urlsafe(6), SEQ_TTL_MS],
        )
        return as_bytes(raw).decode()

    async def read(
        self, channel: str, epoch: str | None, after: int, end: str, count: int
    ) -> list[Publication | ChannelStatus] | None:
        """The messages after position ``after`` up to the entry id ``end`` (at most ``count``
        entries, the one at ``after`` included), whole; None when they cannot be proven
        whole or belong to another epoch than ``epoch`` (None: any)."""
        k = self._keys
        found_epoch, entries = await self._history_script(
            keys=[k.epoch(channel), k.hist(channel)], args=[f"{after}-0", end, count]
        )
        if found_epoch is None or (epoch is not None and as_bytes(found_epoch).decode() != epoch):
            return None  # another history than the one asked about
        return stream_after(entries, after)
