"""The gateway's one ping sweep (server/heartbeat.py) and the WebSocket heartbeat it keeps.

docs/protocol.md "Heartbeat": a connection the server has heard nothing
from for ``ping_interval`` seconds gets a ping; one that does not answer
within half of it is dropped. One timer walks the connections instead of
one per connection.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tickwire.server.heartbeat import Heartbeat
from tickwire.server.ws import SWEEP, WsTransport

from .helpers import eventually, running_gateway


class Conn:
    """A connection the test plays: it answers each ping after ``answer`` seconds, or never."""

    def __init__(self, answer: float | None = 0.0) -> None:
        self.heard = False
        self.awaiting = False
        self.slot = -1
        self.answer = answer
        self.pings: list[float] = []
        self.lost_at: float | None = None

    def ping(self) -> bool:
        loop = asyncio.get_running_loop()
        self.pings.append(loop.time())
        if self.answer is not None:
            loop.call_later(self.answer, self.hear)
        return True

    def hear(self) -> None:
        self.heard = True

    def lost(self) -> None:
        self.lost_at = asyncio.get_running_loop().time()


INTERVAL = 0.2


async def test_a_silent_client_that_answers_is_pinged_every_interval_and_kept() -> None:
    sweep = Heartbeat(INTERVAL, slots=8)
    conn = Conn(answer=0.01)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sweep.add(conn)
    await asyncio.sleep(6 * INTERVAL)
    assert conn.lost_at is None
    assert conn.pings, "pinged"
    first = conn.pings[0] - start
    assert INTERVAL * 0.9 <= first <= 2 * INTERVAL + 0.1  # one to two intervals after its handshake
    gaps = [b - a for a, b in zip(conn.pings, conn.pings[1:], strict=False)]
    assert gaps and all(INTERVAL * 0.9 <= g <= INTERVAL * 1.5 for g in gaps)  # then one per interval
    sweep.discard(conn)
    assert sweep.count == 0 and sweep._handle is None  # no timer without connections


async def test_a_client_that_never_answers_is_dropped_half_an_interval_after_its_ping() -> None:
    sweep = Heartbeat(INTERVAL, slots=8)
    conn = Conn(answer=None)
    sweep.add(conn)
    await eventually(lambda: conn.lost_at is not None, timeout=5 * INTERVAL, what="the drop")
    assert conn.lost_at is not None and len(conn.pings) == 1
    waited = conn.lost_at - conn.pings[0]
    assert INTERVAL / 2 * 0.9 <= waited <= INTERVAL / 2 + 0.1
    assert sweep.count == 0  # no longer watched


async def test_a_client_that_talks_is_never_pinged() -> None:
    sweep = Heartbeat(INTERVAL, slots=8)
    conn = Conn(answer=None)
    sweep.add(conn)
    loop = asyncio.get_running_loop()
    until = loop.time() + 5 * INTERVAL
    while loop.time() < until:
        conn.heard = True  # bytes arrive all the time
        await asyncio.sleep(INTERVAL / 10)
    assert conn.pings == [] and conn.lost_at is None
    sweep.close()


async def test_the_pings_of_many_clients_are_spread_over_the_interval() -> None:
    sweep = Heartbeat(INTERVAL, slots=8)
    conns = [Conn() for _ in range(64)]
    for conn in conns:
        sweep.add(conn)
    await eventually(lambda: all(c.pings for c in conns), timeout=5 * INTERVAL, what="every first ping")
    firsts = sorted(round(c.pings[0], 3) for c in conns)
    ticks = sorted(set(firsts))
    assert len(ticks) >= 8  # eight buckets, pinged on eight ticks, not all in one iteration
    assert max(firsts.count(t) for t in ticks) <= 64 // 8
    for conn in conns:
        sweep.discard(conn)
    assert sweep.count == 0


def test_slots_must_be_even() -> None:
    with pytest.raises(ValueError, match="even"):
        Heartbeat(1.0, slots=3)


needs_sweep = pytest.mark.skipif(not SWEEP, reason="this aiohttp keeps its own heartbeat")


@needs_sweep
async def test_the_gateway_has_one_sweep_and_no_heartbeat_timer_per_connection() -> None:
    async with running_gateway(ping_interval=0.4) as gw, aiohttp.ClientSession() as http:
        async with http.ws_connect(gw.ws_url, autoping=False) as ws:
            await eventually(lambda: len(gw.gateway.sessions) == 1, what="the session")
            session = next(iter(gw.gateway.sessions))
            transport = session._transport
            assert isinstance(transport, WsTransport)
            assert transport._ws._heartbeat_cb is None and transport._ws._heartbeat is None
            assert gw.gateway.heartbeat.count == 1
            # a client that answers every ping stays connected over several intervals
            pings = 0
            loop = asyncio.get_running_loop()
            until = loop.time() + 2.0
            while loop.time() < until:
                try:
                    msg = await ws.receive(timeout=until - loop.time())
                except TimeoutError:
                    break
                if msg.type is aiohttp.WSMsgType.PING:
                    pings += 1
                    await ws.pong(msg.data)
                assert msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert pings >= 2
            assert not ws.closed and len(gw.gateway.sessions) == 1
        await eventually(lambda: not gw.gateway.sessions, what="the session gone")
        assert gw.gateway.heartbeat.count == 0


@needs_sweep
async def test_a_peer_that_stops_answering_is_dropped_and_counted_as_1006() -> None:
    async with running_gateway(ping_interval=0.3) as gw, aiohttp.ClientSession() as http:
        async with http.ws_connect(gw.ws_url, autoping=False) as ws:
            await eventually(lambda: len(gw.gateway.sessions) == 1, what="the session")
            msg = await ws.receive(timeout=5)  # connected
            assert msg.type is aiohttp.WSMsgType.TEXT
            while True:
                msg = await ws.receive(timeout=5)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    break
        await eventually(lambda: not gw.gateway.sessions, what="the session gone")
        assert gw.gateway.stats.connections_closed[1006] == 1
        assert gw.gateway.heartbeat.count == 0
