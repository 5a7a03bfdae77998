"""The node's one throttle tick (src/tickwire/ticker.py) on a real event loop."""

from __future__ import annotations

import asyncio
import itertools
import time

from tickwire.ticker import TICK_MS, Ticker

from .helpers import eventually


class Client:
    """Holds something for ``ticks`` ticks, recording the tick times it was given."""

    def __init__(self, ticks: int) -> None:
        self.left = ticks
        self.times: list[int] = []

    def tick(self, now_ms: int) -> bool:
        self.times.append(now_ms)
        self.left -= 1
        return self.left > 0


async def test_ticks_fall_on_the_grid_and_stop_when_nobody_holds_anything() -> None:
    ticker = Ticker(period_ms=20)
    a, b = Client(3), Client(1)
    ticker.add(a)
    ticker.add(b)
    ticker.add(a)  # once per client, however often it asks
    assert ticker.clients == 2
    await eventually(lambda: a.left == 0, what="three ticks")
    assert len(b.times) == 1 and b.times[0] == a.times[0]  # one tick serves every client
    assert all(t % 20 == 0 for t in a.times)
    assert all(later - earlier >= 20 for earlier, later in itertools.pairwise(a.times))
    assert ticker.clients == 0 and ticker._handle is None  # no timer while nothing is held
    assert a.times[0] <= ticker.now_ms()


async def test_a_late_tick_skips_the_grid_points_it_missed() -> None:
    ticker = Ticker(period_ms=10)

    class Busy(Client):
        def tick(self, now_ms: int) -> bool:
            if not self.times:
                time.sleep(0.05)  # a busy loop: the next tick runs about five grid points late
            return super().tick(now_ms)

    client = Busy(2)
    ticker.add(client)
    await eventually(lambda: client.left == 0, what="the second tick")
    first, second = client.times
    assert second >= first + 40  # the grid point it ran at, not the one it missed


async def test_cancel_stops_the_timer() -> None:
    ticker = Ticker()
    client = Client(100)
    ticker.add(client)
    ticker.cancel()
    assert ticker.clients == 0 and ticker._handle is None
    await asyncio.sleep(TICK_MS / 1000 * 2)
    assert client.times == []
