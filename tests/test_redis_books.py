"""Order books across a cluster on the Redis bus (docs/multi-node.md, "Order books").

The snapshot key ``P:{CH}:book`` (written by the leading ingest, at most once
a second and after every reset), gateways that join a flowing channel through
it, and a gap on a gateway's pub/sub that ends in a re-sync, never in a wrong
book. Nodes run in this process on real sockets with a real redis-server;
clients build their books from the messages they receive alone and check
every checksum.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from tickwire.books import BookProjector
from tickwire.bookview import BookView
from tickwire.bus.redis import RedisBus, encode_publication
from tickwire.bus.redis._books import book_key, is_snapshot, usable
from tickwire.channels import Channel, Kind, parse_channel
from tickwire.events import BookUpdate
from tickwire.orderbook import levels_json
from tickwire.protocol import encode_book
from tickwire.publications import Publication
from tickwire.sources.market import SYMBOLS
from tickwire.sources.simbook import SimBook

from .bookcheck import ClientBook
from .helpers import Client, FakeSource, HubRecorder, Running, eventually, running_gateway
from .redis_server import RedisServer


pytestmark = [pytest.mark.redis]

D20, D1000 = "book:BTCUSDT:20", "book:BTCUSDT:1000"
SPEC = next(s for s in SYMBOLS if s.symbol == "BTCUSDT")


# -- a book source the test drives ---------------------------------------------------------


class BookFeed(FakeSource):
    """A source with a real (simulated) BTCUSDT book: its snapshot when a book channel
    opens, then a diff every ``period`` seconds; :meth:`reset` sends a reset snapshot."""

    def __init__(self, *, period: float = 0.02, seed: int = 5) -> None:
        super().__init__()
        self.period = period
        self._rng = random.Random(seed)
        self.book: SimBook | None = None
        self.price = SPEC.price

    def open(self, channel: Channel) -> None:
        super().open(channel)
        if channel.kind is Kind.BOOK and self.book is None:
            self.book = SimBook(SPEC, self.price, random.Random(1), update_id=1_000)
            self._emit(self.book.snapshot(_now_ms()))

    def _emit(self, update: BookUpdate) -> None:
        assert self.sink is not None
        self.sink.on_event(update)

    def reset(self) -> None:
        assert self.book is not None
        self._emit(msgspec.structs.replace(self.book.snapshot(_now_ms()), reset=True))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            if self.book is not None:
                self.price *= 1 + self._rng.gauss(0, 2e-5)
                update = self.book.step(self.price, _now_ms())
                if update is not None:
                    self._emit(update)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- a client that follows the protocol's book rules ---------------------------------------


class Follower:
    """One client on one book channel: applies snapshots and diffs, verifies every checksum,
    and remembers the book after every seq. A diff that does not follow is a gap: the
    book is dropped until the next snapshot (the gateway re-syncs by itself)."""

    def __init__(self, client: Client, channel: str) -> None:
        self.client, self.channel = client, channel
        self.book: ClientBook | None = None
        self.books: dict[int, int] = {}  # seq -> a hash of the book after it
        self.diffs: list[tuple[int, str]] = []  # (seq, payload) of every diff applied
        self.kinds: list[str] = []  # "snapshot", "diff", "gap", in order
        self.snapshot_seqs: list[int] = []
        self.resets: list[int] = []  # seqs of snapshots with reset

    def on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("type") != "book" or msg["channel"] != self.channel:
            return
        if msg.get("snapshot"):
            self.book = ClientBook()
            self.snapshot_seqs.append(msg["seq"])
            if msg.get("reset"):
                self.resets.append(msg["seq"])
            self.kinds.append("snapshot")
        elif self.book is None or msg["seq"] != (self.book.seq or 0) + 1:
            self.book = None
            self.kinds.append("gap")
            return
        else:
            self.kinds.append("diff")
            self.diffs.append((msg["seq"], json.dumps(msg, sort_keys=True)))
        self.book.verify(msg)  # the checksum of the client's own top 10
        book = (tuple(sorted(self.book.bids.items())), tuple(sorted(self.book.asks.items())))
        self.books[msg["seq"]] = hash(book)

    async def run(self) -> None:
        [ack] = await self.client.subscribe(self.channel)
        assert ack["type"] == "subscribed", ack
        while True:
            self.on_message(await self.client.recv(timeout=30))


@contextlib.asynccontextmanager
async def following(url: str, *channels: str) -> AsyncIterator[list[Follower]]:
    """A client per channel on the gateway at ``url``, each following its channel."""
    async with contextlib.AsyncExitStack() as stack:
        followers = [Follower(await stack.enter_async_context(Client.connect(url)), c) for c in channels]
        tasks = [asyncio.create_task(f.run()) for f in followers]
        try:
            yield followers
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:  # a failed assertion inside a follower fails the test
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]


def diffs_after(f: Follower, seq: int) -> int:
    return sum(1 for s, _ in f.diffs if s > seq)


@contextlib.asynccontextmanager
async def ingest_node(url: str, feed: BookFeed) -> AsyncIterator[Running]:
    async with running_gateway(source=feed, role="ingest", redis_url=url) as running:
        await eventually(lambda: bus_of(running).leading, what="the ingest to lead")
        yield running


def gateway(url: str, **changes: Any) -> contextlib.AbstractAsyncContextManager[Running]:
    return running_gateway(role="gateway", redis_url=url, **changes)


def lose_diffs(running: Running, n: int) -> list[dict[str, Any]]:
    """Make the gateway's pub/sub lose the next ``n`` messages of ``book:BTCUSDT:20``."""
    hub_side = bus_of(running)._hub
    on_message, dropped = hub_side._on_message, list[dict[str, Any]]()

    def lossy(message: dict[str, Any]) -> None:
        if message["type"] == "message" and b"book:BTCUSDT:20\n" in message["data"] and len(dropped) < n:
            dropped.append(message)
            return
        on_message(message)

    hub_side._on_message = lossy  # type: ignore[method-assign]
    return dropped


