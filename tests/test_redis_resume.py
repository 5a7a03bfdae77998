"""Resume across a cluster, over real sockets and a real redis-server: a client cut off
resumes on any gateway, after a gateway restart or an ingest leader failover, from the
gateway's ring or from the Redis stream; a Redis that lost the channel's keys changes the
epoch (docs/resume.md, "In a cluster").

The ingest and the gateways run in this process, each with its own Redis bus (short
leases and lock, so a failover takes about two seconds); trades come from a FakeSource.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tickwire.bus.redis import RedisBus

from .helpers import Client, FakeSource, Running, eventually, running_gateway
from .redis_server import RedisServer
from .test_resume_gateway import TRADES, Tape, flowing, kill, trades_until


pytestmark = pytest.mark.redis


def fast_bus(url: str, **kwargs: Any) -> RedisBus:
    return RedisBus(url, lease_ttl=1.5, lock_ttl=1.5, reconcile_interval=0.2, **kwargs)


@contextlib.asynccontextmanager
async def ingest(url: str, source: FakeSource) -> AsyncIterator[Running]:
    """A node that may lead the upstream (``--role all``), fed by ``source``."""
    bus = fast_bus(url)
    async with running_gateway(source=source, bus=bus, redis_url=url, linger=5.0) as node:
        yield node


@contextlib.asynccontextmanager
async def gateway(url: str) -> AsyncIterator[Running]:
    """A ``--role gateway`` node: clients only, following the leading ingest."""
    bus = fast_bus(url, can_lead=False)
    async with running_gateway(bus=bus, redis_url=url, role="gateway", max_queue=2000) as node:
        yield node


async def opened(node: Running) -> None:
    """Wait until ``node``'s ingest opened TRADES upstream (so trade ids and seqs start together)."""
    await eventually(lambda: TRADES in node.gateway.ingest.open_channels, what="the channel open upstream")


def top(node: Running) -> int:
    """The newest seq of TRADES ``node``'s hub holds."""
    last = node.gateway.hub._channels[TRADES].last
    return last.seq if last is not None else 0


def contiguous(frames: list[dict[str, Any]], first: int, last: int) -> None:
    trades = [m for m in frames if m["type"] == "trade"]
    assert [m["seq"] for m in trades] == list(range(first, last + 1))  # none lost, none twice
    assert [m["data"]["id"] for m in trades] == [m["seq"] for m in trades]


async def test_a_client_cut_off_resumes_on_the_other_gateway_with_every_missed_trade(
    redis_server: RedisServer,
) -> None:
    url, tape = redis_server.url, Tape(FakeSource())
    async with ingest(url, tape.source) as leader, gateway(url) as a, gateway(url) as b:
        await eventually(lambda: leader.gateway.bus.leading, what="the ingest to lead")  # type: ignore[attr-defined]
        async with Client.connect(a.ws_url) as first:
            [ack] = await first.subscribe(TRADES)
            epoch = ack["epoch"]
            await opened(leader)
            async with flowing(tape):
                seen = await trades_until(first, 30)
                kill(first)
                await eventually(lambda: tape.next_id > 130, what="trades while the client is away")
                # b never had the channel: its ring starts now, so the stream serves the resume
                async with Client.connect(b.ws_url) as again:
                    [back] = await again.subscribe(TRADES, since={TRADES: {"epoch": epoch, "seq": 30}})
                    assert (back["recovered"], back["epoch"]) == (True, epoch)
                    after = await trades_until(again, back["seq"] + 50)
                    assert back["replayed"] == back["seq"] - 30 >= 100, [
                        m for m in after if m["type"] != "trade"
                    ]
                    ring = b.gateway.hub._channels[TRADES].ring
                    assert ring is not None and ring.floor > 30  # the ring alone could not have
                    kill(again)
                # and back on a, which kept the channel for resumes: its ring serves it
                position = after[-1]["seq"]
                await eventually(lambda: tape.next_id > position + 20, what="more trades")
                async with Client.connect(a.ws_url) as third:
                    since = {TRADES: {"epoch": epoch, "seq": position}}
                    [home] = await third.subscribe(TRADES, since=since)
                    assert (home["recovered"], home["epoch"]) == (True, epoch)
                    later = await trades_until(third, home["seq"] + 10)
    contiguous(seen + after + later, 1, home["seq"] + 10)


