"""The hub's book channels: a view per channel, greetings from it, state-class fan-out.

A recorder plays the subscriber; book messages are published straight into
a :class:`MemoryBus` (until the ingest projects books).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tickwire.bookview import BookView
from tickwire.bus.memory import MemoryBus
from tickwire.hub import Hub
from tickwire.publications import ChannelStatus, Publication

from .books import RefBook, book_payload, checksum_v1
from .helpers import frame_payloads


CH = "book:BTCUSDT:10"
NOW_MS = 1_700_000_000_000


class Recorder:
    """A subscriber that records every push: (how, channel, message, snapshot flag)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, dict[str, Any], bool]] = []
        self.frames: list[bytes] = []
        self.views: list[BookView] = []

    def _record(self, how: str, channel: str, frame: bytes, snapshot: bool = False) -> None:
        [payload] = frame_payloads(frame)
        self.got.append((how, channel, json.loads(payload), snapshot))
        self.frames.append(frame)

    def push_latest(self, channel: str, frame: bytes) -> None:
        self._record("latest", channel, frame)

    def push_final(self, channel: str, frame: bytes) -> None:
        self._record("final", channel, frame)

    def push_state(self, channel: str, frame: bytes, snapshot: bool, view: BookView) -> None:
        self._record("state", channel, frame, snapshot)
        self.views.append(view)

    def brief(self) -> list[tuple[str, Any, Any]]:
        return [(how, msg.get("seq", msg.get("status")), snap) for how, _, msg, snap in self.got]


class Book:
    """Publishes a book channel's messages into a bus, keeping the reference book."""

    def __init__(self, bus: MemoryBus, channel: str = CH) -> None:
        self.bus = bus
        self.channel = channel
        self.ref = RefBook()
        self.seq = 0
        self.tick = 0

    def payload(self, *, snapshot: bool = False) -> tuple[int, bytes]:
        self.seq += 1
        self.tick += 1
        if snapshot:
            bids = [(str(100 - i), str(self.tick)) for i in range(5)]
            asks = [(str(101 + i), "1") for i in range(5)]
        else:
            bids = [(str(100 - self.tick % 5), str(self.tick))]
            asks = [(str(101 + self.tick % 5), "0" if self.tick % 2 else "2")]
        self.ref.apply_levels(bids, asks, snapshot=snapshot)
        self.ref.seq = self.seq
        return self.seq, book_payload(self.channel, self.seq, bids, asks, snapshot=snapshot, book=self.ref)

    def publish(self, *, snapshot: bool = False) -> int:
        seq, payload = self.payload(snapshot=snapshot)
        self.bus.publish(Publication(self.channel, seq, payload, True, NOW_MS))
        return seq


def make() -> tuple[MemoryBus, Hub, Book]:
    bus = MemoryBus()
    return bus, Hub(bus, clock_ms=lambda: NOW_MS), Book(bus)


async def test_publications_fan_out_through_the_state_class_with_the_view() -> None:
    _, hub, book = make()
    sub = Recorder()
    assert await hub.subscribe(sub, CH) == []
    assert hub.send_snapshot(sub, CH) is False  # no book yet: nothing, not a made-up one
    book.publish(snapshot=True)
    book.publish()
    book.publish()
    assert sub.brief() == [("state", 1, True), ("state", 2, False), ("state", 3, False)]
    view = hub.book_view(CH)
    assert view is not None and all(v is view for v in sub.views)
    assert view.ready and view.seq == 3


async def test_a_subscriber_is_greeted_with_the_views_snapshot_encoded_once() -> None:
    _, hub, book = make()
    first = Recorder()
    await hub.subscribe(first, CH)
    book.publish(snapshot=True)
    for _ in range(4):
        book.publish()
    late = [Recorder(), Recorder()]
    for sub in late:
        assert await hub.subscribe(sub, CH) == []  # the snapshot is not a plain greeting frame
        assert hub.send_snapshot(sub, CH) is True
    how, _, msg, snapshot = late[0].got[0]
    assert how == "state" and snapshot and msg["snapshot"] is True and msg["seq"] == 5
    assert late[0].frames[0] is late[1].frames[0]  # one encoding, shared
    got = RefBook()
    got.apply(msg)
    assert got.top(10) == book.ref.top(10)
    assert msg["data"]["checksum"] == checksum_v1(*book.ref.top(10), (2, 5))  # message 5's


async def test_a_resubscribe_re_sends_the_current_snapshot() -> None:
    _, hub, book = make()
    sub = Recorder()
    await hub.subscribe(sub, CH)
    book.publish(snapshot=True)
    book.publish()
    await hub.subscribe(sub, CH)
    assert hub.send_snapshot(sub, CH) is True
    assert sub.brief()[-1] == ("state", 2, True)
    assert hub.subscriber_count(CH) == 1


