"""Resume of ``book:`` channels (docs/book.md, "Resume of books"): a client whose book is
in step comes back with exactly the diffs it missed, or with the current snapshot when
they are not all held (more than the ring, another epoch, a snapshot in between); both
answer ``recovered: true``. In the hub, over a real socket, and with the client library."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

from tickwire import client as tw_client
from tickwire.bookview import BookView
from tickwire.bus.memory import MemoryBus
from tickwire.events import BookUpdate
from tickwire.history import History
from tickwire.hub import Hub
from tickwire.outbox import Outbox
from tickwire.protocol import Position
from tickwire.publications import ChannelStatus

from .bookcheck import ClientBook
from .books import RefBook, checksum_v1
from .helpers import Client, FakeSource, Running, decode_frames, eventually, running_gateway
from .test_client_resume import FAST, collect, cut
from .test_hub_book import CH, NOW_MS, Book, Recorder
from .test_resume_gateway import kill


D = Decimal


def make() -> tuple[MemoryBus, Hub, Book]:
    bus = MemoryBus()
    return bus, Hub(bus, clock_ms=lambda: NOW_MS, history=History()), Book(bus)


def verified(book: RefBook, frames: list[bytes]) -> list[dict[str, Any]]:
    """Apply frames to a client's book, checking seq (RefBook) and every checksum."""
    msgs = [m for f in frames for m in decode_frames(f)]
    for msg in msgs:
        if msg["type"] == "book":
            book.apply(msg)
            assert msg["data"]["checksum"] == checksum_v1(*book.top(10), (2, 5))
    return msgs


# -- the hub -------------------------------------------------------------------------


async def test_a_resume_within_the_ring_replays_exactly_the_missed_diffs() -> None:
    _, hub, book = make()
    other, first = Recorder(), Recorder()  # `other` keeps the channel (and its history) open
    await hub.subscribe(other, CH)
    greeting = await hub.subscribe(first, CH)
    book.publish(snapshot=True)
    for _ in range(5):
        book.publish()
    mine = RefBook()
    verified(mine, first.frames)
    hub.unsubscribe(first, CH)  # the client is cut off at seq 6
    for _ in range(20):
        book.publish()
    back = Recorder()
    again = await hub.subscribe(back, CH, Position(greeting.epoch, mine.seq))
    assert again.outcome is not None and again.outcome.recovered and not again.outcome.snapshot
    assert list(again) == other.frames[6:26]  # the missed diffs, byte for byte as sent live
    ack = json.loads(again.ack(CH, NOW_MS, 7))
    assert (ack["recovered"], ack["replayed"], ack["seq"], "reason" in ack) == (True, 20, 26, False)
    assert hub.send_snapshot(back, CH) is True  # (the session does not call it after a replay)
    back.frames.clear()
    verified(mine, list(again))
    assert mine.top(10) == book.ref.top(10) and mine.seq == 26
    book.publish()
    assert back.brief()[-1] == ("state", 27, False)  # live diffs go on from there


async def test_a_client_whose_diffs_the_state_class_replaced_resumes_from_that_snapshot() -> None:
    """A slow client's queued diffs became one snapshot (the view's, at the newest seq): its
    position is that seq, and the diffs after it are in the ring."""

    class Slow:
        def __init__(self) -> None:
            self.outbox = Outbox(max_queue=16)

        def push_latest(self, channel: str, frame: bytes) -> None:
            raise AssertionError("a book frame is never latest-value")

        def push_final(self, channel: str, frame: bytes) -> None:
            assert self.outbox.push_final(channel, frame)

        def push_state(self, channel: str, frame: bytes, snapshot: bool, view: BookView) -> None:
            self.outbox.push_state(channel, frame, snapshot, view)

    _, hub, book = make()
    keep, slow = Recorder(), Slow()
    await hub.subscribe(keep, CH)
    greeting = await hub.subscribe(slow, CH)
    book.publish(snapshot=True)
    for _ in range(40):
        book.publish()
    msgs = verified(mine := RefBook(), [slow.outbox.take()])
    assert [m["seq"] for m in msgs if m.get("snapshot")][-1] == 41 == mine.seq  # replaced, at the top
    hub.unsubscribe(slow, CH)
    for _ in range(10):
        book.publish()
    again = await hub.subscribe(Recorder(), CH, Position(greeting.epoch, mine.seq))
    assert again.replayed == 10
    verified(mine, list(again))
    assert mine.top(10) == book.ref.top(10)


