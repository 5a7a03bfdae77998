"""The in-memory bus: one node, hub and ingest in the same process."""

from __future__ import annotations

from collections.abc import Callable

from ..publications import ChannelStatus, Publication
from .base import BusHealth, BusListener, DemandListener
from .epochs import LocalEpochs


__all__ = ["MemoryBus"]


class MemoryBus:
    """Direct calls between the hub and the ingest, plus the last-value cache."""

    name = "memory"

    def __init__(self, *, epoch_token: str | None = None) -> None:
        self._hub: BusListener | None = None
        self._ingest: DemandListener | None = None
        self._last: dict[str, Publication] = {}
        self._status: dict[str, ChannelStatus] = {}
        self._seq: dict[str, int] = {}  # publish-API channels
        self._epochs = LocalEpochs(epoch_token)  # a restart always changes them

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._last.clear()
        self._status.clear()

    def attach_hub(self, listener: BusListener) -> None:
        self._hub = listener

    def attach_ingest(self, listener: DemandListener) -> None:
        self._ingest = listener

    def want(self, channel: str) -> None:
        if self._ingest is not None:
            self._ingest.on_demand(channel, True)

    def unwant(self, channel: str) -> None:
        self._epochs.release(channel)  # the hub dropped the channel and its history
        if self._ingest is not None:
            self._ingest.on_demand(channel, False)

    async def last(self, channel: str) -> tuple[Publication | None, ChannelStatus | None]:
        return self._last.get(channel), self._status.get(channel)

    async def epoch(self, channel: str) -> str:
        return self._epochs.epoch(channel)

    async def history(
        self, channel: str, epoch: str, after: int, limit: int
    ) -> list[Publication | ChannelStatus] | None:
        return None  # one node: the hub's ring is all the history there is

    def publish(self, pub: Publication) -> None:
        self._last[pub.channel] = pub
        if self._hub is not None:
            self._hub.on_publication(pub)

    def publish_status(self, status: ChannelStatus) -> None:
        self._status[status.channel] = status
        if self._hub is not None:
            self._hub.on_status(status)

    async def publish_data(self, channel: str, encode: Callable[[int], bytes], *, event_time: int) -> int:
        seq = self._seq.get(channel, 0) + 1
        self._seq[channel] = seq
        self.publish(Publication(channel, seq, encode(seq), True, event_time))
        return seq

    def forget(self, channel: str) -> None:
        self._last.pop(channel, None)
        self._status.pop(channel, None)
        self._epochs.release(channel)

    @property
    def cached(self) -> int:
        return len(self._last)

    def upstream_view(self) -> None:
        return None  # one node: the upstream is this node's own source

    def health(self) -> BusHealth:
        return BusHealth(kind=self.name, connected=True)
