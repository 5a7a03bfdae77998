"""The upstream as a ``--role gateway`` process sees it: held by the leading ingest.

It opens nothing itself (demand travels over the bus as leases); its health
is the leader's, read from the bus. Symbols are validated against the list
the leader publishes; while no list is published (no leader yet, or a
source that does not list its symbols), any well-formed market channel is
accepted and an unknown symbol simply stays silent.

Market data over HTTP (``/api/v1/klines``, ``/api/v1/symbols``) needs the
upstream itself, which only the ingest holds: a ``--role gateway`` process
answers it with 503 and says so; serve those routes from a ``--role all``
process (or put the ingest's own upstream behind them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ..channels import Channel
from ..errors import ErrorCode, ProtocolError
from ..events import Kline
from ..marketdata import MarketDataUnavailable, SymbolInfo
from .base import SourceHealth, SourceKind, SourceSink


if TYPE_CHECKING:
    from ..bus.base import UpstreamView


__all__ = ["FollowerSource"]


class FollowerSource:
    """Args:
    view: what the bus knows of the leading ingest's upstream.
    name: the source the leader runs (``--source``).
    kind: that source's kind.
    """

    def __init__(self, view: UpstreamView, name: str, kind: SourceKind) -> None:
        self._view = view
        self.name = name
        self.kind = kind

    def attach(self, sink: SourceSink) -> None:
        return None

    async def run(self) -> None:
        return None

    async def validate(self, channel: Channel) -> None:
        if channel.symbol is None:
            return
        if await self._view.known_symbol(channel.symbol) is False:
            raise ProtocolError(
                ErrorCode.UNKNOWN_SYMBOL,
                f"the {self.name} upstream does not list {channel.symbol}",
                channel=channel.name,
            )

    def open(self, channel: Channel) -> None:
        return None

    def close(self, channel: Channel) -> None:
        return None

    def known_symbols(self) -> list[str] | None:
        return None  # validated one symbol at a time against the leader's list

    def streams(self) -> list[str]:
        health = self._view.leader_health()
        return list(health.stream_names or []) if health is not None else []

    def health(self) -> SourceHealth:
        leader = self._view.leader_health()
        if leader is None:
            return SourceHealth(source=self.name, live=False, follower=True, reason="no ingest leader")
        return msgspec.structs.replace(leader, live=leader.live and self._view.connected, follower=True)

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        raise MarketDataUnavailable(_SERVED_BY_INGEST)

    async def symbols(self) -> list[SymbolInfo]:
        raise MarketDataUnavailable(_SERVED_BY_INGEST)


_SERVED_BY_INGEST = (
    "market data over HTTP is served by the ingest's upstream, not by a --role gateway process; "
    "ask a --role all gateway"
)