def bus_of(running: Running) -> RedisBus:
    bus = running.gateway.bus
    assert isinstance(bus, RedisBus)
    return bus


def key_seq(value: Any) -> int:
    """The seq of a snapshot key's value (``P<seq>\n...``)."""
    assert isinstance(value, bytes)
    return int(value[1:].split(b"\n")[0])


def same_books(a: Follower, b: Follower) -> list[int]:
    """The seqs both followers hold a book after; asserts the books are equal there."""
    common = sorted(set(a.books) & set(b.books))
    for seq in common:
        assert a.books[seq] == b.books[seq], f"{a.channel}: books differ at seq {seq}"
    return common


# -- pure pieces -----------------------------------------------------------------------------


def test_a_snapshot_is_told_from_a_diff_by_its_head() -> None:
    levels = levels_json([], (2, 5))
    common: dict[str, Any] = {"bids": levels, "asks": levels, "checksum": 0, "update_id": 1, "timestamp": 2}
    snapshot = encode_book(D20, "BTCUSDT", 7, snapshot=True, depth=20, precision=(2, 5), **common)
    reset = encode_book(D20, "BTCUSDT", 8, snapshot=True, depth=20, precision=(2, 5), reset=True, **common)
    diff = encode_book(D20, "BTCUSDT", 9, **common)
    assert is_snapshot(snapshot) and is_snapshot(reset)
    assert not is_snapshot(diff)


@pytest.mark.parametrize(
    ("snapshot", "stored", "run", "expected"),
    [
        (10, 10, None, True),  # the newest: everything after comes on pub/sub
        (8, 10, None, False),  # 9 and 10 went out before this node subscribed
        (8, 10, 9, True),  # 9 on was received: the view catches up
        (8, 10, 10, False),  # 9 is lost here
        (12, 14, 11, True),  # newer than the start of the run
    ],
)
def test_a_snapshot_is_usable_when_nothing_after_it_is_lost(
    snapshot: int, stored: int, run: int | None, expected: bool
) -> None:
    assert usable(snapshot, stored, run) is expected


def test_the_projectors_snapshot_is_exactly_the_view_at_its_seq() -> None:
    """At any moment, for every open depth, the snapshot the ingest stores equals the
    view rebuilt from that channel's publications: seq, levels, checksum, update id, time."""
    seqs: dict[str, int] = {}
    views = {c: BookView(c) for c in (D20, "book:BTCUSDT:10", D1000)}

    def next_seq(channel: str) -> int:
        seqs[channel] = seqs.get(channel, 0) + 1
        return seqs[channel]

    projector = BookProjector(
        next_seq=next_seq, publish=lambda p: views[p.channel].apply(p.seq, p.payload) and None
    )
    for name in views:
        projector.open(parse_channel(name))
    sim = SimBook(SPEC, SPEC.price, random.Random(3), update_id=10)
    projector.on_update(sim.snapshot(1))
    rng, price, checked = random.Random(4), SPEC.price, 0
    for step in range(120):
        price *= 1 + rng.gauss(0, 3e-5)
        update = sim.step(price, 2 + step)
        if step % 2:  # a change deep in the book: only depth 1000 publishes it
            book = projector.book("BTCUSDT")
            assert book is not None
            deep_price, qty = book.bids.top(600)[-1]
            level = (deep_price, qty + Decimal("0.00001"))
            update = BookUpdate(
                symbol="BTCUSDT", bids=(level,), asks=(), update_id=10_000 + step, event_time=step
            )
        if update is not None:
            projector.on_update(update)
        for name, view in views.items():
            if name == D1000 and step % 10:
                continue  # 2,000 levels: now and then is enough
            pub = projector.snapshot(name)
            assert pub is not None and view.ready
            assert pub.seq == view.seq == seqs[name]
            mine = msgspec.json.decode(pub.payload)
            theirs = msgspec.json.decode(view.snapshot_payload())
            assert mine == theirs, f"{name} at seq {pub.seq}"
            checked += 1
    assert checked == 252 and seqs["book:BTCUSDT:10"] < seqs[D1000]  # depths publish apart


