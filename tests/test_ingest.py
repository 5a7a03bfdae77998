"""tickwire.ingest: demand opens and (after the linger) closes source channels; every
event becomes one publication per open channel with its seq assigned once; statuses
and the publish API go through to the bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tickwire.bus.memory import MemoryBus
from tickwire.channels import parse_channel
from tickwire.events import Depth, Kline, Ticker, Trade
from tickwire.ingest import Ingest
from tickwire.publications import ChannelStatus, Publication

from .helpers import FakeSource, HubRecorder, eventually


NOW_MS = 1_700_000_000_000
LINGER = 0.05


@dataclass
class Parts:
    ingest: Ingest
    source: FakeSource
    bus: MemoryBus
    listener: HubRecorder


@pytest.fixture
def parts() -> Iterator[Parts]:
    source, bus, listener = FakeSource(), MemoryBus(), HubRecorder()
    bus.attach_hub(listener)
    ingest = Ingest(source, bus, linger=LINGER, clock_ms=lambda: NOW_MS)
    yield Parts(ingest, source, bus, listener)
    ingest.close()


D = Decimal


def ticker(symbol: str = "BTCUSDT", price: str = "100.5", t: int = 1) -> Ticker:
    return Ticker(symbol=symbol, price=D(price), open=D(100), high=D(101), low=D(99), change=D("0.5"),
                  change_percent=D("0.5"), volume=D(10), quote_volume=D(1000), trades=5, bid=D(100),
                  bid_qty=D(1), ask=D(101), ask_qty=D(1), event_time=t)  # fmt: skip


def trade(n: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(symbol=symbol, id=n, price=D("100.25"), quantity=D("0.5"), buyer_taker=True, event_time=n)


def kline(final: bool, t: int = 1) -> Kline:
    return Kline(symbol="BTCUSDT", interval="1m", open_time=0, open=D(1), high=D(2), low=D(1), close=D(2),
                 volume=D(3), final=final, event_time=t)  # fmt: skip


def depth(t: int = 1) -> Depth:
    return Depth(
        symbol="BTCUSDT", bids=((D(99), D(1)),), asks=((D(101), D(1)),), last_update_id=7, event_time=t
    )


def body(pub: Publication) -> dict[str, Any]:
    data = json.loads(pub.payload)
    assert isinstance(data, dict)
    return data


# -- demand --------------------------------------------------------------------


async def test_demand_opens_a_market_channel_once(parts: Parts) -> None:
    parts.bus.want("price:BTCUSDT")
    parts.bus.want("price:BTCUSDT")  # a second node's demand, or a repeat: still one upstream stream
    parts.bus.want("trades:ETHUSDT")
    assert parts.source.opened == ["price:BTCUSDT", "trades:ETHUSDT"]
    assert parts.ingest.open_channels == ["price:BTCUSDT", "trades:ETHUSDT"]


async def test_publish_api_channels_open_nothing_upstream(parts: Parts) -> None:
    for channel in ("signals:BTCUSDT", "orders:u1", "portfolio:u1", "account:u1"):
        parts.bus.want(channel)
    assert parts.source.opened == [] and parts.ingest.open_channels == []
    parts.bus.unwant("signals:BTCUSDT")  # nothing open: nothing to linger or close
    assert parts.source.closed == []


async def test_the_last_unwant_closes_after_the_linger(parts: Parts) -> None:
    parts.bus.want("price:BTCUSDT")
    parts.bus.publish_status(ChannelStatus("price:BTCUSDT", True, None, NOW_MS))
    parts.bus.unwant("price:BTCUSDT")
    assert parts.source.closed == [] and parts.ingest.open_channels == ["price:BTCUSDT"]  # lingering
    await eventually(lambda: parts.source.closed, what="the close after the linger")
    assert parts.source.closed == ["price:BTCUSDT"] and parts.ingest.open_channels == []
    assert await parts.bus.last("price:BTCUSDT") == (None, None)  # the bus forgot its cached value


async def test_demand_within_the_linger_keeps_the_channel_open(parts: Parts) -> None:
    parts.bus.want("price:BTCUSDT")
    parts.bus.unwant("price:BTCUSDT")
    parts.bus.want("price:BTCUSDT")  # a page reload
    await asyncio.sleep(LINGER * 3)  # under test: the window passes and nothing closes
    assert parts.source.opened == ["price:BTCUSDT"] and parts.source.closed == []
    parts.bus.unwant("price:BTCUSDT")
    parts.bus.unwant("price:BTCUSDT")  # a repeated unwant does not start a second timer
    await eventually(lambda: parts.source.closed, what="the close after the linger")
    await asyncio.sleep(LINGER * 2)  # under test: no second close
    assert parts.source.closed == ["price:BTCUSDT"]


async def test_close_cancels_the_linger_timers(parts: Parts) -> None:
    parts.bus.want("depth:BTCUSDT")
    parts.bus.unwant("depth:BTCUSDT")
    parts.ingest.close()
    await asyncio.sleep(LINGER * 3)  # under test: the cancelled timer never fires
    assert parts.source.closed == []


# -- data ----------------------------------------------------------------------


async def test_an_event_is_published_once_per_open_channel_with_dense_seqs(parts: Parts) -> None:
    assert parts.source.sink is parts.ingest  # the ingest is the source's sink
    sink = parts.ingest
    parts.bus.want("price:BTCUSDT")
    sink.on_event(ticker(t=1))  # price open, ticker not: one publication
    parts.bus.want("ticker:BTCUSDT")
    sink.on_event(ticker(t=2))
    sink.on_event(ticker(symbol="ETHUSDT"))  # no demand: nothing, and no seq used
    sink.on_event(ticker(t=3))
    assert parts.listener.seqs("price:BTCUSDT") == [1, 2, 3]
    assert parts.listener.seqs("ticker:BTCUSDT") == [1, 2]  # its own counter, from 1
    assert [p.event_time for p in parts.listener.pubs if p.channel == "price:BTCUSDT"] == [1, 2, 3]
    assert parts.ingest.published == 5
    assert parts.ingest.next_seq("price:ETHUSDT") == 1  # the event without demand used no seq
    for pub in parts.listener.pubs:  # the seq in the frame is the seq of the publication
        assert body(pub)["seq"] == pub.seq and body(pub)["channel"] == pub.channel
    assert all(not p.final for p in parts.listener.pubs)  # price and ticker are latest-value channels


async def test_finals_are_trades_and_closed_candles(parts: Parts) -> None:
    for channel in ("trades:BTCUSDT", "klines:BTCUSDT:1m", "depth:BTCUSDT"):
        parts.bus.want(channel)
    parts.ingest.on_event(trade(1))
    parts.ingest.on_event(kline(final=False))
    parts.ingest.on_event(kline(final=True))
    parts.ingest.on_event(depth())
    parts.ingest.on_event(trade(2))
    got = [(p.channel, p.seq, p.final) for p in parts.listener.pubs]
    assert got == [
        ("trades:BTCUSDT", 1, True),
        ("klines:BTCUSDT:1m", 1, False),
        ("klines:BTCUSDT:1m", 2, True),
        ("depth:BTCUSDT", 1, False),
        ("trades:BTCUSDT", 2, True),
    ]
    assert [body(p)["data"]["id"] for p in parts.listener.pubs if p.channel == "trades:BTCUSDT"] == [1, 2]


async def test_seqs_continue_after_a_close_and_a_resume(parts: Parts) -> None:
    parts.bus.want("trades:BTCUSDT")
    parts.ingest.on_event(trade(1))
    parts.bus.unwant("trades:BTCUSDT")
    await eventually(lambda: parts.source.closed, what="the close")
    parts.bus.want("trades:BTCUSDT")
    parts.ingest.on_event(trade(2))
    assert parts.listener.seqs("trades:BTCUSDT") == [1, 2]  # a channel's history never repeats a seq
    parts.ingest.resume_seq("trades:BTCUSDT", 10)  # a new leader takes over after seq 10
    parts.ingest.resume_seq("trades:BTCUSDT", 4)  # an older position never moves it back
    parts.ingest.on_event(trade(3))
    assert parts.listener.seqs("trades:BTCUSDT") == [1, 2, 11]
    assert parts.ingest.next_seq("trades:BTCUSDT") == 12


async def test_statuses_are_forwarded_with_the_ingest_clock(parts: Parts) -> None:
    parts.ingest.on_status("price:BTCUSDT", False, "upstream disconnected")
    parts.ingest.on_status("price:BTCUSDT", True, None)
    parts.ingest.on_status("trades:BTCUSDT", True, None, (101, 104))  # what a backfill could not give
    assert parts.listener.statuses == [
        ChannelStatus("price:BTCUSDT", False, "upstream disconnected", NOW_MS),
        ChannelStatus("price:BTCUSDT", True, None, NOW_MS),
        ChannelStatus("trades:BTCUSDT", True, None, NOW_MS, (101, 104)),
    ]
    assert (await parts.bus.last("price:BTCUSDT"))[1] == parts.listener.statuses[1]


async def test_publish_api_messages_get_the_bus_seq_and_the_wire_shape(parts: Parts) -> None:
    channel = parse_channel("signals:btcusdt")
    assert await parts.ingest.publish(channel, msgspec.Raw(b'{"side":"long"}')) == 1
    assert await parts.ingest.publish(channel, msgspec.Raw(b'{"side": "short"}')) == 2
    assert [(p.channel, p.seq, p.final, p.event_time) for p in parts.listener.pubs] == [
        ("signals:BTCUSDT", 1, True, NOW_MS),
        ("signals:BTCUSDT", 2, True, NOW_MS),
    ]
    assert body(parts.listener.pubs[1]) == {
        "type": "signal",
        "channel": "signals:BTCUSDT",
        "symbol": "BTCUSDT",
        "seq": 2,
        "data": {"side": "short"},
    }
    assert b'"data":{"side": "short"}' in parts.listener.pubs[1].payload  # the publisher's bytes, verbatim


async def test_upstream_health_names_the_open_streams(parts: Parts) -> None:
    parts.bus.want("price:BTCUSDT")
    parts.bus.want("trades:ETHUSDT")
    health = parts.ingest.upstream_health()
    assert health.source == "simulated" and health.live and health.streams == 2
    assert health.stream_names == ["price:BTCUSDT", "trades:ETHUSDT"]
    assert parts.ingest.known_symbols() is None
