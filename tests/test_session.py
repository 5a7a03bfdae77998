"""Session over an in-memory transport: acks in order, unsubscribe, 4008, rate limit, re-auth.

A real :class:`Hub` over a :class:`MemoryBus` feeds the session; the
transport is :class:`tests.helpers.FakeTransport`, which a test can stall
(a client that stopped reading) so frames wait in the outbox.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec

from tickwire.bus.memory import MemoryBus
from tickwire.channels import Channel
from tickwire.errors import ErrorCode, ProtocolError
from tickwire.hub import Hub
from tickwire.protocol import encode_publication
from tickwire.publications import Publication
from tickwire.server.auth import Identity
from tickwire.session import Limits, Session
from tickwire.stats import Stats

from .helpers import FakeTransport


NOW_MS = 1_700_000_000_000


async def _any_channel(channel: Channel) -> None:
    return None


async def _auth(token: str) -> Identity:
    if token.startswith("bad"):
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "bad token")
    return Identity(token, None)


class Rig:
    """A session, its hub, bus, stats and transport; ``now`` drives the session's clock."""

    def __init__(self, **limits: Any) -> None:
        self.bus = MemoryBus()
        self.hub = Hub(self.bus, clock_ms=lambda: NOW_MS)
        self.stats = Stats(clock_ms=lambda: NOW_MS)
        self.transport = FakeTransport()
        self.now = 0.0
        self.session = Session(
            "c1",
            self.transport,
            self.hub,
            limits=Limits(**limits),
            stats=self.stats,
            clock=lambda: self.now,
            clock_ms=lambda: NOW_MS,
            validate=_any_channel,
            authenticate=_auth,
        )
        self.session.start()

    async def send(self, **msg: Any) -> None:
        await self.session.receive(json.dumps(msg))

    def publish(self, channel: str, seq: int, *, final: bool = True) -> None:
        kind = {"orders": "order", "signals": "signal", "trades": "trade", "price": "price"}
        payload = encode_publication(kind[channel.partition(":")[0]], channel, seq, msgspec.Raw(b"{}"))
        self.bus.publish(Publication(channel, seq, payload, final, NOW_MS))

    async def settle(self) -> list[dict[str, Any]]:
        """Let the hub's flush and the writer run, then read what reached the socket."""
        for _ in range(5):
            await asyncio.sleep(0)
        return self.transport.read_all()

    async def stalled(self) -> list[dict[str, Any]]:
        """Make the client stop reading: the writer's next write leaves it waiting in drain.

        Returns what was written before.
        """
        before = await self.settle()
        self.transport.stall()
        await self.send(type="ping")  # one write fills the "buffer"
        assert [m["type"] for m in await self.settle()] == ["pong"]
        return before


