"""The bus role: what a hub and an ingest need from the transport between them.

Data flows forward (ingest -> bus -> every hub that wants the channel);
demand flows back (hub -> bus -> ingest). A hub subscribes to a channel on
the bus only while it has local subscribers (centrifuge ``node.go``).
"""

from __future__ import annotations

from typing import Protocol

from ..publications import ChannelStatus, Publication


__all__ = ["Bus", "BusListener", "DemandListener"]


class BusListener(Protocol):
    """The receiving side of a node (the hub)."""

    def on_publication(self, pub: Publication) -> None: ...

    def on_status(self, status: ChannelStatus) -> None: ...


class DemandListener(Protocol):
    """The side that owns upstreams (the ingest): told when a channel is wanted or not."""

    def on_demand(self, channel: str, wanted: bool) -> None: ...


class Bus(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def attach_hub(self, listener: BusListener) -> None: ...

    def attach_ingest(self, listener: DemandListener) -> None: ...

    # hub side
    def want(self, channel: str) -> None:
        """This node has its first local subscriber of ``channel``."""

    def unwant(self, channel: str) -> None:
        """This node's last local subscriber of ``channel`` left."""

    async def last(self, channel: str) -> tuple[Publication | None, ChannelStatus | None]:
        """The newest publication and status of ``channel`` cluster-wide, for snapshots."""

    # ingest side
    def publish(self, pub: Publication) -> None: ...

    def publish_status(self, status: ChannelStatus) -> None: ...

    def forget(self, channel: str) -> None:
        """The ingest stopped ``channel``: its cached last value is no longer fresh."""

    def health(self) -> dict[str, object]: ...
