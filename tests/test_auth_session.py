"""Session identity at unit level: a re-auth purges the previous user's unwritten frames; expiry.

A stalled fake transport makes the outbox hold frames, so the purge on a
user switch is exercised deterministically (over real sockets the writer is
usually too quick for frames to be waiting).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tickwire.bus.memory import MemoryBus
from tickwire.channels import Channel
from tickwire.errors import ErrorCode, ProtocolError
from tickwire.hub import Hub
from tickwire.protocol import encode_publication
from tickwire.publications import Publication
from tickwire.server.auth import Identity
from tickwire.session import Limits, Session
from tickwire.stats import Stats

from .helpers import FakeTransport, eventually


async def _no_check(channel: Channel) -> None:
    return None


async def _auth(token: str) -> Identity:
    if token.startswith("bad"):
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "bad token")
    user, _, exp = token.partition("@")
    return Identity(user, int(exp) if exp else None)


def _session(hub: Hub, transport: FakeTransport, clock_ms: Any = None) -> Session:
    return Session(
        "c1",
        transport,
        hub,
        limits=Limits(max_queue=10_000),
        stats=Stats(),
        clock=lambda: 0.0,
        clock_ms=clock_ms or (lambda: 1_000),
        validate=_no_check,
        authenticate=_auth,
    )


def _order(bus: MemoryBus, user: str, seq: int) -> None:
    import msgspec

    channel = f"orders:{user}"
    payload = encode_publication("order", channel, seq, msgspec.Raw(b'{"n":%d}' % seq))
    bus.publish(Publication(channel, seq, payload, True, 1_000))


async def test_switch_user_purges_unwritten_private_frames() -> None:
    bus = MemoryBus()
    hub = Hub(bus, clock_ms=lambda: 1_000)
    transport = FakeTransport(stalled=True)
    session = _session(hub, transport)
    session.start()
    await session.receive(json.dumps({"type": "auth", "token": "alice"}))
    await session.receive(json.dumps({"type": "subscribe", "channels": ["orders:alice", "signals:X1"]}))
    # the writer writes once, then waits on the "full" buffer
    await eventually(lambda: transport.written, what="the writer's first write")
    for seq in range(1, 51):
        _order(bus, "alice", seq)
    assert session.queued >= 50  # alice's orders wait in the outbox
    await session.receive(json.dumps({"type": "auth", "token": "bob", "id": 9}))
    _order(bus, "alice", 51)  # after the switch: must not be queued at all
    transport.release()
    session.flush_now()
    bob = {"type": "authenticated", "userId": "bob", "id": 9}
    await eventually(lambda: bob in transport.messages(), what="bob's authenticated")
    messages = transport.messages()
    assert [m["type"] for m in messages[:3]] == ["authenticated", "subscribed", "subscribed"]
    assert not [m for m in messages[3:] if m["type"] == "order"]  # every queued alice frame was purged
    assert messages[3:] == [
        {
            "type": "unsubscribed",
            "channel": "orders:alice",
            "timestamp": messages[3]["timestamp"],
            "reason": "re-authenticated",
        },
        {"type": "authenticated", "userId": "bob", "id": 9},
    ]
    assert list(session.subscriptions) == ["signals:X1"]
    assert hub.subscriber_count("orders:alice") == 0
    await session.cleanup()


async def test_expiry_timer_closes_and_renewal_moves_it() -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock_ms() -> int:
        return 10_000 + int((loop.time() - t0) * 1000)

    transport = FakeTransport(stalled=True)
    transport.release()
    session = _session(Hub(MemoryBus(), clock_ms=clock_ms), transport, clock_ms=clock_ms)
    session.start()
    await session.receive(json.dumps({"type": "auth", "token": "alice@10050"}))  # expires in 50 ms
    await session.receive(json.dumps({"type": "auth", "token": "alice@10200"}))  # renewed: 200 ms
    await asyncio.sleep(0.1)  # under test: past the first expiry, nothing closes
    assert transport.closed is None
    await session.receive(json.dumps({"type": "auth", "token": "bad"}))  # a failed renewal changes nothing
    await asyncio.sleep(0.05)  # under test: still open
    assert transport.closed is None
    await eventually(lambda: transport.closed is not None, what="the expiry")
    assert transport.closed == (4001, "token expired")
    assert loop.time() - t0 >= 0.195  # not before the renewed expiry
    await session.cleanup()


async def test_far_expiry_is_rechecked_not_fired_early(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0]
    transport = FakeTransport(stalled=True)
    session = _session(Hub(MemoryBus(), clock_ms=lambda: now[0]), transport, clock_ms=lambda: now[0])
    monkeypatch.setattr(Session, "_MAX_TIMER", 0.01)
    session.set_identity(Identity("alice", 10**15))
    await asyncio.sleep(0.05)  # under test: several timer periods pass, none closes
    assert transport.closed is None and session._expiry is not None
    session.set_identity(None)
    assert session._expiry is None
    await session.cleanup()