async def test_a_snapshot_in_the_window_too_many_diffs_or_another_epoch_mean_the_snapshot() -> None:
    bus, hub, book = make()
    await hub.subscribe(Recorder(), CH)
    epoch = (await hub.subscribe(Recorder(), CH)).epoch
    book.publish(snapshot=True)
    for _ in range(9):
        book.publish()  # seq 10
    bus.publish_status(ChannelStatus(CH, False, "book resync", NOW_MS))
    reset = book.publish(snapshot=True)  # 11
    bus.publish_status(ChannelStatus(CH, True, None, NOW_MS))
    for _ in range(3):
        book.publish()  # 14

    async def resume(seq: int, in_epoch: str = epoch) -> tuple[Recorder, Any]:
        sub = Recorder()
        greeting = await hub.subscribe(sub, CH, Position(in_epoch, seq))
        assert greeting.outcome is not None and greeting.outcome.recovered  # always, for a book
        return sub, greeting

    sub, before_reset = await resume(10)
    assert before_reset.outcome.snapshot and list(before_reset) == []  # live: the view's snapshot
    assert hub.send_snapshot(sub, CH) and sub.brief() == [("state", 14, True)]
    _, at_reset = await resume(reset)  # had the reset snapshot: missed "live" and 3 diffs
    replay = [m for f in at_reset for m in decode_frames(f)]
    assert [(m["type"], m.get("seq", m.get("status"))) for m in replay] == [
        ("status", "live"), ("book", 12), ("book", 13), ("book", 14),
    ]  # fmt: skip
    _, at_top = await resume(14)
    assert list(at_top) == [] and not at_top.outcome.snapshot  # nothing missed, nothing sent
    _, other_epoch = await resume(14, "another")
    assert other_epoch.outcome.snapshot
    for _ in range(120):
        book.publish()  # the ring keeps 100
    _, too_old = await resume(14)
    assert too_old.outcome.snapshot and too_old.replayed == 0
    _, in_ring = await resume(34)  # the oldest position the ring reaches: 100 diffs back
    assert in_ring.replayed == 100 and not in_ring.outcome.snapshot
    _, below = await resume(33)
    assert below.outcome.snapshot


# -- a real gateway, a real socket ------------------------------------------------------


