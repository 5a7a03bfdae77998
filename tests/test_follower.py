"""A ``--role gateway`` process's source: the leader's health and symbol list, read through the bus."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tickwire.channels import parse_channel
from tickwire.errors import ErrorCode, ProtocolError
from tickwire.health import SourceHealth
from tickwire.marketdata import MarketDataUnavailable
from tickwire.sources.base import SourceKind
from tickwire.sources.follower import FollowerSource


@dataclass
class FakeView:
    """An UpstreamView with the answers set by the test."""

    connected: bool = True
    leader: SourceHealth | None = None
    listed: dict[str, bool] | None = None  # None: the leader publishes no list
    asked: list[str] = field(default_factory=list)

    def leader_health(self) -> SourceHealth | None:
        return self.leader

    async def known_symbol(self, symbol: str) -> bool | None:
        self.asked.append(symbol)
        return None if self.listed is None else self.listed.get(symbol, False)


LEADER = SourceHealth(
    source="binance", live=True, streams=2, leader="node-a", stream_names=["a@trade", "b@ticker"]
)


def _follower(view: FakeView) -> FollowerSource:
    return FollowerSource(view, "binance", SourceKind.LIVE)


async def test_validate_refuses_only_what_the_leaders_list_lacks() -> None:
    view = FakeView(listed={"BTCUSDT": True})
    source = _follower(view)
    await source.validate(parse_channel("price:BTCUSDT"))
    with pytest.raises(ProtocolError) as caught:
        await source.validate(parse_channel("trades:NOPEUSDT"))
    assert caught.value.code is ErrorCode.UNKNOWN_SYMBOL
    assert caught.value.channel == "trades:NOPEUSDT" and "NOPEUSDT" in str(caught.value)
    assert view.asked == ["BTCUSDT", "NOPEUSDT"]


async def test_validate_accepts_any_symbol_while_no_list_is_published() -> None:
    view = FakeView(listed=None)
    await _follower(view).validate(parse_channel("depth:NOPEUSDT"))
    assert view.asked == ["NOPEUSDT"]


async def test_validate_does_not_ask_about_channels_without_a_symbol() -> None:
    view = FakeView(listed={})
    await _follower(view).validate(parse_channel("orders:alice"))
    assert view.asked == []


def test_health_without_a_leader() -> None:
    health = _follower(FakeView(leader=None)).health()
    assert health == SourceHealth(source="binance", live=False, follower=True, reason="no ingest leader")


def test_health_is_the_leaders_marked_follower_and_live_only_while_connected() -> None:
    view = FakeView(leader=LEADER)
    source = _follower(view)
    health = source.health()
    assert health.follower and health.live
    assert (health.source, health.streams, health.leader) == ("binance", 2, "node-a")
    view.connected = False  # the bus is gone: the leader's last word is no longer news
    assert source.health().live is False
    view.leader = SourceHealth(source="binance", live=False, reason="upstream never reached")
    view.connected = True
    assert source.health().live is False and source.health().reason == "upstream never reached"
    assert LEADER.follower is False  # the leader's own record is not changed


def test_streams_are_the_leaders_stream_names() -> None:
    view = FakeView(leader=LEADER)
    source = _follower(view)
    assert source.streams() == ["a@trade", "b@ticker"]
    view.leader = SourceHealth(source="binance", live=True)  # a leader that names no streams
    assert source.streams() == []
    view.leader = None
    assert source.streams() == []
    assert source.known_symbols() is None


async def test_market_data_over_http_is_unavailable() -> None:
    source = _follower(FakeView(leader=LEADER))
    with pytest.raises(MarketDataUnavailable, match="--role all"):
        await source.klines("BTCUSDT", "1m", limit=10)
    with pytest.raises(MarketDataUnavailable, match="--role all"):
        await source.symbols()