def brief(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(type, channel, id or a data frame's seq): an ack's seq is its channel's position."""
    return [(m["type"], m.get("channel"), m.get("id", m["seq"] if "data" in m else None)) for m in messages]


async def test_acks_answer_in_request_order() -> None:
    rig = Rig()
    await rig.send(type="subscribe", id=1, channels=["price:btcusdt", "prices:X", "trades:ETHUSDT"])
    await rig.send(type="unsubscribe", id="u", channels=["trades:ETHUSDT", "price:BTCUSDT"])
    await rig.send(type="ping", id=3)
    await rig.send(type="list", id=4)
    got = await rig.settle()
    assert brief(got) == [
        ("subscribed", "price:BTCUSDT", 1),
        ("error", "prices:X", 1),
        ("subscribed", "trades:ETHUSDT", 1),
        ("unsubscribed", "trades:ETHUSDT", "u"),
        ("unsubscribed", "price:BTCUSDT", "u"),
        ("pong", None, 3),
        ("subscriptions", None, 4),
    ]
    assert got[1]["code"] == "INVALID_CHANNEL" and got[6]["channels"] == []
    assert rig.hub.channel_count == 0
    await rig.session.cleanup()


async def test_no_frame_of_a_channel_after_its_unsubscribed_ack() -> None:
    rig = Rig()
    await rig.send(type="subscribe", channels=["price:BTCUSDT", "trades:BTCUSDT"])
    await rig.stalled()
    rig.publish("trades:BTCUSDT", 1)  # queued in the outbox: it goes before the ack
    rig.publish("price:BTCUSDT", 1, final=False)  # pending in the hub until the end of the iteration
    await rig.send(type="unsubscribe", channels=["price:BTCUSDT", "trades:BTCUSDT"])
    rig.publish("trades:BTCUSDT", 2)
    rig.publish("price:BTCUSDT", 2, final=False)
    rig.transport.release()
    got = brief(await rig.settle())
    assert got == [
        ("trade", "trades:BTCUSDT", 1),
        ("unsubscribed", "price:BTCUSDT", None),
        ("unsubscribed", "trades:BTCUSDT", None),
    ]
    await rig.session.cleanup()


async def test_final_frames_over_max_queue_close_with_4008() -> None:
    rig = Rig(max_queue=4)
    await rig.send(type="subscribe", channels=["trades:BTCUSDT", "price:BTCUSDT"])
    await rig.stalled()
    rig.publish("price:BTCUSDT", 1, final=False)
    await rig.settle()
    for seq in range(1, 5):
        rig.publish("trades:BTCUSDT", seq)
    assert rig.transport.closed is None and rig.session.queued == 5  # 4 finals and one price
    rig.publish("trades:BTCUSDT", 5)
    assert rig.transport.closed == (4008, "slow consumer: outbox limit reached")
    assert rig.session.closed and rig.session.close_code == 4008
    assert rig.stats.slow_disconnects == 1 and rig.stats.dropped == 6  # 5 queued, 1 refused
    assert rig.session.queued == 0
    rig.publish("trades:BTCUSDT", 6)
    rig.session.send(b"{}")
    assert rig.session.queued == 0 and rig.stats.slow_disconnects == 1
    await rig.session.cleanup()
    assert rig.hub.channel_count == 0


async def test_replies_share_the_bound_with_final_frames() -> None:
    rig = Rig(max_queue=3)
    await rig.stalled()
    for _ in range(3):
        await rig.send(type="ping")
    assert rig.transport.closed is None and rig.session.queued == 3
    await rig.send(type="ping")
    assert rig.transport.closed is not None and rig.transport.closed[0] == 4008
    await rig.session.cleanup()


async def test_rate_limit_answers_errors_then_closes_an_abuser() -> None:
    rig = Rig(rate=1.0, burst=2.0, abuse_limit=2)
    await rig.send(type="ping", id=1)
    await rig.send(type="ping", id=2)
    await rig.send(type="ping", id=3)  # over the burst: dropped, answered with an error
    got = await rig.settle()
    assert brief(got) == [("pong", None, 1), ("pong", None, 2), ("error", None, None)]
    assert got[2]["code"] == "RATE_LIMITED" and "1 messages/s" in got[2]["message"]
    rig.now += 1.0  # one token back
    await rig.send(type="ping", id=4)
    await rig.send(type="ping", id=5)
    await rig.send(type="ping", id=6)
    assert brief(await rig.settle()) == [("pong", None, 4), ("error", None, None), ("error", None, None)]
    assert rig.stats.errors["RATE_LIMITED"] == 3 and rig.transport.closed is None
    await rig.send(type="ping", id=7)  # a third violation in a row is over abuse_limit
    assert rig.transport.closed is not None and rig.transport.closed[0] == 1008
    await rig.session.cleanup()


async def test_reauth_purges_only_the_previous_users_private_frames() -> None:
    rig = Rig()
    await rig.send(type="auth", token="alice")
    await rig.send(type="subscribe", channels=["orders:alice", "signals:X1"])
    assert brief(await rig.stalled()) == [
        ("authenticated", None, None),
        ("subscribed", "orders:alice", None),
        ("subscribed", "signals:X1", None),
    ]
    for seq in range(1, 6):
        rig.publish("orders:alice", seq)
        rig.publish("signals:X1", seq)
    assert rig.session.queued == 10
    await rig.send(type="auth", token="alice", id="same")  # the same user: nothing ends
    assert rig.session.queued == 11 and list(rig.session.subscriptions) == ["orders:alice", "signals:X1"]
    await rig.send(type="auth", token="bob", id="b")
    rig.publish("orders:alice", 6)  # after the switch: never queued
    rig.publish("signals:X1", 6)
    rig.transport.release()
    got = await rig.settle()
    rest = brief(got)
    assert rest == [
        *[("signal", "signals:X1", seq) for seq in range(1, 6)],
        ("authenticated", None, "same"),
        ("unsubscribed", "orders:alice", None),
        ("authenticated", None, "b"),
        ("signal", "signals:X1", 6),
    ]
    assert got[-3]["reason"] == "re-authenticated"
    assert list(rig.session.subscriptions) == ["signals:X1"]
    assert rig.hub.subscriber_count("orders:alice") == 0
    await rig.session.cleanup()