async def test_the_epoch_survives_a_leader_failover_and_a_gateway_restart(redis_server: RedisServer) -> None:
    url = redis_server.url
    tape = Tape(FakeSource())
    standby_tape = Tape(FakeSource())
    async with ingest(url, tape.source) as first_leader:
        first_bus = first_leader.gateway.bus
        assert isinstance(first_bus, RedisBus)
        await eventually(lambda: first_bus.leading, what="the first ingest to lead")
        async with ingest(url, standby_tape.source) as standby, gateway(url) as gw:
            standby_bus = standby.gateway.bus
            assert isinstance(standby_bus, RedisBus) and not standby_bus.leading
            async with Client.connect(gw.ws_url) as client:
                [ack] = await client.subscribe(TRADES)
                await opened(first_leader)
                tape.trade(20)
                seen = await trades_until(client, 20)
                kill(client)
            tape.trade(10)  # 21-30 while the client is away
            await eventually(lambda: first_bus.health().pending_publications == 0, what="all in Redis")
            for task in first_bus._tasks:  # the leader dies: no goodbye, its lock lapses
                task.cancel()
            await eventually(lambda: standby_bus.leading, what="the standby to lead")
            await opened(standby)
            standby_tape.next_id = tape.next_id  # the same upstream, later
            standby_tape.trade(10)  # 31-40, numbered on from the seq in Redis
            await eventually(lambda: top(gw) == 40, what="trade 40 at the gateway")
        async with gateway(url) as restarted, Client.connect(restarted.ws_url) as again:
            [back] = await again.subscribe(TRADES, since={TRADES: {"epoch": ack["epoch"], "seq": 20}})
            assert (back["recovered"], back["epoch"], back["replayed"], back["seq"]) == (
                True,
                ack["epoch"],
                20,
                40,
            )
            after = [await again.recv() for _ in range(20)]
    contiguous(seen + after, 1, 40)


async def test_redis_losing_the_keys_changes_the_epoch(redis_server: RedisServer) -> None:
    url, tape = redis_server.url, Tape(FakeSource())
    async with ingest(url, tape.source) as leader, gateway(url) as a, gateway(url) as b:
        await eventually(lambda: leader.gateway.bus.leading, what="the ingest to lead")  # type: ignore[attr-defined]
        async with Client.connect(a.ws_url) as holder, Client.connect(a.ws_url) as client:
            [held] = await holder.subscribe(TRADES)
            [ack] = await client.subscribe(TRADES)
            await opened(leader)
            tape.trade(5)
            await trades_until(client, 5)
            redis = Redis.from_url(url)
            try:
                await redis.flushall()  # no persistence, a failover to an empty replica...
            finally:
                await redis.aclose()
            tape.trade(3)
            await trades_until(holder, 8)  # the new epoch was announced before trade 6
        for node in (a, b):  # a held the channel all along; b opens it now
            async with Client.connect(node.ws_url) as again:
                [back] = await again.subscribe(TRADES, since={TRADES: {"epoch": ack["epoch"], "seq": 5}})
                assert (back["recovered"], back["reason"]) == (False, "epoch_changed")
                assert back["epoch"] != held["epoch"] and back["seq"] == 8
                snapshot = await again.recv()
                assert (snapshot["seq"], snapshot["snapshot"]) == (8, True)
        # the new epoch is the cluster's: a resume in it works on either gateway
        async with Client.connect(b.ws_url) as c:
            [back] = await c.subscribe(TRADES, since={TRADES: {"epoch": back["epoch"], "seq": 6}})
            assert (back["recovered"], back["replayed"]) == (True, 2)