def test_a_resumed_channel_gets_a_reset_snapshot_now_or_with_the_next_book() -> None:
    published: list[Publication] = []
    seqs = {D20: 40}  # the cluster's history reached 40 without this ingest

    def next_seq(channel: str) -> int:
        seqs[channel] += 1
        return seqs[channel]

    projector = BookProjector(next_seq=next_seq, publish=published.append)
    projector.resumed(D20)  # a new leader: nothing open yet
    projector.open(parse_channel(D20))
    sim = SimBook(SPEC, SPEC.price, random.Random(3), update_id=10)
    projector.on_update(sim.snapshot(1))
    first = msgspec.json.decode(published[-1].payload)
    assert first["seq"] == 41 and first["snapshot"] and first["reset"]
    update = sim.step(SPEC.price * 1.001, 2)
    assert update is not None
    projector.on_update(update)
    assert "reset" not in msgspec.json.decode(published[-1].payload)  # only the first
    projector.resumed(D20)  # open with a book (a refused publish): at once
    again = msgspec.json.decode(published[-1].payload)
    assert again["snapshot"] and again["reset"] and again["seq"] == seqs[D20]


# -- the gateway's read of the key, against a real Redis ------------------------------------


async def test_a_gateway_waits_for_a_snapshot_it_can_continue_from(redis_server: RedisServer) -> None:
    """Diffs 9 and 10 went out before the gateway subscribed: the key at 8 is not served;
    diffs from 11 arrive; the key at 10 (or later) is, and the view holds 11 on."""
    raw = Redis.from_url(redis_server.url)  # bytes replies
    bus = RedisBus(redis_server.url, can_lead=False, prefix="t1")
    hub = HubRecorder()
    bus.attach_hub(hub)
    await bus.start()
    k = bus._link.keys  # the key names of this deployment

    async def put_snapshot(seq: int) -> None:
        await raw.set(book_key("t1", D20), encode_publication(Publication(D20, seq, b"{}", True, 1)))

    async def publish(seq: int) -> None:
        await raw.set(k.seq(D20), seq)
        await raw.publish(k.pub(D20), encode_publication(Publication(D20, seq, b"{}", True, 1)))

    try:
        await eventually(lambda: bus.connected, what="the bus to connect")
        await put_snapshot(8)
        await raw.set(k.seq(D20), 10)
        bus.want(D20)
        reading = asyncio.create_task(bus.last(D20))
        await asyncio.sleep(0.2)  # it polls: no usable snapshot yet
        assert not reading.done()
        await publish(11)
        await eventually(lambda: hub.seqs(D20) == [11], what="diff 11")
        assert not reading.done()  # 9 and 10 are still missing here
        await put_snapshot(10)
        last, _ = await asyncio.wait_for(reading, 2)
        assert last is not None and last.seq == 10
        # the background sync (started by the first run) hands it over too: the hub offers it to the view
        await eventually(lambda: hub.seqs(D20) == [11, 10], what="the snapshot at 10, re-delivered")
        # after a gap (13 follows 11) the key is re-read in the background and handed over
        await publish(13)
        await put_snapshot(11)
        await asyncio.sleep(0.2)
        assert hub.seqs(D20) == [11, 10, 13]  # 11 < 13 - 1: not usable
        await put_snapshot(13)
        await eventually(lambda: hub.seqs(D20) == [11, 10, 13, 13], what="the snapshot at 13, re-delivered")
        assert bus._hub.books.resyncs == 2
    finally:
        await bus.close()
        await raw.aclose()


# -- nodes: one ingest, gateways ----------------------------------------------------------------


