"""The token bucket behind a client's message budget: full at start, refilled by time, capped at the burst."""

from __future__ import annotations

from tickwire.ratelimit import TokenBucket


def _drain(bucket: TokenBucket, now: float) -> int:
    """How many single tokens can be taken at ``now`` before the bucket says no."""
    taken = 0
    while bucket.take(now):
        taken += 1
        assert taken < 1000, "the bucket never ran dry"
    return taken


def test_starts_full_and_refuses_once_empty() -> None:
    bucket = TokenBucket(rate=1.0, burst=3.0, now=0.0)
    assert _drain(bucket, 0.0) == 3
    assert bucket.take(0.0) is False  # still empty: no time passed


def test_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=8.0, burst=5.0, now=0.0)  # times are exact binary fractions
    _drain(bucket, 0.0)
    assert not bucket.take(0.0625)  # half a token
    assert bucket.take(0.125)  # the other half arrived: one token, taken
    assert not bucket.take(0.125)
    assert _drain(bucket, 0.5) == 3  # 0.375 s at 8/s


def test_a_quiet_spell_refills_no_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=4.0, now=0.0)
    _drain(bucket, 0.0)
    assert _drain(bucket, 3600.0) == 4


def test_cost_takes_several_tokens_or_none() -> None:
    bucket = TokenBucket(rate=1.0, burst=5.0, now=0.0)
    assert bucket.take(0.0, cost=3.0)
    assert not bucket.take(0.0, cost=3.0)  # 2 left: refused, and nothing taken
    assert bucket.take(0.0, cost=2.0)
    assert not bucket.take(0.0)


def test_time_going_backwards_adds_nothing_and_takes_nothing() -> None:
    bucket = TokenBucket(rate=8.0, burst=2.0, now=100.0)
    _drain(bucket, 100.0)
    assert not bucket.take(50.0)  # a clock that stepped back is no refill
    assert not bucket.take(50.0625)  # and the step back is no debt either: refill counts from 50
    assert bucket.take(50.125)
