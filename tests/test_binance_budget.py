"""The REST weight budget (sources/binance/budget.py): pure accounting, then the asyncio slots."""

from __future__ import annotations

import asyncio
import time

import pytest

from tickwire.sources.binance.budget import BudgetExhausted, Priority, RestBudget, WeightAccount

from .helpers import eventually


def test_the_account_keeps_under_its_share_of_the_limit() -> None:
    account = WeightAccount(per_minute=1000, share=0.8)
    assert account.limit == 800
    assert account.wait(250, now=0.0) <= 0
    for _ in range(3):
        account.spend(250, now=1.0)
    assert account.wait(50, now=2.0) <= 0  # 750 + 50 = 800: allowed
    assert account.wait(51, now=2.0) == pytest.approx(58.0)  # the rest of the window
    account.settle(250, header=None, now=3.0)
    account.settle(250, header=None, now=3.0)
    assert account.wait(51, now=61.0) <= 0  # a new window: only what is still in flight counts
    assert account.used == 250


def test_the_header_replaces_the_estimate_and_in_flight_weight_is_added() -> None:
    account = WeightAccount(per_minute=1000, share=1.0)
    account.spend(50, now=0.0)
    account.spend(250, now=0.0)
    account.settle(50, header=900, now=1.0)  # another process on the IP used a lot
    assert account.header == 900 and account.used == 900 + 250
    assert account.wait(5, now=1.0) == pytest.approx(59.0)
    account.settle(250, header=None, now=2.0)
    assert account.in_flight == 0 and account.used == 1150  # no header: the estimate stays


def test_retry_after_blocks_everything_until_it_passes() -> None:
    account = WeightAccount()
    account.refuse(30.0, now=10.0)
    assert account.wait(1, now=10.0) == pytest.approx(30.0)
    assert account.blocked_for(now=25.0) == pytest.approx(15.0)
    assert account.wait(1, now=40.0) <= 0
    account.refuse(5.0, now=11.0)  # a shorter one does not shorten the block
    assert account.blocked_until == pytest.approx(40.0)


def test_a_request_heavier_than_the_limit_goes_alone() -> None:
    account = WeightAccount(per_minute=100, share=1.0)
    assert account.wait(250, now=0.0) <= 0  # never waits forever
    account.spend(250, now=0.0)
    assert account.wait(1, now=1.0) > 0


async def test_slots_are_granted_by_priority() -> None:
    budget = RestBudget(max_in_flight=1)
    order: list[Priority] = []
    hold = asyncio.Event()

    async def take(priority: Priority) -> None:
        async with budget.slot(1, priority):
            order.append(priority)
            if priority is Priority.OTHER and not hold.is_set():
                await hold.wait()

    first = asyncio.create_task(take(Priority.OTHER))
    await eventually(lambda: order == [Priority.OTHER], what="the first slot")
    late = [Priority.OTHER, Priority.REFRESH, Priority.FIRST_SYNC, Priority.BACKFILL, Priority.RESYNC]
    tasks = [asyncio.create_task(take(p)) for p in late]
    await eventually(lambda: budget.waiting == 5, what="five waiters")
    hold.set()
    await asyncio.gather(first, *tasks)
    first_come, *by_priority = order
    assert first_come is Priority.OTHER
    assert by_priority == [
        Priority.RESYNC,
        Priority.BACKFILL,
        Priority.FIRST_SYNC,
        Priority.REFRESH,
        Priority.OTHER,
    ]


async def test_at_most_four_requests_run_at_once() -> None:
    budget = RestBudget()
    running = peak = 0
    gate = asyncio.Event()

    async def request() -> None:
        nonlocal running, peak
        async with budget.slot(5):
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1

    tasks = [asyncio.create_task(request()) for _ in range(10)]
    await eventually(lambda: running == 4 and budget.waiting == 6, what="4 running, 6 waiting")
    gate.set()
    await asyncio.gather(*tasks)
    assert peak == 4 and budget.granted == 10 and budget.in_flight == 0


async def test_a_caller_that_cannot_wait_is_told_how_long() -> None:
    budget = RestBudget(WeightAccount(per_minute=100, share=1.0))
    async with budget.slot(100):
        pass
    with pytest.raises(BudgetExhausted) as info:
        async with budget.slot(2, max_wait=0.0):
            pass
    assert 50 < info.value.retry_after <= 60


async def test_a_refusal_holds_every_later_caller_for_retry_after() -> None:
    budget = RestBudget()
    async with budget.slot(5) as slot:
        slot.refused(0.3)
    start = time.monotonic()
    async with budget.slot(5, Priority.RESYNC):
        waited = time.monotonic() - start
    assert waited >= 0.29


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    budget = RestBudget(max_in_flight=1)
    gate = asyncio.Event()

    async def hold() -> None:
        async with budget.slot(1):
            await gate.wait()

    holder = asyncio.create_task(hold())
    await eventually(lambda: budget.in_flight == 1, what="the slot taken")
    waiter = asyncio.create_task(hold())
    await eventually(lambda: budget.waiting == 1, what="a waiter")
    waiter.cancel()
    gate.set()
    await holder
    assert waiter.cancelled() and budget.in_flight == 0
    async with budget.slot(1):
        assert budget.in_flight == 1