async def test_when_the_bus_holds_a_diff_the_greeting_waits_for_the_next_snapshot() -> None:
    _, hub, book = make()
    other = Recorder()
    await hub.subscribe(other, "price:BTCUSDT")  # the bus publishes to the hub, which ignores CH
    book.publish(snapshot=True)
    book.publish()
    book.publish()  # the bus's last value of CH is now this diff
    sub = Recorder()
    assert await hub.subscribe(sub, CH) == []
    assert hub.send_snapshot(sub, CH) is False  # never a view built from a diff alone
    book.publish()
    assert sub.got == []  # a diff is of no use to a client without a book
    seq = book.publish(snapshot=True)
    book.publish()
    assert sub.brief() == [("state", seq, True), ("state", seq + 1, False)]


class SlowKeyBus(MemoryBus):
    """``last()`` answers late with an older snapshot, like the Redis snapshot key read
    after diffs already arrived by pub/sub."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.snapshot: Publication | None = None

    async def last(self, channel: str) -> tuple[Publication | None, ChannelStatus | None]:
        await self.answer.wait()
        return self.snapshot, None


async def test_a_snapshot_older_than_the_diffs_seen_catches_up_and_greets() -> None:
    bus = SlowKeyBus()
    hub = Hub(bus, clock_ms=lambda: NOW_MS)
    book = Book(bus)
    seq, payload = book.payload(snapshot=True)  # never published to this hub: it is in the "key"
    bus.snapshot = Publication(CH, seq, payload, True, NOW_MS)
    first, second = Recorder(), Recorder()
    waiting = asyncio.ensure_future(hub.subscribe(first, CH))
    await asyncio.sleep(0)
    for _ in range(3):
        book.publish()  # seqs 2..4 arrive while the key is being read
    bus.answer.set()
    assert await waiting == []
    assert hub.send_snapshot(first, CH) is True
    [(_, _, msg, snapshot)] = first.got
    assert snapshot and msg["seq"] == 4
    got = RefBook()
    got.apply(msg)
    assert got.top(10) == book.ref.top(10)
    book.publish()
    assert first.brief()[-1] == ("state", 5, False)
    await hub.subscribe(second, CH)  # the view is whole: no second read needed
    assert hub.send_snapshot(second, CH) and second.got[0][2]["seq"] == 5


async def test_waiting_subscribers_get_the_snapshot_a_later_subscribe_reads() -> None:
    bus = SlowKeyBus()
    hub = Hub(bus, clock_ms=lambda: NOW_MS)
    book = Book(bus)
    bus.answer.set()
    first = Recorder()
    await hub.subscribe(first, CH)  # the key is empty: nothing to greet with
    book.publish()  # seq 1 is a diff: held
    assert first.got == []
    seq, payload = 1, book_payload(CH, 1, [("100", "1")], [("101", "1")], snapshot=True)
    bus.snapshot = Publication(CH, seq, payload, True, NOW_MS)
    second = Recorder()
    await hub.subscribe(second, CH)  # reads the key again: the view is whole now
    assert first.brief() == [("state", 1, True)]  # the one already waiting is served too
    assert hub.send_snapshot(second, CH) is True


async def test_a_stale_book_channel_greets_with_the_status_and_no_snapshot() -> None:
    bus, hub, book = make()
    first = Recorder()
    await hub.subscribe(first, CH)
    book.publish(snapshot=True)
    bus.publish_status(ChannelStatus(CH, False, "book resync", NOW_MS))
    sub = Recorder()
    [frame] = await hub.subscribe(sub, CH)
    [payload] = frame_payloads(frame)
    assert json.loads(payload)["reason"] == "book resync"
    assert hub.send_snapshot(sub, CH) is False
    seq = book.publish(snapshot=True)  # the reset snapshot, then live
    bus.publish_status(ChannelStatus(CH, True, None, NOW_MS))
    assert sub.brief() == [("state", seq, True), ("final", "live", False)]


async def test_a_gap_goes_out_once_then_nothing_until_a_snapshot() -> None:
    _, hub, book = make()
    sub = Recorder()
    await hub.subscribe(sub, CH)
    book.publish(snapshot=True)
    book.seq += 1  # seq 2 is lost on the way (a bus reconnect)
    book.publish()  # 3: its subscribers see the gap themselves
    book.publish()  # 4: nobody can apply it
    assert hub.send_snapshot(sub, CH) is False
    seq = book.publish(snapshot=True)
    assert sub.brief() == [("state", 1, True), ("state", 3, False), ("state", seq, True)]


async def test_other_kinds_keep_their_greeting_and_have_no_view() -> None:
    bus, hub, _ = make()
    sub = Recorder()
    await hub.subscribe(sub, "price:BTCUSDT")
    bus.publish(Publication("price:BTCUSDT", 1, b'{"type":"price","seq":1}', False, NOW_MS))
    await asyncio.sleep(0)
    [frame] = await hub.subscribe(Recorder(), "price:BTCUSDT")
    assert frame_payloads(frame) == [b'{"snapshot":true,"type":"price","seq":1}']
    assert hub.book_view("price:BTCUSDT") is None
    assert hub.send_snapshot(sub, "price:BTCUSDT") is False
