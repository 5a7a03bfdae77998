"""Throttle per subscription in a session: acks, refusal, replacing options, release at the tick.

A real :class:`Hub` over a :class:`MemoryBus` feeds the session, as in
tests/test_session.py. The node's tick is replaced by a manual one
(:class:`ManualTicker`) so each test says exactly when a tick happens.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec

from tickwire.bus.memory import MemoryBus
from tickwire.channels import Channel
from tickwire.flusher import Flusher
from tickwire.frames import text_frame
from tickwire.hub import Hub
from tickwire.protocol import as_snapshot, encode_publication
from tickwire.publications import ChannelStatus, Publication
from tickwire.session import Limits, Session
from tickwire.stats import Stats
from tickwire.throttle import Held

from .helpers import FakeTransport


NOW_MS = 1_700_000_000_000
KINDS = {"price": "price", "ticker": "ticker", "klines": "kline", "trades": "trade", "book": "book"}


async def _any_channel(channel: Channel) -> None:
    return None


class ManualTicker:
    """The flusher's ticker, driven by the test: ``now`` is its clock, :meth:`tick` one tick."""

    def __init__(self) -> None:
        self.now = 10_000
        self.clients: dict[Any, None] = {}

    def now_ms(self) -> int:
        return self.now

    def add(self, client: Any) -> None:
        self.clients[client] = None

    def cancel(self) -> None:
        self.clients.clear()

    def tick(self, advance: int) -> None:
        self.now += advance
        for client in list(self.clients):
            if not client.tick(self.now):
                del self.clients[client]


class BookHub(Hub):
    """A stand-in for the book view (issue 13): the hub's snapshot of a book channel."""

    books: dict[str, bytes]

    def snapshot_frame(self, channel: str) -> bytes | None:
        return self.books.get(channel)


class Rig:
    def __init__(self) -> None:
        self.bus = MemoryBus()
        self.hub = BookHub(self.bus, clock_ms=lambda: NOW_MS)
        self.hub.books = {}
        self.stats = Stats(clock_ms=lambda: NOW_MS)
        self.transport = FakeTransport()
        self.flusher = Flusher()
        self.ticker = ManualTicker()
        self.flusher.ticker = self.ticker  # type: ignore[assignment]
        self.session = Session(
            "c1",
            self.transport,
            self.hub,
            limits=Limits(),
            stats=self.stats,
            clock=lambda: 0.0,
            clock_ms=lambda: NOW_MS,
            validate=_any_channel,
            flusher=self.flusher,
        )
        self.session.start()
        self.seq: dict[str, int] = {}

    async def send(self, **msg: Any) -> None:
        await self.session.receive(json.dumps(msg))

    def publish(self, channel: str, *, final: bool = False, **data: Any) -> int:
        seq = self.seq[channel] = self.seq.get(channel, 0) + 1
        kind = KINDS[channel.partition(":")[0]]
        raw = msgspec.Raw(json.dumps({"n": seq, **data}).encode())
        payload = encode_publication(kind, channel, seq, raw)
        self.bus.publish(Publication(channel, seq, payload, final, NOW_MS))
        return seq

    async def settle(self) -> list[dict[str, Any]]:
        """Let the hub's flush and the flusher run, then read what reached the socket."""
        for _ in range(5):
            await asyncio.sleep(0)
        return self.transport.read_all()

    def subscribers(self, channel: str) -> list[Any]:
        return list(self.hub._channels[channel].subscribers)


