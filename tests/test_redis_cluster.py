"""Real processes through a real Redis: one ingest and two gateways, faults, ``--workers``.

Every process is killed in a ``finally`` (``run_node``); all listen on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from .helpers import FACTOR, Client, eventually, eventually_sync, free_port
from .redis_server import Node, RedisServer


pytestmark = [pytest.mark.redis, pytest.mark.slow]

API_KEY = "test-key-for-the-cluster-tests-0123456789"


@contextlib.contextmanager
def nodes(redis_url: str, *specs: tuple[str, list[str]]) -> Iterator[list[Node]]:
    """Start every node at once (they import in parallel), wait for all; kill all after."""
    started: list[Node] = []
    try:
        for role, extra in specs:
            started.append(Node(role, redis_url, extra=extra))
        for node in started:
            eventually_sync(node.answers, 20, f"tickwire {node.role} to answer /health")
        yield started
    finally:
        for node in started:
            node.kill()


async def collect(client: Client, seconds: float) -> list[dict[str, Any]]:
    """Every message for ``seconds``."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    with contextlib.suppress(TimeoutError):
        while (left := deadline - time.monotonic()) > 0:
            got.append(await client.recv(timeout=left))
    return got


def data(messages: list[dict[str, Any]], channel: str) -> list[tuple[int, str]]:
    return [
        (m["seq"], json.dumps(m["data"], sort_keys=True))
        for m in messages
        if m.get("channel") == channel and "seq" in m and not m.get("snapshot")
    ]


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/api/v1/ws/stats", timeout=2) as response:
        result: dict[str, Any] = json.loads(response.read())["data"]
        return result


def demand_counted(url: str) -> dict[str, Any] | None:
    """The stats of a gateway once they count at least three channels cluster-wide (the leader
    scans the leases every second, a gateway reads that count every 2 s)."""
    body = stats(url)
    return body if body["bus"]["clusterDemand"] >= 3 else None


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url + "/api/v1/publish",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


async def test_two_gateways_see_identical_sequences_and_one_publish_seq(redis_server: RedisServer) -> None:
    gw_args = ["--api-key", API_KEY]
    with nodes(redis_server.url, ("ingest", []), ("gateway", gw_args), ("gateway", gw_args)) as (
        ingest,
        a,
        b,
    ):
        async with Client.connect(a.ws_url) as ca, Client.connect(b.ws_url) as cb:
            channels = ("trades:BTCUSDT", "price:BTCUSDT", "signals:BTCUSDT")
            assert [m["type"] for m in await ca.subscribe(*channels)] == ["subscribed"] * 3
            assert [m["type"] for m in await cb.subscribe(*channels)] == ["subscribed"] * 3
            [bad] = await cb.subscribe("price:NOPEUSDT")  # validated against the ingest's symbol list
            assert bad["type"] == "error" and bad["code"] == "UNKNOWN_SYMBOL"
            # the publish API on either gateway: one seq counter, every node
            seqs = []
            for i in range(4):
                body = {"channel": "signals:BTCUSDT", "data": {"i": i}}
                seqs.append((await asyncio.to_thread(post, (a if i % 2 else b).url, body))["seq"])
            assert seqs == [1, 2, 3, 4]
            got_a, got_b = await asyncio.gather(collect(ca, 2.5), collect(cb, 2.5))
            stats_a = await asyncio.to_thread(
                eventually_sync, lambda: demand_counted(a.url), 10, "the cluster demand counted"
            )
        ingest_status, ingest_health = ingest.health()
    for channel in ("trades:BTCUSDT", "price:BTCUSDT"):
        seq_a, seq_b = data(got_a, channel), data(got_b, channel)
        assert len(seq_a) >= 3 and len(seq_b) >= 3, (channel, len(seq_a), len(seq_b))
        lo = max(seq_a[0][0], seq_b[0][0])
        hi = min(seq_a[-1][0], seq_b[-1][0])
        assert [x for x in seq_a if lo <= x[0] <= hi] == [x for x in seq_b if lo <= x[0] <= hi]
        assert hi - lo >= 2
    trades = [s for s, _ in data(got_a, "trades:BTCUSDT")]
    assert trades == list(range(trades[0], trades[0] + len(trades)))  # every message, no gap, no repeat
    signals = [(s, d) for s, d in data(got_a, "signals:BTCUSDT")]
    assert signals == data(got_b, "signals:BTCUSDT") == [(i + 1, json.dumps({"i": i})) for i in range(4)]
    assert stats_a["bus"]["nodeDemand"] == 3
    assert stats_a["bus"]["clusterDemand"] >= 3
    assert ingest_status == 200 and ingest_health["bus"]["leader"] is True


