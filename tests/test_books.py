"""tickwire.books and its ingest hook: BookUpdates from a source become, per open
``book:SYMBOL:DEPTH`` channel, a snapshot then diffs of that depth's window, with
dense seqs and checksums a client can verify (docs/protocol.md, "Order book channel")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from tickwire import messages
from tickwire.books import BookProjector
from tickwire.bus.memory import MemoryBus
from tickwire.channels import Channel, Kind
from tickwire.events import BookUpdate
from tickwire.ingest import Ingest
from tickwire.orderbook import Level, levels_json
from tickwire.protocol import encode_book
from tickwire.publications import Publication

from .bookcheck import ClientBook
from .helpers import FakeSource, HubRecorder, eventually


D = Decimal
NOW_MS = 1_700_000_000_000
LINGER = 0.05
B10, B20 = "book:BTCUSDT:10", "book:BTCUSDT:20"


def lv(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple((D(p), D(q)) for p, q in pairs)


def ladder(start: int, step: int, n: int, qty: str = "1") -> tuple[Level, ...]:
    return tuple((D(start + i * step), D(qty)) for i in range(n))


def snapshot(bids: tuple[Level, ...], asks: tuple[Level, ...], uid: int = 100, **kw: Any) -> BookUpdate:
    return BookUpdate(
        symbol="BTCUSDT", bids=bids, asks=asks, update_id=uid, event_time=uid, snapshot=True,
        precision=(2, 5), **kw,
    )  # fmt: skip


def diff(bids: tuple[Level, ...] = (), asks: tuple[Level, ...] = (), uid: int = 101) -> BookUpdate:
    return BookUpdate(symbol="BTCUSDT", bids=bids, asks=asks, update_id=uid, event_time=uid)


def body(pub: Publication) -> dict[str, Any]:
    data = json.loads(pub.payload)
    assert isinstance(data, dict)
    return data


# -- the encoder -----------------------------------------------------------------------------


def test_encode_book_gives_the_protocol_example_shape() -> None:
    frame = encode_book(
        "book:BTCUSDT:100", "BTCUSDT", 812,
        bids=levels_json(lv(("97523.40", "1.50000"), ("97523.3", "0.2")), (2, 5)),
        asks=levels_json(lv(("97523.5", "0.70000000"), ("97523.6", "1.25")), (2, 5)),
        checksum=3041163063, update_id=50093239218, timestamp=1723161255208,
        snapshot=True, depth=100, precision=(2, 5),
    )  # fmt: skip
    assert frame == (
        b'{"type":"book","channel":"book:BTCUSDT:100","symbol":"BTCUSDT","depth":100,"seq":812,'
        b'"snapshot":true,"data":{"bids":[[97523.4,1.5],[97523.3,0.2]],"asks":[[97523.5,0.7],'
        b'[97523.6,1.25]],"precision":{"price":2,"qty":5},"checksum":3041163063,'
        b'"updateId":50093239218,"timestamp":1723161255208}}'
    )
    msg = msgspec.json.decode(frame, type=messages.Book)
    assert msg.snapshot and msg.depth == 100 and msg.data.precision == messages.BookPrecision(2, 5)


def test_encode_book_diff_and_reset() -> None:
    diff_frame = encode_book(
        "book:BTCUSDT:100", "BTCUSDT", 813, bids=b"[[97523.4,0]]", asks=b"[[97523.5,0.25]]",
        checksum=1596548459, update_id=50093239231, timestamp=1723161255308,
    )  # fmt: skip
    assert diff_frame == (
        b'{"type":"book","channel":"book:BTCUSDT:100","symbol":"BTCUSDT","seq":813,'
        b'"data":{"bids":[[97523.4,0]],"asks":[[97523.5,0.25]],"checksum":1596548459,'
        b'"updateId":50093239231,"timestamp":1723161255308}}'
    )
    reset = encode_book(
        "book:BTCUSDT:10", "BTCUSDT", 9, bids=b"[]", asks=b"[]", checksum=0, update_id=1, timestamp=2,
        snapshot=True, depth=10, precision=(2, 5), reset=True,
    )  # fmt: skip
    decoded = msgspec.json.decode(reset, type=messages.Book)
    assert decoded.reset and decoded.snapshot and decoded.data.checksum == 0


# -- through the ingest ----------------------------------------------------------------------


@dataclass
class Parts:
    ingest: Ingest
    source: FakeSource
    bus: MemoryBus
    hub: HubRecorder

    def send(self, update: BookUpdate) -> None:
        assert self.source.sink is not None
        self.source.sink.on_event(update)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        return [body(p) for p in self.hub.pubs if p.channel == channel]


@pytest.fixture
def parts() -> Iterator[Parts]:
    source, bus, hub = FakeSource(), MemoryBus(), HubRecorder()
    bus.attach_hub(hub)
    ingest = Ingest(source, bus, linger=LINGER, clock_ms=lambda: NOW_MS)
    yield Parts(ingest, source, bus, hub)
    ingest.close()


BIDS = ladder(9_900, -1, 30)  # 9900 down to 9871
ASKS = ladder(10_000, 1, 30)  # 10000 up to 10029


async def test_a_channel_open_before_the_snapshot_gets_it_as_seq_1(parts: Parts) -> None:
    parts.bus.want(B10)
    assert parts.source.opened == [B10] and parts.hub.pubs == []
    parts.send(diff(asks=lv(("10000", "2"))))  # a diff before any snapshot: nothing to apply it to
    assert parts.hub.pubs == []
    parts.send(snapshot(BIDS, ASKS))
    [pub] = parts.hub.pubs
    assert pub.final and pub.seq == 1 and pub.event_time == 100
    msg = body(pub)
    assert msg["snapshot"] is True and msg["depth"] == 10 and "reset" not in msg
    assert msg["data"]["precision"] == {"price": 2, "qty": 5} and msg["data"]["updateId"] == 100
    assert msg["data"]["bids"] == [[9900 - i, 1] for i in range(10)]
    assert msg["data"]["asks"] == [[10000 + i, 1] for i in range(10)]
    ClientBook().verify(msg)


async def test_a_depth_opened_on_a_held_book_gets_its_snapshot_at_once(parts: Parts) -> None:
    parts.bus.want(B10)
    parts.send(snapshot(BIDS, ASKS))
    parts.send(diff(bids=lv(("9900", "3")), uid=105))
    parts.bus.want(B20)
    [msg] = parts.messages(B20)
    assert msg["seq"] == 1 and msg["snapshot"] and msg["depth"] == 20
    assert len(msg["data"]["bids"]) == 20 and msg["data"]["bids"][0] == [9900, 3]
    assert msg["data"]["updateId"] == 105 and msg["data"]["timestamp"] == 105
    ClientBook().verify(msg)
    assert parts.source.opened == [B10, B20]  # the source is told too; one upstream book all the same


async def test_a_diff_goes_only_to_the_depths_whose_window_changed(parts: Parts) -> None:
    parts.bus.want(B10)
    parts.bus.want(B20)
    parts.send(snapshot(BIDS, ASKS))
    clients = {B10: ClientBook(), B20: ClientBook()}
    for channel in clients:
        clients[channel].verify(parts.messages(channel)[0])
    parts.send(diff(asks=lv(("10015", "4")), uid=102))  # 16th ask: inside 20, outside 10
    parts.send(diff(asks=lv(("10025", "4"), ("10040", "1")), uid=103))  # outside both windows
    parts.send(diff(bids=lv(("9900", "1")), uid=104))  # the quantity it already has: no change
    parts.send(diff(bids=lv(("9901", "2")), asks=lv(("10000", "0")), uid=105))  # inside both
    assert [m["seq"] for m in parts.messages(B10)] == [1, 2]
    assert [m["seq"] for m in parts.messages(B20)] == [1, 2, 3]
    ten = parts.messages(B10)[1]["data"]
    assert ten["bids"] == [[9901, 2], [9891, 0]] and ten["asks"] == [[10000, 0], [10010, 1]]
    assert ten["updateId"] == 105 and ten["timestamp"] == 105
    for channel, client in clients.items():
        for msg in parts.messages(channel)[1:]:
            client.verify(msg)
    assert clients[B10].top_asks(10) == [(float(10001 + i), 1.0) for i in range(10)]
    assert clients[B20].asks[10015.0] == 4.0


async def test_a_reset_snapshot_goes_to_every_depth(parts: Parts) -> None:
    parts.bus.want(B10)
    parts.bus.want(B20)
    parts.send(snapshot(BIDS, ASKS))
    parts.send(snapshot(ladder(500, -1, 25), ladder(600, 1, 25), uid=200, reset=True))
    for channel, depth in ((B10, 10), (B20, 20)):
        first, second = parts.messages(channel)
        assert "reset" not in first and second["reset"] is True and second["snapshot"] is True
        assert second["seq"] == 2 and second["depth"] == depth and len(second["data"]["asks"]) == depth
        assert second["data"]["bids"][0] == [500, 1]
        ClientBook().verify(second)


async def test_closing_forgets_the_depth_and_the_last_one_drops_the_book(parts: Parts) -> None:
    parts.bus.want(B10)
    parts.bus.want(B20)
    parts.send(snapshot(BIDS, ASKS))
    assert parts.ingest.book_levels() == [60]
    parts.bus.unwant(B20)
    await eventually(lambda: parts.source.closed == [B20], what="the 20 closed after the linger")
    parts.send(diff(bids=lv(("9901", "1"))))
    assert len(parts.messages(B20)) == 1 and len(parts.messages(B10)) == 2  # the closed depth gets nothing
    assert parts.ingest.book_levels() == [61]
    parts.bus.unwant(B10)
    await eventually(lambda: parts.source.closed == [B20, B10], what="the 10 closed after the linger")
    assert parts.ingest.books.book("BTCUSDT") is None and parts.ingest.book_levels() == []
    parts.send(diff(bids=lv(("9902", "1"))))  # a late diff after the last close: dropped
    assert len(parts.hub.pubs) == 3
    parts.bus.want(B10)  # reopened: nothing until the source's new snapshot
    assert len(parts.hub.pubs) == 3
    parts.send(snapshot(BIDS, ASKS, uid=300))
    assert parts.messages(B10)[-1]["seq"] == 3 and parts.messages(B10)[-1]["snapshot"]  # seq goes on


async def test_a_snapshot_without_precision_takes_the_levels_digits(parts: Parts) -> None:
    parts.bus.want(B10)
    parts.send(
        BookUpdate(
            symbol="BTCUSDT",
            bids=lv(("1.50", "0.001")),
            asks=lv(("1.6", "2")),
            update_id=1,
            event_time=1,
            snapshot=True,
        )
    )
    msg = parts.messages(B10)[0]
    assert msg["data"]["precision"] == {"price": 2, "qty": 3}
    ClientBook().verify(msg)


async def test_other_events_still_flow(parts: Parts) -> None:
    parts.bus.want(B10)
    parts.bus.want("trades:BTCUSDT")
    assert parts.source.opened == [B10, "trades:BTCUSDT"]
    assert parts.ingest.books.book("ETHUSDT") is None
    parts.bus.want("book:ETHUSDT:10")
    parts.send(snapshot(BIDS, ASKS))  # BTCUSDT only
    assert [p.channel for p in parts.hub.pubs] == [B10]


# -- random books, random diffs: every depth's client equals the reference ----------------------

DEPTHS = (1, 3, 10, 20)


@st.composite
def sessions(draw: st.DrawFn) -> list[tuple[str, Any]]:
    price = st.integers(1, 60)
    qty = st.sampled_from(["0", "0", "1", "2.5", "0.00100", "3.000"])
    side = st.lists(st.tuples(price, qty), max_size=10)
    book = st.lists(st.tuples(price, qty.filter(lambda q: q != "0")), max_size=40)
    steps: list[tuple[str, Any]] = [("open", draw(st.sampled_from(DEPTHS)))]
    steps.append(("snapshot", (draw(book), draw(book))))
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["diff"] * 8 + ["open", "reset"]))
        if kind == "diff":
            steps.append((kind, (draw(side), draw(side))))
        elif kind == "open":
            steps.append((kind, draw(st.sampled_from(DEPTHS))))
        else:
            steps.append((kind, (draw(book), draw(book))))
    return steps


def as_levels(pairs: list[tuple[int, str]], tick: str) -> tuple[Level, ...]:
    # the same price in other digits (5 vs 5.00) must stay one level
    return tuple((D(p) * D(tick), D(q)) for p, q in pairs)


@given(sessions())
@settings(max_examples=150, deadline=None)
def test_clients_built_from_the_messages_equal_the_reference_at_every_depth(
    steps: list[tuple[str, Any]],
) -> None:
    pubs: list[Publication] = []
    seqs: dict[str, int] = {}

    def next_seq(channel: str) -> int:
        seqs[channel] = seqs.get(channel, 0) + 1
        return seqs[channel]

    projector = BookProjector(next_seq=next_seq, publish=pubs.append)
    reference: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
    clients: dict[int, ClientBook] = {}
    uid = 0
    for kind, arg in steps:
        if kind == "open":
            projector.open(Channel(f"book:BTCUSDT:{arg}", Kind.BOOK, symbol="BTCUSDT", depth=arg))
            clients.setdefault(arg, ClientBook())
        else:
            uid += 1
            bids, asks = as_levels(arg[0], "0.5"), as_levels(arg[1], "0.50")
            if kind == "diff":
                for name, levels in (("bids", bids), ("asks", asks)):
                    for p, q in levels:
                        if q:
                            reference[name][p] = q
                        else:
                            reference[name].pop(p, None)
                projector.on_update(diff(bids, asks, uid))
            else:
                reference = {"bids": {p: q for p, q in bids if q}, "asks": {p: q for p, q in asks if q}}
                projector.on_update(snapshot(bids, asks, uid, reset=kind == "reset"))
        for pub in pubs:
            depth = int(pub.channel.rsplit(":", 1)[1])
            msg = body(pub)
            assert msg["data"]["updateId"] == uid  # a snapshot on open: of the last update
            if depth >= 10:
                clients[depth].verify(msg)  # the checksum covers 10 levels: a client of 10 or more
            else:
                clients[depth].apply(msg)
        pubs.clear()
        top_bids = sorted(reference["bids"].items(), reverse=True)
        top_asks = sorted(reference["asks"].items())
        for depth, client in clients.items():
            if client.seq is None:
                continue  # opened before any snapshot: waits for one
            assert client.top_bids(depth + 5) == [(float(p), float(q)) for p, q in top_bids[:depth]]
            assert client.top_asks(depth + 5) == [(float(p), float(q)) for p, q in top_asks[:depth]]
            assert client.seq == seqs[f"book:BTCUSDT:{depth}"]  # every seq reached the client