def brief(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(type, channel, a data frame's seq or a status); an ack's seq (its position) is left out."""
    return [
        (m["type"], m.get("channel"), None if m["type"] == "subscribed" else m.get("seq", m.get("status")))
        for m in messages
    ]


async def test_the_ack_states_the_rounded_throttle_in_force() -> None:
    rig = Rig()
    await rig.send(type="subscribe", id=1, channels=["price:A1"], options={"throttleMs": 120})
    (ack,) = await rig.settle()
    assert ack["type"] == "subscribed" and ack["options"] == {"throttleMs": 150} and ack["id"] == 1
    await rig.send(type="subscribe", channels=["ticker:A1"])
    (ack,) = await rig.settle()
    assert "options" not in ack  # a client that never throttles sees v1 acks
    await rig.session.cleanup()


async def test_every_message_channels_refuse_a_throttle_and_subscribe_without_one() -> None:
    rig = Rig()
    await rig.send(type="subscribe", id=2, channels=["trades:A1", "price:A1"], options={"throttleMs": 500})
    got = await rig.settle()
    assert brief(got) == [
        ("error", "trades:A1", None),
        ("subscribed", "trades:A1", None),
        ("subscribed", "price:A1", None),
    ]
    assert got[0]["code"] == "INVALID_MESSAGE" and "trades:A1" in got[0]["message"] and got[0]["id"] == 2
    assert got[1]["options"] == {"throttleMs": 0} and got[2]["options"] == {"throttleMs": 500}
    assert rig.subscribers("trades:A1") == [rig.session]  # the session itself: no throttle
    assert rig.stats.errors["INVALID_MESSAGE"] == 1
    rig.publish("trades:A1", final=True)
    assert brief(await rig.settle()) == [("trade", "trades:A1", 1)]
    await rig.session.cleanup()


async def test_latest_values_are_held_until_the_due_time_and_the_newest_goes() -> None:
    rig = Rig()
    rig.publish("price:A1")
    await rig.send(type="subscribe", channels=["price:A1"], options={"throttleMs": 250})
    assert brief(await rig.settle()) == [("subscribed", "price:A1", None), ("price", "price:A1", 1)]
    for _ in range(3):
        rig.publish("price:A1")
        await rig.settle()
    assert await rig.settle() == []  # held
    rig.ticker.tick(200)
    assert await rig.settle() == []  # not due yet: 250 ms after the subscribe's snapshot
    rig.ticker.tick(50)
    assert brief(await rig.settle()) == [("price", "price:A1", 4)]
    assert rig.stats.throttled["price"] == 2  # seq 2 and 3 were superseded while held
    rig.publish("price:A1")
    await rig.settle()
    rig.ticker.tick(200)
    assert await rig.settle() == []  # the next one waits a whole window after the last
    rig.ticker.tick(50)
    assert brief(await rig.settle()) == [("price", "price:A1", 5)]
    await rig.session.cleanup()


async def test_without_a_snapshot_the_first_value_goes_out_at_the_next_tick() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["price:A1"], options={"throttleMs": 1000})
    await rig.settle()
    rig.publish("price:A1")
    assert await rig.settle() == []
    rig.ticker.tick(50)
    assert brief(await rig.settle()) == [("price", "price:A1", 1)]
    rig.publish("price:A1")
    rig.ticker.tick(950)
    assert await rig.settle() == []  # then one per window
    rig.ticker.tick(50)
    assert brief(await rig.settle()) == [("price", "price:A1", 2)]
    await rig.session.cleanup()


async def test_unthrottled_channels_of_a_throttled_client_go_straight_through() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["price:A1"], options={"throttleMs": 1000})
    await rig.send(type="subscribe", channels=["ticker:A1", "trades:A1"])
    await rig.settle()
    assert rig.subscribers("ticker:A1") == [rig.session] and rig.subscribers("trades:A1") == [rig.session]
    (view,) = rig.subscribers("price:A1")
    assert isinstance(view, Held)
    rig.publish("ticker:A1")
    rig.publish("price:A1")
    assert brief(await rig.settle()) == [("ticker", "ticker:A1", 1)]
    await rig.session.cleanup()


async def test_a_later_subscribe_replaces_the_options_and_zero_removes_the_throttle() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["price:A1"])
    rig.publish("price:A1")
    await rig.settle()
    await rig.send(type="subscribe", channels=["price:A1"], options={"throttleMs": 500})
    got = await rig.settle()
    assert brief(got) == [("subscribed", "price:A1", None), ("price", "price:A1", 1)]
    assert got[1]["snapshot"] is True
    assert len(rig.subscribers("price:A1")) == 1 and isinstance(rig.subscribers("price:A1")[0], Held)
    rig.publish("price:A1")
    assert await rig.settle() == []  # held now

    # without options: the throttle in force stays, and the ack says so
    await rig.send(type="subscribe", channels=["price:A1"])
    got = await rig.settle()
    assert got[0]["options"] == {"throttleMs": 500} and got[1]["seq"] == 2 and got[1]["snapshot"]
    rig.ticker.tick(500)
    assert await rig.settle() == []  # the snapshot carried seq 2: nothing older is released after it

    # throttleMs 0: the session stands in the hub again, values flow at once
    await rig.send(type="subscribe", channels=["price:A1"], options={"throttleMs": 0})
    got = await rig.settle()
    assert got[0]["options"] == {"throttleMs": 0}
    assert rig.subscribers("price:A1") == [rig.session]
    rig.publish("price:A1")
    assert brief(await rig.settle()) == [("price", "price:A1", 3)]
    assert rig.hub.channel_count == 1
    await rig.session.cleanup()


async def test_a_final_candle_is_never_held_and_the_held_candle_goes_before_it() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["klines:A1:1m"], options={"throttleMs": 60_000})
    await rig.settle()
    rig.publish("klines:A1:1m")
    rig.publish("klines:A1:1m")
    await rig.settle()
    rig.publish("klines:A1:1m", final=True)
    got = await rig.settle()
    assert brief(got) == [("kline", "klines:A1:1m", 2), ("kline", "klines:A1:1m", 3)]  # no tick needed
    rig.publish("klines:A1:1m")
    assert await rig.settle() == []  # the next candle is held again
    await rig.session.cleanup()


async def test_status_frames_are_never_held() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["price:A1"], options={"throttleMs": 5_000})
    rig.publish("price:A1")
    await rig.settle()
    rig.bus.publish_status(ChannelStatus("price:A1", False, "upstream disconnected", NOW_MS))
    got = await rig.settle()
    assert brief(got) == [("price", "price:A1", 1), ("status", "price:A1", "stale")]
    await rig.session.cleanup()


async def test_a_throttled_book_gets_snapshots_only_at_most_one_per_window() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["book:A1:20"], options={"throttleMs": 200})
    assert brief(await rig.settle()) == [("subscribed", "book:A1:20", None)]
    (view,) = rig.subscribers("book:A1:20")
    for n in range(3):  # what the book's fan-out does with a diff
        view.push_state("book:A1:20", text_frame(b'{"type":"book","diff":%d}' % n))
    rig.hub.books["book:A1:20"] = text_frame(as_snapshot(b'{"type":"book","seq":3}'))
    assert await rig.settle() == []
    rig.ticker.tick(50)  # no snapshot went out on subscribe (none yet): the first tick sends one
    assert await rig.settle() == [{"snapshot": True, "type": "book", "seq": 3}]
    assert rig.stats.throttled["book"] == 2  # three diffs, one snapshot for them
    view.push_state("book:A1:20", text_frame(b'{"type":"book","diff":4}'))
    rig.hub.books["book:A1:20"] = text_frame(as_snapshot(b'{"type":"book","seq":4}'))
    rig.ticker.tick(150)
    assert await rig.settle() == []
    rig.ticker.tick(50)
    assert await rig.settle() == [{"snapshot": True, "type": "book", "seq": 4}]
    rig.ticker.tick(200)
    assert await rig.settle() == []  # no diff since: no snapshot
    await rig.session.cleanup()


async def test_unsubscribe_and_cleanup_take_the_views_out_of_the_hub() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["price:A1", "ticker:A1"], options={"throttleMs": 100})
    await rig.send(type="subscribe", channels=["trades:A1"])
    rig.publish("price:A1")
    await rig.settle()
    await rig.send(type="unsubscribe", channels=["price:A1"])
    assert brief(await rig.settle()) == [("unsubscribed", "price:A1", None)]
    assert rig.hub.channels() == ["ticker:A1", "trades:A1"]
    rig.ticker.tick(1000)
    assert await rig.settle() == []  # the held price left with its subscription
    await rig.session.cleanup()
    assert rig.hub.channel_count == 0


async def test_a_closed_client_leaves_the_tick() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["price:A1"], options={"throttleMs": 100})
    rig.publish("price:A1")
    await rig.settle()
    assert list(rig.ticker.clients) == [rig.session]
    rig.session.close(1001, "bye")
    rig.ticker.tick(100)
    assert rig.ticker.clients == {}
    await rig.session.cleanup()
