"""The state class end to end: a slow book client gets a snapshot, never a 4008.

A session over the in-memory transport (a parked client that resumes; a
status between diffs), then a real gateway on 127.0.0.1 with real sockets:
a raw client that stops reading (tests/test_fanout_sockets.py's
``StalledClient``) beside a fast client on the same book channel. Book
messages are published straight into the bus, as the ingest will.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp

from tickwire.publications import ChannelStatus, Publication

from .books import RefBook, book_payload
from .helpers import TIMEOUT, Client, FakeSource, eventually, running_gateway
from .test_fanout_sockets import StalledClient
from .test_session import NOW_MS, Rig


class BigBook:
    """A book of ``levels`` a side whose diffs rewrite ``changed`` levels a side."""

    def __init__(self, channel: str, levels: int, changed: int, *, checksums: bool = True) -> None:
        self.channel = channel
        self.checksums = checksums  # off: checksum 0, for speed (the gateway does not verify it)
        self.levels = levels
        self.changed = changed
        self.ref = RefBook()
        self.seq = 0

    def _side(self, start: int, step: int, qty: str) -> list[tuple[str, str]]:
        return [(f"{97000 + step * (start + i) / 10:.1f}", qty) for i in range(self.changed)]

    def next(self, *, snapshot: bool = False) -> tuple[int, bytes]:
        self.seq += 1
        if snapshot:
            bids = [(f"{97000 - i / 10:.1f}", "1.5") for i in range(self.levels)]
            asks = [(f"{97000.1 + i / 10:.1f}", "0.25") for i in range(self.levels)]
        else:  # rewrite a window of levels with a new quantity (the window moves)
            start = (self.seq * 7) % (self.levels - self.changed)
            qty = f"{self.seq % 97 + 1}.{self.seq % 10}"
            bids, asks = self._side(start, -1, qty), self._side(start + 1, 1, qty)
        self.ref.apply_levels(bids, asks, snapshot=snapshot)
        self.ref.seq = self.seq
        ref = self.ref if self.checksums else None
        return self.seq, book_payload(self.channel, self.seq, bids, asks, snapshot=snapshot, book=ref)

    def publication(self, *, snapshot: bool = False) -> Publication:
        seq, payload = self.next(snapshot=snapshot)
        return Publication(self.channel, seq, payload, True, NOW_MS)


def kinds(messages: list[dict[str, Any]]) -> list[tuple[str, Any, bool]]:
    """(type, a data frame's seq or a status, snapshot); an ack's seq (its position) is left out."""
    return [
        (
            m["type"],
            None if m["type"] == "subscribed" else m.get("seq", m.get("status")),
            bool(m.get("snapshot")),
        )
        for m in messages
    ]


# -- one session, in memory ---------------------------------------------------------


async def test_a_parked_client_resumes_with_the_snapshot_then_the_next_diffs() -> None:
    rig = Rig(max_queue=4)
    book = BigBook("book:BTCUSDT:10", levels=10, changed=2)
    await rig.send(type="subscribe", channels=[book.channel])
    rig.bus.publish(book.publication(snapshot=True))
    await rig.stalled()
    for _ in range(100):  # 25 times max_queue: book frames do not count toward it
        rig.bus.publish(book.publication())
    assert not rig.session.closed and rig.stats.slow_disconnects == 0
    assert rig.session.queued <= 33 and rig.stats.book_snapshots >= 3
    rig.transport.release()
    read = await rig.settle()
    rig.bus.publish(book.publication())
    rig.bus.publish(book.publication())
    got = [m for m in read + await rig.settle() if m["type"] == "book"]
    first = got[0]
    assert first["snapshot"] and 1 < first["seq"] <= 101  # the backlog became one snapshot
    assert [m["seq"] for m in got] == list(range(first["seq"], 104))  # then every diff, in order
    client = RefBook()
    for msg in got:
        client.apply(msg)
    assert client.top(10) == book.ref.top(10)


async def test_a_status_between_diffs_stays_before_the_snapshot_that_replaces_them() -> None:
    rig = Rig(max_queue=8)
    book = BigBook("book:BTCUSDT:10", levels=10, changed=1)
    await rig.send(type="subscribe", channels=[book.channel])
    rig.bus.publish(book.publication(snapshot=True))
    await rig.stalled()
    rig.bus.publish(book.publication())  # 2
    rig.bus.publish_status(ChannelStatus(book.channel, False, "upstream disconnected", NOW_MS))
    rig.bus.publish_status(ChannelStatus(book.channel, True, None, NOW_MS))
    for _ in range(40):  # 3..42: past 32 pending diffs
        rig.bus.publish(book.publication())
    rig.transport.release()
    got = kinds(await rig.settle())
    # the statuses as they happened, then the state after them (where the newest
    # diff stood when the pending ones were replaced), then the diffs since
    assert got[:2] == [("status", "stale", False), ("status", "live", False)]
    _, at, snapshot = got[2]
    assert snapshot and at > 2
    assert got[3:] == [("book", seq, False) for seq in range(at + 1, 43)]


async def test_a_resubscribe_queues_the_snapshot_in_place_of_pending_diffs() -> None:
    rig = Rig()
    book = BigBook("book:BTCUSDT:10", levels=10, changed=1)
    await rig.send(type="subscribe", channels=[book.channel])
    rig.bus.publish(book.publication(snapshot=True))
    await rig.stalled()
    for _ in range(3):
        rig.bus.publish(book.publication())
    await rig.send(type="subscribe", channels=[book.channel], id=9)
    rig.transport.release()
    assert kinds(await rig.settle()) == [("subscribed", None, False), ("book", 4, True)]


# -- a real gateway, real sockets -----------------------------------------------------


async def read_book(client: StalledClient, channel: str, until: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while not got or got[-1]["seq"] < until:
            msg = await client.recv_text()
            if msg.get("channel") == channel and msg["type"] == "book":
                got.append(msg)
    return got


async def test_a_stalled_book_reader_gets_snapshots_not_a_backlog_nor_a_4008() -> None:
    book = BigBook("book:BTCUSDT:1000", levels=1000, changed=100, checksums=False)
    snapshot = book.publication(snapshot=True)  # ~29 KB
    diffs = [book.publication() for _ in range(300)]  # ~3 KB each, ~0.9 MB in all
    last = diffs[-1].seq
    async with (
        running_gateway(source=FakeSource(), max_queue=16, linger=0.0) as gw,
        Client.connect(gw.ws_url) as fast,
    ):
        await fast.subscribe(book.channel)
        gw.gateway.bus.publish(snapshot)
        before = set(gw.gateway.sessions)
        stalled = await StalledClient.connect(gw.ws_url, book.channel)
        [session] = set(gw.gateway.sessions) - before
        # a small kernel send buffer: the gateway's own buffer fills after ~300 KB, not 4 MB
        transport = session.socket
        assert isinstance(transport, asyncio.Transport)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        seen: list[dict[str, Any]] = []

        async def read_fast() -> None:
            while not seen or seen[-1]["seq"] < last:
                msg = await fast.recv()
                if msg["type"] == "book":
                    seen.append(msg)

        reader = asyncio.ensure_future(read_fast())
        peak = 0
        for pub in diffs:
            gw.gateway.bus.publish(pub)
            await asyncio.sleep(0.001)  # pacing, not a barrier: a live feed spreads messages out
            peak = max(peak, session.queued)
        await asyncio.wait_for(reader, TIMEOUT)
        # the fast client saw every message, in order: the snapshot, then each diff
        assert [m["seq"] for m in seen] == list(range(1, last + 1))
        assert [m.get("snapshot", False) for m in seen] == [True] + [False] * len(diffs)
        # the stalled one was parked, never closed, and its outbox stayed small
        assert session._parked is not None and not session.closed
        assert gw.gateway.stats.slow_disconnects == 0
        assert gw.gateway.stats.book_snapshots > 0
        assert peak <= 1 + 10  # a snapshot and fewer diffs than its bytes
        async with aiohttp.ClientSession() as http, http.get(gw.url + "/metrics") as resp:
            metrics = await resp.text()
        counted = gw.gateway.stats.book_snapshots
        assert f"tickwire_book_snapshots_instead_of_diffs_total {counted}.0" in metrics
        # reading again, it gets snapshots for what it missed, then contiguous diffs
        got = await read_book(stalled, book.channel, last)
        client = RefBook()
        for msg in got:
            client.apply(msg)  # asserts no gap after a snapshot
        assert client.top(1000) == book.ref.top(1000)
        assert len(got) < len(diffs) and sum(1 for m in got if m.get("snapshot")) >= 2
        stalled.abort()


async def test_a_resubscribe_over_a_real_socket_re_sends_the_snapshot() -> None:
    book = BigBook("book:ETHUSDT:20", levels=30, changed=3)
    async with (
        running_gateway(source=FakeSource(), linger=0.0) as gw,
        Client.connect(gw.ws_url) as client,
    ):
        [ack] = await client.subscribe("book:ethusdt:20")
        assert ack["channel"] == book.channel
        gw.gateway.bus.publish(book.publication(snapshot=True))
        for _ in range(5):
            gw.gateway.bus.publish(book.publication())
        mine = RefBook()
        while mine.seq < 6:
            mine.apply(await client.recv())
        [again] = await client.subscribe(book.channel)
        assert again["type"] == "subscribed"
        snapshot = await client.recv()
        assert snapshot["snapshot"] is True and snapshot["seq"] == 6 and snapshot["depth"] == 20
        assert json.dumps(snapshot["data"]["bids"]) == json.dumps(
            [[float(p), float(q)] for p, q in book.ref.top(20)[0]]
        )
        await eventually(lambda: gw.gateway.hub.subscriber_count(book.channel) == 1)