async def test_two_gateways_serve_identical_messages_and_books(redis_server: RedisServer) -> None:
    feed = BookFeed()
    async with (
        ingest_node(redis_server.url, feed),
        gateway(redis_server.url) as a,
        gateway(redis_server.url) as b,
    ):
        async with following(a.ws_url, D20, D1000) as on_a, following(b.ws_url, D20, D1000) as on_b:
            await eventually(
                lambda: all(len(f.diffs) >= 40 for f in on_a + on_b), 20, what="40 diffs on every client"
            )
    for fa, fb in zip(on_a, on_b, strict=True):
        assert "gap" not in fa.kinds and "gap" not in fb.kinds
        assert fa.kinds[0] == fb.kinds[0] == "snapshot"
        lo = max(fa.diffs[0][0], fb.diffs[0][0])
        hi = min(fa.diffs[-1][0], fb.diffs[-1][0])
        assert hi - lo >= 20
        assert [d for d in fa.diffs if lo <= d[0] <= hi] == [d for d in fb.diffs if lo <= d[0] <= hi]
        assert len(same_books(fa, fb)) >= 20


async def test_a_late_gateway_serves_a_snapshot_then_contiguous_diffs(redis_server: RedisServer) -> None:
    """The channel flows for a while before gateway B wants it, so B's snapshot comes from
    the key; B joins five times at random moments and every time it serves a snapshot
    equal to A's book at that seq, then every diff after it."""
    feed = BookFeed()
    rng = random.Random(11)
    async with ingest_node(redis_server.url, feed), gateway(redis_server.url) as a:
        async with following(a.ws_url, D20, D1000) as on_a:
            await eventually(lambda: all(len(f.diffs) >= 50 for f in on_a), 20, what="the channels to flow")
            async with gateway(redis_server.url) as b:
                for _ in range(5):
                    await asyncio.sleep(rng.uniform(0, 1))
                    async with following(b.ws_url, D20, D1000) as on_b:
                        await eventually(
                            lambda: all(
                                f.snapshot_seqs and diffs_after(f, f.snapshot_seqs[0]) >= 10 for f in on_b
                            ),
                            10,
                            what="B to serve a snapshot and 10 diffs",
                        )
                    await eventually(lambda: not b.gateway.hub.channels(), what="B to drop the channels")
                    for fa, fb in zip(on_a, on_b, strict=True):
                        # later snapshots may replace a burst of queued diffs (the state class)
                        assert fb.kinds[0] == "snapshot" and "gap" not in fb.kinds, fb.kinds
                        start = fb.snapshot_seqs[0]
                        assert fb.diffs[0][0] == start + 1
                        # equal wherever both hold one (a wrong snapshot would stay wrong after it)
                        assert len([s for s in same_books(fa, fb) if s >= start]) >= 5
                waits = bus_of(b)._hub.books.waits
            writes = bus_of(b).books.writes
    assert waits >= 1  # a key older than what B received before: B waited for the next one
    assert writes == {}  # only the leader writes the key


async def test_the_key_is_written_at_most_once_a_second_and_after_a_reset(redis_server: RedisServer) -> None:
    feed = BookFeed(period=0.01)
    raw = Redis.from_url(redis_server.url)  # bytes replies
    key = book_key("tickwire", D20)
    try:
        async with ingest_node(redis_server.url, feed) as ingest, gateway(redis_server.url) as a:
            async with following(a.ws_url, D20) as [f]:
                await eventually(lambda: len(f.diffs) >= 20, what="the channel to flow")
                writer = bus_of(ingest).books
                writes_before, t0 = writer.writes[D20], time.monotonic()
                changes: list[tuple[float, int]] = []  # (when seen, key seq)
                while time.monotonic() - t0 < 3.5:
                    value = await raw.getrange(key, 0, 24)
                    seq = key_seq(value)
                    if not changes or changes[-1][1] != seq:
                        changes.append((time.monotonic(), seq))
                    await asyncio.sleep(0.02)
                writes = writer.writes[D20] - writes_before
                assert 2 <= writes <= 5, writes  # 3.5 s of diffs every 10 ms
                gaps = [b[0] - a[0] for a, b in itertools.pairwise(changes[1:])]
                assert gaps and min(gaps) > 0.8, gaps  # never two writes within a second
                assert f.diffs[-1][0] - changes[-1][1] >= 0  # the key trails the stream
                # a reset is stored at once
                feed.reset()
                await eventually(lambda: len(f.snapshot_seqs) == 2, what="the reset snapshot")
                reset_seq = f.snapshot_seqs[1]

                async def key_at_reset() -> bool:
                    value = await raw.get(key)
                    return value is not None and key_seq(value) >= reset_seq

                await eventually(key_at_reset, 0.5, what="the key to hold the reset snapshot")
    finally:
        await raw.aclose()


