"""Seq gaps on pub/sub, filled from the channel's stream before the later message.

A gateway that receives publication N+k right after N (a message lost on
pub/sub, or the newest value re-read after a reconnect) holds it, and every
later message of that channel, while it reads N+1 .. N+k-1 from the stream
(:mod:`._wire`, "History in Redis"); then it hands the hub the missing
messages and the held ones, in order. So the hub's ring and every client see
one contiguous run, as if nothing had been lost.

Bounded and once: a gap larger than ``max_gap``, a stream that does not hold
it whole (trimmed, another epoch, Redis down) or a read slower than
``timeout`` gives up, and the held messages go out as they are: clients see
the gap, as they would without a stream. The message that revealed a gap is
never the start of a second attempt at the same gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from ...publications import ChannelStatus, Publication
from ._wire import EpochChange


__all__ = ["GapFiller", "Item"]

logger = logging.getLogger("tickwire.bus.redis")

Item = Publication | ChannelStatus | EpochChange
"""What the pub/sub connection hands on, per channel, in order."""

Reader = Callable[[str, int, int], Awaitable[list[Publication | ChannelStatus] | None]]
"""``read(channel, seen, upto)``: the messages after position ``seen`` and before ``upto``, whole, or None."""


class GapFiller:
    """Fills one gap per channel at a time; the channel's later messages wait behind it.

    Args:
        read: reads a gap from the stream.
        hand: hands one message on to the hub; ``check`` false: without looking for a gap.
        max_gap: most missing publications worth reading; a larger gap is delivered as is.
        timeout: seconds a read may take.
    """

    def __init__(
        self,
        read: Reader,
        hand: Callable[[Item, bool], None],
        *,
        max_gap: int = 1000,
        timeout: float = 2.0,
    ) -> None:
        self._read = read
        self._hand = hand
        self._max_gap = max_gap
        self._timeout = timeout
        self.held: dict[str, list[Item]] = {}  # channels being filled, with what arrived since
        self._tasks: set[asyncio.Task[None]] = set()
        self.filled = 0  # gaps filled whole
        self.unfilled = 0  # gaps delivered as they were

    def hold(self, item: Item) -> bool:
        """Queue ``item`` behind a fill of its channel in progress; False when there is none."""
        held = self.held.get(item.channel)
        if held is None:
            return False
        held.append(item)
        return True

    def start(self, pub: Publication, seen: int) -> bool:
        """Fill the gap between ``seen`` and ``pub``; False when it is too large to try."""
        if pub.seq - seen - 1 > self._max_gap:
            self.unfilled += 1
            return False
        self.held[pub.channel] = [pub]
        task = asyncio.get_running_loop().create_task(self._fill(pub.channel, seen, pub.seq))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def drop(self, channel: str) -> None:
        """``channel`` is no longer wanted: what it held goes nowhere."""
        self.held.pop(channel, None)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.held.clear()

    async def _fill(self, channel: str, seen: int, upto: int) -> None:
        found: list[Publication | ChannelStatus] | None = None
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._read(channel, seen, upto)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.debug("cannot fill %s %d..%d from the stream: %s", channel, seen + 1, upto - 1, exc)
        held = self.held.pop(channel, None)
        if held is None:
            return  # unwanted meanwhile
        if found is None:
            self.unfilled += 1
            logger.info(
                "seq gap on %s (%d..%d) not in the stream: delivered as is", channel, seen + 1, upto - 1
            )
        else:
            self.filled += 1
        for msg in found or ():
            self._hand(msg, False)
        self._hand(held[0], False)  # the message after the gap: filled now, or given up once
        for at, item in enumerate(held[1:], 1):
            self._hand(item, True)
            if channel in self.held:  # another gap among the held: the rest wait behind its fill
                self.held[channel].extend(held[at + 1 :])
                return