async def test_a_killed_gateway_its_clients_reconnect_to_the_other(redis_server: RedisServer) -> None:
    with nodes(redis_server.url, ("ingest", []), ("gateway", []), ("gateway", [])) as (_, a, b):
        async with Client.connect(a.ws_url) as client:
            await client.subscribe("trades:ETHUSDT")
            first = await client.recv_until(lambda m: m.get("type") == "trade")
            a.kill()
            code, _ = await client.closed(timeout=5)
            assert code is not None
        async with Client.connect(b.ws_url) as client:  # what a reconnecting client does
            await client.subscribe("trades:ETHUSDT")
            later = await client.recv_until(lambda m: m.get("type") == "trade" and m["seq"] > first["seq"])
            assert later["channel"] == "trades:ETHUSDT"


async def test_killed_ingest_leader_standby_leads_and_seq_continues(redis_server: RedisServer) -> None:
    specs: list[tuple[str, list[str]]] = [("ingest", []), ("ingest", []), ("gateway", [])]
    with nodes(redis_server.url, *specs) as (i1, i2, gw):
        eventually_sync(
            lambda: i1.health()[1]["bus"]["leader"] or i2.health()[1]["bus"]["leader"], 10, "a leader"
        )
        leader, standby = (i1, i2) if i1.health()[1]["bus"]["leader"] else (i2, i1)
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe("trades:BTCUSDT", "price:BTCUSDT")
            before = await collect(client, 1.0)
            leader.kill()
            killed = time.monotonic()
            # frames the old leader had in flight may still arrive: wait for the new leader
            # itself, then for data it published
            await asyncio.to_thread(
                eventually_sync, lambda: standby.health()[1]["bus"]["leader"], 12, "the standby to lead"
            )
            took = time.monotonic() - killed
            after = await collect(client, 2.0)
        assert standby.health()[1]["bus"]["leader"] is True
    assert took < 10 * FACTOR, took
    assert data(after, "trades:BTCUSDT"), "no trade after the standby took the lead"
    for channel in ("trades:BTCUSDT", "price:BTCUSDT"):
        seqs = [s for s, _ in data(before + after, channel)]
        assert seqs == sorted(set(seqs)), f"{channel}: repeated or out-of-order seq {seqs}"
    assert data(after, "trades:BTCUSDT")[0][0] > data(before, "trades:BTCUSDT")[-1][0]


async def test_redis_restart_clients_see_stale_then_live_and_health_degrades(
    redis_server: RedisServer,
) -> None:
    with nodes(redis_server.url, ("ingest", []), ("gateway", [])) as (ingest, gw):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe("price:BTCUSDT")
            await client.recv_until(lambda m: m.get("type") == "price")
            redis_server.stop()
            stale = await client.recv_until(lambda m: m.get("type") == "status")
            assert stale["status"] == "stale" and stale["channel"] == "price:BTCUSDT"
            status, body = gw.health()
            assert status == 503 and body["status"] == "degraded" and body["bus"]["connected"] is False
            redis_server.start()
            live = await client.recv_until(lambda m: m.get("type") == "status", timeout=15)
            assert live["status"] == "live"
            again = await client.recv_until(
                lambda m: m.get("type") == "price" and not m.get("snapshot"), timeout=10
            )
            assert again["channel"] == "price:BTCUSDT"
        eventually_sync(lambda: gw.health()[0] == 200, 10, "gateway healthy again")
        assert ingest.process.poll() is None and gw.process.poll() is None  # nothing crashed


async def test_workers_share_one_port_and_stop_on_sigterm(redis_server: RedisServer) -> None:
    port = free_port()
    args = [sys.executable, "-m", "tickwire", "serve", "--workers", "2", "--host", "127.0.0.1"]
    args += [
        "--port",
        str(port),
        "--redis-url",
        redis_server.url,
        "--log-level",
        "warning",
        "--shutdown-timeout",
        "1",
    ]
    parent = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as response:
                    status: int = response.status
                    return status == 200
            except OSError:
                return False

        eventually_sync(healthy, 20, "the workers")
        nodes_seen: set[str] = set()

        async def both_workers_answered() -> bool:
            async with aiohttp.ClientSession() as session:  # a new connection each time
                async with session.get(url + "/health") as response:
                    nodes_seen.add((await response.json())["bus"]["node"])
            return len(nodes_seen) >= 2

        what = "both workers to answer (SO_REUSEPORT should spread connections over them)"
        await eventually(both_workers_answered, timeout=10, what=what)
        assert len(nodes_seen) == 2
        async with Client.connect(f"ws://127.0.0.1:{port}/ws") as client:
            await client.subscribe("price:BTCUSDT")
            assert (await client.recv_until(lambda m: m.get("type") == "price"))["channel"] == "price:BTCUSDT"
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=15) == 0
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
