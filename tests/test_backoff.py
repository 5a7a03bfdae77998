"""tickwire.backoff: the reconnect delays and the connect budget, with an injected rng and clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest
from hypothesis import given, strategies as st

from tickwire.backoff import ConnectBudget, backoff


class Scripted(random.Random):
    """An rng whose ``random()`` returns the given values, in a cycle."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self._values = itertools.cycle(values)

    def random(self) -> float:
        return next(self._values)


def take(delays: Iterator[float], n: int) -> list[float]:
    return list(itertools.islice(delays, n))


def test_without_jitter_the_delays_double_up_to_the_cap() -> None:
    delays = backoff(initial=0.5, factor=2.0, max_delay=5.0, jitter=0.0, rng=Scripted(1.0))
    # the first delay is drawn from [0, initial] (here its top); then initial, doubling, capped
    assert take(delays, 8) == [0.5, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_the_first_delay_spans_zero_to_initial() -> None:
    assert next(backoff(initial=2.0, rng=Scripted(0.0))) == 0.0
    assert next(backoff(initial=2.0, rng=Scripted(0.25))) == 0.5
    assert next(backoff(initial=2.0, rng=Scripted(0.999))) == pytest.approx(1.998)


def test_jitter_shortens_each_later_delay_by_at_most_its_fraction() -> None:
    shortest = take(backoff(initial=1.0, factor=3.0, max_delay=20.0, jitter=0.4, rng=Scripted(1.0)), 6)
    longest = take(backoff(initial=1.0, factor=3.0, max_delay=20.0, jitter=0.4, rng=Scripted(0.0)), 6)
    assert longest[1:] == [1.0, 3.0, 9.0, 20.0, 20.0]
    assert shortest[1:] == pytest.approx([0.6, 1.8, 5.4, 12.0, 12.0])


@given(
    initial=st.floats(0.01, 10.0),
    factor=st.floats(1.0, 4.0),
    max_delay=st.floats(0.01, 100.0),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_every_delay_stays_within_its_bounds(
    initial: float, factor: float, max_delay: float, jitter: float, seed: int
) -> None:
    delays = take(backoff(initial=initial, factor=factor, max_delay=max_delay, jitter=jitter,
                          rng=random.Random(seed)), 30)  # fmt: skip
    assert 0.0 <= delays[0] <= initial
    nominal = initial
    for delay in delays[1:]:
        assert (1.0 - jitter) * nominal - 1e-9 <= delay <= nominal + 1e-9
        nominal = min(nominal * factor, max_delay)
    assert all(d <= max(initial, max_delay) for d in delays)


def test_the_rng_is_injected_and_each_generator_starts_over() -> None:
    a = take(backoff(rng=random.Random(3)), 10)
    assert take(backoff(rng=random.Random(3)), 10) == a
    assert take(backoff(rng=random.Random(4)), 10) != a
    unseeded = take(backoff(initial=1.0, max_delay=8.0), 10)  # its own Random
    assert 0.0 <= unseeded[0] <= 1.0 and all(0.0 < d <= 8.0 for d in unseeded[1:])


def test_the_budget_allows_its_limit_then_waits_for_the_oldest_to_leave_the_window() -> None:
    budget = ConnectBudget(limit=3, window=10.0)
    for now in (0.0, 1.0, 2.0):
        assert budget.delay(now) == 0.0
        budget.record(now)
    assert budget.used(2.0) == 3
    assert budget.delay(2.5) == pytest.approx(7.5)  # the attempt at 0.0 leaves at 10.0
    assert budget.delay(9.99) == pytest.approx(0.01)
    assert budget.delay(10.0) == 0.0  # exactly one window later it no longer counts
    assert budget.used(10.0) == 2
    budget.record(10.0)
    assert budget.delay(10.5) == pytest.approx(0.5)  # now the attempt at 1.0 is the oldest
    assert budget.used(100.0) == 0


def test_the_default_budget_keeps_a_margin_under_binance_limit() -> None:
    budget = ConnectBudget()
    assert budget.limit < 300 and budget.window == 300.0  # 300 attempts per 5 minutes per IP
    for i in range(budget.limit):
        budget.record(float(i) / 100)
    assert budget.delay(budget.limit / 100) > 0