class BookTape:
    """A full book of BTCUSDT sent as BookUpdates through a FakeSource (the ingest projects
    it), with the reference book it should be."""

    def __init__(self, source: FakeSource, seed: int = 1) -> None:
        self.source = source
        self.rng = random.Random(seed)
        self.bids = {D(97000) - D(i) / 10: D("0.50000") + i for i in range(30)}
        self.asks = {D("97000.10") + D(i) / 10: D("0.25000") + i for i in range(30)}
        self.uid = 1000

    def _send(self, bids: dict[D, D], asks: dict[D, D], **kw: Any) -> None:
        assert self.source.sink is not None
        self.uid += 1
        self.source.sink.on_event(
            BookUpdate(
                symbol="BTCUSDT", bids=tuple(bids.items()), asks=tuple(asks.items()),
                update_id=self.uid, event_time=NOW_MS + self.uid, **kw,
            )
        )  # fmt: skip

    def snapshot(self, *, reset: bool = False) -> None:
        self._send(self.bids, self.asks, snapshot=True, reset=reset, precision=(2, 5))

    def diff(self, n: int = 1) -> None:
        """``n`` diffs, each changing a level among the best five of a side (so every depth sees it)."""
        for _ in range(n):
            side = self.bids if self.rng.random() < 0.5 else self.asks
            price = sorted(side, reverse=side is self.bids)[self.rng.randrange(5)]
            qty = D(self.rng.randrange(0, 4000)) / 1000
            if qty:
                side[price] = qty
            else:
                del side[price]
            change = {price: qty}
            self._send(change if side is self.bids else {}, change if side is self.asks else {})

    def top(self, depth: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return [(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks]


async def read_to(client: Client, book: ClientBook, seq: int) -> list[dict[str, Any]]:
    """Book and status frames of CH until the book is at ``seq``, each applied and verified."""
    got: list[dict[str, Any]] = []
    while book.seq != seq:
        msg = await client.recv_until(lambda m: m.get("channel") == CH and m["type"] in ("book", "status"))
        got.append(msg)
        if msg["type"] == "book":
            book.verify(msg)
    return got


async def cut_off(gw: Running, tape: BookTape, diffs: int) -> tuple[dict[str, Any], ClientBook]:
    """A client follows the book through its snapshot and ``diffs`` diffs, then its socket is
    killed; returns its ack and its book, for the resume."""
    async with Client.connect(gw.ws_url) as first:
        [ack] = await first.subscribe(CH)
        await eventually(lambda: CH in tape.source.open_now, what="the source asked for the book")
        tape.snapshot()
        tape.diff(diffs)
        mine = ClientBook()
        await read_to(first, mine, diffs + 1)
        kill(first)
        await eventually(lambda: not gw.gateway.sessions, what="the gateway saw the cut")
    return ack, mine


async def test_a_client_cut_off_resumes_its_book_with_the_missed_diffs() -> None:
    tape = BookTape(FakeSource())
    async with running_gateway(source=tape.source) as gw:
        ack, mine = await cut_off(gw, tape, 10)
        tape.diff(30)  # missed
        async with Client.connect(gw.ws_url) as again:
            since = {CH: {"epoch": ack["epoch"], "seq": mine.seq}}
            [back] = await again.subscribe(CH, since=since)
            assert (back["recovered"], back["replayed"], back["seq"]) == (True, 30, 41)
            tape.diff(5)  # live, after the replay
            got = await read_to(again, mine, 46)
    replayed = got[:30]  # then live: 5 diffs at once may become the state class's snapshot
    assert [m["seq"] for m in replayed] == list(range(12, 42)) and not any(
        m.get("snapshot") for m in replayed
    )
    assert (mine.top_bids(10), mine.top_asks(10)) == tape.top(10)
    assert gw.gateway.stats.resumes["recovered"] == 1


async def test_a_reset_while_away_means_the_snapshot_and_still_recovered() -> None:
    tape = BookTape(FakeSource(), seed=2)
    async with running_gateway(source=tape.source) as gw:
        ack, mine = await cut_off(gw, tape, 3)
        assert tape.source.sink is not None
        tape.diff(2)
        tape.source.sink.on_status(CH, False, "book resync")
        tape.bids.pop(max(tape.bids))  # the book the resync found differs
        tape.snapshot(reset=True)
        tape.source.sink.on_status(CH, True, None)
        tape.diff(2)  # seqs 5, 6; the reset snapshot 7; then 8, 9
        async with Client.connect(gw.ws_url) as again:
            [back] = await again.subscribe(CH, since={CH: {"epoch": ack["epoch"], "seq": 4}})
            assert (back["recovered"], back.get("replayed", 0), "reason" in back) == (True, 0, False)
            assert back["seq"] == 9
            [snapshot] = await read_to(again, mine, 9)
    assert snapshot["snapshot"] is True and not snapshot.get("reset")  # the view's, at seq 9
    assert (mine.top_bids(10), mine.top_asks(10)) == tape.top(10)


# -- the client library -------------------------------------------------------------------


async def test_the_client_library_resumes_a_book_in_step_and_resyncs_without_since() -> None:
    tape = BookTape(FakeSource(), seed=3)
    async with running_gateway(source=tape.source) as gw, tw_client.connect(gw.ws_url, **FAST) as feed:
        book = await feed.book(CH)
        await eventually(lambda: CH in tape.source.open_now, what="the source asked for the book")
        tape.snapshot()
        tape.diff(5)
        await collect(feed, lambda m: isinstance(m, tw_client.BookMessage) and m.seq == 6)
        cut(feed)
        tape.diff(20)  # missed: the old socket is gone
        await collect(feed, lambda m: isinstance(m, tw_client.Disconnected))
        assert not book.synced and book.resumable and book.seq == 6
        after = await collect(feed, lambda m: isinstance(m, tw_client.Recovered))
        assert after[-1] == tw_client.Recovered(CH, 20)
        after = await collect(feed, lambda m: isinstance(m, tw_client.BookMessage) and m.seq == 26)
        diffs = [m for m in after if isinstance(m, tw_client.BookMessage)]
        assert [m.seq for m in diffs] == list(range(7, 27)) and not any(m.snapshot for m in diffs)
        assert book.synced and book.resyncs == 0 and feed.gaps == 0
        assert floats(book.top(10)) == tape.top(10)
        # a checksum mismatch: the book asks for a snapshot again, without since
        price, qty = book.ask_side.best(10)[-1]  # in the checksum's top 10, below what diffs touch
        book.ask_side.set(price, qty + 1)
        tape.diff()
        await collect(feed, lambda m: isinstance(m, tw_client.BookMessage) and m.snapshot)
        assert book.synced and book.resyncs == 1 and book.seq == 27
        assert feed.resumes == [tw_client.Recovered(CH, 20)]  # the resync was no resume
        assert dict(gw.gateway.stats.resumes) == {"recovered": 1}
        assert floats(book.top(10)) == tape.top(10)


def floats(top: tuple[list[tuple[D, D]], list[tuple[D, D]]]) -> tuple[list[Any], list[Any]]:
    return [(float(p), float(q)) for p, q in top[0]], [(float(p), float(q)) for p, q in top[1]]


def test_only_a_book_held_in_step_is_resumed_and_at_its_own_seq() -> None:
    from tickwire.client.book import Book as LocalBook
    from tickwire.client.positions import Positions

    positions = Positions()
    ack = tw_client.Subscribed(channel=CH, timestamp="", epoch="E.1", seq=5, recoverable=True)
    positions.acked(ack)
    positions.seen(CH, 9)
    book = LocalBook(CH)
    book.seq, book.synced = 8, True  # (the book ignored a seq the positions saw)
    assert positions.since([CH]) == {}  # a book nobody applies asks for a snapshot
    assert positions.since([CH], {CH: book}) == {}  # connected: nothing to resume
    book.suspend()
    assert book.resumable and not book.synced and book.problem == "disconnected"
    assert positions.since([CH], {CH: book}) == {CH: {"epoch": "E.1", "seq": 8}}
    assert book.resume() and book.synced and not book.resumable
    book.invalidate("checksum mismatch")  # lost sync before the connection went
    book.suspend()
    assert not book.resumable and positions.since([CH], {CH: book}) == {} and not book.resume()