async def test_a_gap_on_a_gateways_pubsub_ends_in_a_resync_never_a_wrong_book(
    redis_server: RedisServer,
) -> None:
    """Gateway B keeps no book stream to fill gaps from (``--history book=0``) and loses
    three diffs of its pub/sub (injected): its clients get the diff after the gap (and see
    it), then nothing until B re-read the key, then a snapshot equal to A's book at that
    seq, then contiguous diffs. No diff lands on a wrong book."""
    feed = BookFeed()
    async with (
        ingest_node(redis_server.url, feed),
        gateway(redis_server.url) as a,
        gateway(redis_server.url, history="book=0") as b,
    ):
        async with following(a.ws_url, D20) as [fa], following(b.ws_url, D20) as [fb]:
            await eventually(lambda: len(fb.diffs) >= 20, 10, what="B to serve diffs")
            dropped = lose_diffs(b, 3)
            await eventually(lambda: len(dropped) == 3, what="three diffs lost")
            await eventually(lambda: len(fb.snapshot_seqs) == 2, 5, what="B to re-sync its clients")
            resync = fb.snapshot_seqs[1]
            await eventually(lambda: diffs_after(fb, resync) >= 10 and diffs_after(fa, resync) >= 10, 10)
    assert fb.kinds.count("gap") == 1
    at = fb.kinds.index("gap")
    assert fb.kinds[at + 1] == "snapshot"  # nothing in between
    assert len([s for s in same_books(fa, fb) if s > resync]) >= 10
    assert bus_of(b)._hub.books.resyncs >= 1


async def test_a_gap_on_a_gateways_pubsub_is_filled_from_the_stream(redis_server: RedisServer) -> None:
    """With the book's stream (the default), the same three lost diffs are read back from
    Redis and delivered in order: B's clients see no gap and no re-sync, and hold A's books."""
    feed = BookFeed()
    async with (
        ingest_node(redis_server.url, feed),
        gateway(redis_server.url) as a,
        gateway(redis_server.url) as b,
    ):
        async with following(a.ws_url, D20) as [fa], following(b.ws_url, D20) as [fb]:
            await eventually(lambda: len(fb.diffs) >= 20, 10, what="B to serve diffs")
            dropped = lose_diffs(b, 3)
            await eventually(lambda: len(dropped) == 3, what="three diffs lost")
            after = max(fb.books) if fb.books else 0
            await eventually(lambda: diffs_after(fb, after) >= 10 and diffs_after(fa, after) >= 10, 10)
        # a later snapshot only where the state class sent it for a burst of filled diffs
        assert len(fb.snapshot_seqs) - 1 <= b.gateway.stats.book_snapshots
    assert "gap" not in fb.kinds and bus_of(b)._hub.books.resyncs == 0
    assert len([s for s in same_books(fa, fb) if s > after]) >= 10
    assert bus_of(b)._hub.gaps.filled >= 1


async def test_a_new_leader_publishes_a_reset_snapshot_and_the_book_goes_on(
    redis_server: RedisServer,
) -> None:
    """The leading ingest stops; the standby (another book: another seed) takes the lock,
    continues the seq and publishes a reset snapshot as soon as its source has the book.
    The gateway's clients replace their book with it, and every checksum verifies."""
    url = redis_server.url
    async with contextlib.AsyncExitStack() as first:
        await first.enter_async_context(ingest_node(url, BookFeed(seed=1)))
        async with running_gateway(source=BookFeed(seed=2), role="ingest", redis_url=url) as standby:
            async with gateway(url) as gw, following(gw.ws_url, D20) as [f]:
                await eventually(lambda: len(f.diffs) >= 20, 10, what="the first leader's diffs")
                assert not bus_of(standby).leading
                await first.aclose()  # a clean stop releases the lock at once
                await eventually(lambda: bus_of(standby).leading, 10, what="the standby to lead")
                await eventually(lambda: len(f.snapshot_seqs) >= 2, 10, what="the new leader's snapshot")
                handover = f.snapshot_seqs[1]
                await eventually(lambda: diffs_after(f, handover) >= 10, 10, what="the new leader's diffs")
                key = await bus_of(standby)._hub.books.fetch(D20)
    assert "gap" not in f.kinds
    reset = [m for m in f.resets if m >= handover]
    assert reset and reset[0] == handover  # the first message of the new leader says reset
    assert max(s for s, _ in f.diffs if s < handover) == handover - 1  # the seq goes on, no repeat
    assert key[0] is not None and key[0].seq >= handover  # the new leader keeps the key
