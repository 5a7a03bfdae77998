"""The exchangeInfo symbol list: loaded once, refreshed after its TTL, retried with backoff, trusted honestly.

Pure: a fake REST client answers from a script and the clock is a number the test moves.
"""

from __future__ import annotations

import asyncio
import random
from typing import cast

from tickwire.sources.binance.rest import RestClient
from tickwire.sources.binance.symbols import PATH, SymbolList


GOOD = b'{"symbols": [{"symbol": "BTCUSDT", "status": "TRADING"}, {"symbol": "LUNAUSDT", "status": "BREAK"}]}'


class Clock:
    """A monotonic clock that moves only when the test (or a fake request) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeRest:
    """``RestClient.get`` answering from a script: (body, Retry-After seconds, last_error) per request.

    Each request takes ``latency`` seconds of the test's clock.
    """

    def __init__(self, clock: Clock, latency: float = 0.0) -> None:
        self.clock = clock
        self.latency = latency
        self.answers: list[tuple[bytes | None, float | None, str | None]] = []
        self.paths: list[str] = []
        self.last_error: str | None = None

    async def get(self, path: str, params: dict[str, str]) -> tuple[bytes | None, int, float | None]:
        self.paths.append(path)
        await asyncio.sleep(0)  # a real request yields to the loop
        self.clock.now += self.latency
        body, retry, self.last_error = self.answers.pop(0)
        return body, 0, retry


class NoJitter(random.Random):
    """Jitter that takes nothing off: backoff delays are 0, then initial, doubling to the cap."""

    def random(self) -> float:
        return 0.0


def _symbols(rest: FakeRest, clock: Clock, *, failing_after: int = 3) -> SymbolList:
    return SymbolList(
        cast(RestClient, rest),
        ttl=3600.0,
        retry_initial=1.0,
        retry_max=4.0,
        failing_after=failing_after,
        rng=NoJitter(),
        clock=clock,
    )


async def test_a_good_answer_is_trusted_until_its_ttl_runs_out() -> None:
    clock = Clock()
    rest = FakeRest(clock, latency=2.0)
    symbols = _symbols(rest, clock)
    assert symbols.due(clock.now) and symbols.problem() == "exchangeInfo not answered yet"
    rest.answers.append((GOOD, None, None))
    await symbols.ensure()
    assert symbols.symbols == {"BTCUSDT": "TRADING", "LUNAUSDT": "BREAK"}
    assert symbols.problem() is None and rest.paths == [PATH]
    await symbols.ensure()
    await symbols.load()  # fresh: no second request
    assert rest.paths == [PATH]
    assert symbols.loaded_at == clock.now  # the TTL counts from the answer, not from the request
    assert not symbols.due(clock.now + 3599.0) and symbols.due(clock.now + 3600.0)


async def test_failed_loads_back_off_doubling_to_the_cap() -> None:
    clock = Clock()
    rest = FakeRest(clock)
    symbols = _symbols(rest, clock)
    waits = []
    for attempt in range(1, 6):
        rest.answers.append((None, None, "HTTP 500"))
        await symbols.load()
        assert symbols.problem() == f"exchangeInfo failing ({attempt} attempts): HTTP 500"
        waits.append(symbols.next_try - clock.now)
        clock.now = symbols.next_try
    assert waits == [0.0, 1.0, 2.0, 4.0, 4.0]


async def test_no_request_while_the_backoff_holds() -> None:
    clock = Clock()
    rest = FakeRest(clock)
    symbols = _symbols(rest, clock)
    rest.answers += [(None, None, "HTTP 500"), (None, None, "HTTP 500")]
    await symbols.load()
    clock.now = symbols.next_try
    await symbols.load()  # the second failure waits a whole second
    clock.now += 0.5
    assert not symbols.due(clock.now)
    await symbols.ensure()
    await symbols.load()
    assert len(rest.paths) == 2  # held back, both ways in
    rest.answers.append((GOOD, None, None))
    clock.now += 0.5
    assert symbols.due(clock.now)
    await symbols.ensure()
    assert symbols.symbols is not None and symbols.failures == 0 and len(rest.paths) == 3


async def test_a_longer_retry_after_wins_over_the_backoff() -> None:
    clock = Clock()
    rest = FakeRest(clock)
    symbols = _symbols(rest, clock)
    rest.answers.append((None, 30.0, None))  # refused locally: the client says nothing of its own
    await symbols.load()
    assert symbols.next_try == clock.now + 30.0
    assert symbols.last_error == "REST held back for 30 s"


async def test_a_list_that_loaded_stays_trusted_through_a_few_failed_refreshes() -> None:
    clock = Clock()
    rest = FakeRest(clock)
    symbols = _symbols(rest, clock, failing_after=3)
    rest.answers.append((GOOD, None, None))
    await symbols.load()
    for attempt in range(1, 4):
        clock.now = max(symbols.loaded_at + symbols.ttl, symbols.next_try)
        rest.answers.append((None, None, "TimeoutError: "))
        await symbols.load()
        assert symbols.failures == attempt
        assert (symbols.problem() is None) is (attempt < 3), attempt
    assert symbols.symbols == {"BTCUSDT": "TRADING", "LUNAUSDT": "BREAK"}  # the old list is kept meanwhile
    clock.now = symbols.next_try
    rest.answers.append((GOOD, None, None))
    await symbols.load()
    assert symbols.problem() is None and symbols.failures == 0 and symbols.loaded_at == clock.now
    clock.now += symbols.ttl
    rest.answers.append((None, None, "HTTP 502"))
    await symbols.load()
    assert symbols.next_try == clock.now  # a success starts the backoff over: no 4 s wait


async def test_a_body_that_does_not_parse_is_a_failure() -> None:
    clock = Clock()
    rest = FakeRest(clock)
    symbols = _symbols(rest, clock)
    rest.answers.append((b'{"symbols": "none"}', None, None))
    await symbols.load()
    assert symbols.symbols is None and symbols.failures == 1
    problem = symbols.problem()
    assert problem is not None and problem.startswith("exchangeInfo failing (1 attempts): bad exchangeInfo")


async def test_concurrent_callers_share_one_request() -> None:
    clock = Clock()
    rest = FakeRest(clock)
    symbols = _symbols(rest, clock)
    rest.answers.append((GOOD, None, None))
    await asyncio.gather(*(symbols.ensure() for _ in range(5)))
    assert rest.paths == [PATH] and symbols.attempts == 1 and symbols.symbols is not None
