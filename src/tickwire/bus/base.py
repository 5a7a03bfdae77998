"""The bus role: what a hub and an ingest need from the transport between them.

Data flows forward (ingest -> bus -> every hub that wants the channel);
demand flows back (hub -> bus -> ingest). A hub subscribes to a channel on
the bus only while it has local subscribers (centrifuge ``node.go``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from ..health import SourceHealth
from ..publications import ChannelStatus, Publication


__all__ = ["Bus", "BusHealth", "BusListener", "BusUnavailable", "DemandListener", "UpstreamView"]


class BusHealth(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A bus's state for ``/health`` and ``/metrics``; buses add fields in a subclass."""

    kind: str
    connected: bool
    reconnects: int = 0  # since start


class BusUnavailable(RuntimeError):
    """The bus cannot take a publication now (Redis down): answer 503, retry later."""


class BusListener(Protocol):
    """The receiving side of a node (the hub)."""

    def on_publication(self, pub: Publication) -> None: ...

    def on_status(self, status: ChannelStatus) -> None: ...

    def on_epoch(self, channel: str, epoch: str) -> None:
        """``channel``'s history was lost on the bus and begins again as ``epoch`` (Redis bus)."""


class DemandListener(Protocol):
    """The side that owns upstreams (the ingest): told when a channel is wanted or not."""

    def on_demand(self, channel: str, wanted: bool) -> None: ...

    def resume_seq(self, channel: str, seq: int) -> None:
        """Continue ``channel`` after ``seq`` (a new leader takes over a channel)."""

    def upstream_health(self) -> SourceHealth:
        """The upstream's health, which a leading ingest shares with the cluster."""

    def known_symbols(self) -> list[str] | None:
        """The upstream's symbols, which a leading ingest shares for validation."""

    def book_snapshot(self, channel: str) -> Publication | None:
        """A book channel's snapshot at the seq of its last publication (None: no book held).

        A leading ingest stores it for gateways that join the channel (the Redis bus).
        """


class UpstreamView(Protocol):
    """What a bus spanning nodes knows of the upstream another node holds (``--role gateway``)."""

    @property
    def connected(self) -> bool:
        """Whether this node reaches the bus (read-only: the bus's own loops keep it)."""

    def leader_health(self) -> SourceHealth | None:
        """The leading ingest's upstream health, or None while there is no leader."""

    async def known_symbol(self, symbol: str) -> bool | None:
        """Whether the leader's upstream lists ``symbol``; None when no list is published."""


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

    async def epoch(self, channel: str) -> str:
        """The epoch of ``channel``: the name of its unbroken history of ``seq`` (docs/resume.md).

        It changes whenever that history is lost: a restart of a single node,
        a channel reopened after a full release (``unwant`` by the hub, which
        drops its ring, or ``forget`` by the ingest). On Redis it is the cluster's,
        kept in Redis: it changes only when Redis lost the channel's keys or the
        ingest released the channel.
        """

    async def history(
        self, channel: str, epoch: str, after: int, limit: int
    ) -> list[Publication | ChannelStatus] | None:
        """The messages of ``channel`` after position ``after`` in ``epoch``, oldest first, from
        history the bus keeps (a Redis stream): up to ``limit + 1`` of them (more than
        ``limit``: too many to replay), or None when the bus cannot prove it has every one
        (it keeps none, trimmed, another epoch, down). The hub asks when its ring does not
        reach back far enough.
        """

    # ingest side
    def publish(self, pub: Publication) -> None: ...

    def publish_status(self, status: ChannelStatus) -> None: ...

    def forget(self, channel: str) -> None:
        """The ingest stopped ``channel``: its cached last value is no longer fresh."""

    async def publish_data(self, channel: str, encode: Callable[[int], bytes], *, event_time: int) -> int:
        """Publish a message of the publish API from any node; returns its seq.

        The bus assigns the seq (cluster-wide on Redis) and publishes in the
        same step, so messages reach every node in seq order. ``encode(seq)``
        returns the wire frame for that seq; it must be a pure function of seq.

        Raises:
            BusUnavailable: the bus is down; nothing was published.
        """

    def upstream_view(self) -> UpstreamView | None:
        """The view of a remote upstream, for buses that span nodes (None: one node)."""

    def health(self) -> BusHealth: ...
