"""Resume decisions (tickwire.resume): every reason, never a partial replay, and the ack."""

from __future__ import annotations

import json

import pytest

from tickwire.history import History, Ring
from tickwire.protocol import Position
from tickwire.resume import Greeting, Outcome, Reason, decide, position_of


def ring_with(seqs: range, *, size: int = 2000) -> Ring:
    history = History(sizes={"trades": size})
    ring = history.ring("trades:X1")
    assert ring is not None
    ring.start(seqs.start - 1)
    for seq in seqs:
        history.append(ring, seq, b"%d" % seq, 0)
    return ring


def resume(
    since: Position, ring: Ring | None, *, top: int = 50, cap: int = 500, snap: bool = False
) -> Outcome:
    return decide(since, epoch="E.1", top=top, ring=ring, by_snapshot=snap, cap=cap, now_ms=0)


def test_a_client_within_the_ring_gets_exactly_what_it_missed() -> None:
    outcome = resume(Position("E.1", 41), ring_with(range(1, 51)))
    assert outcome == Outcome(True, replay=tuple(b"%d" % s for s in range(42, 51)))
    assert outcome.result == "recovered" and not outcome.snapshot
    assert resume(Position("E.1", 50), ring_with(range(1, 51))) == Outcome(True)  # at the top: nothing


@pytest.mark.parametrize(
    ("since", "ring", "cap", "reason"),
    [
        (Position("E.0", 41), ring_with(range(1, 51)), 500, Reason.EPOCH_CHANGED),
        (Position("E.1", 51), ring_with(range(1, 51)), 500, Reason.AHEAD),
        (Position("E.1", 9), ring_with(range(1, 51), size=40), 500, Reason.HISTORY_EXPIRED),
        (Position("E.1", 10), ring_with(range(1, 51)), 39, Reason.TOO_MANY),
        (Position("E.1", 10), None, 500, Reason.NOT_RECOVERABLE),
    ],
)
def test_every_other_case_is_not_recovered_with_its_reason_and_a_snapshot(
    since: Position, ring: Ring | None, cap: int, reason: Reason
) -> None:
    outcome = resume(since, ring, cap=cap)
    assert outcome == Outcome(False, reason, snapshot=True)  # never a partial replay
    assert outcome.result == reason.value


def test_status_frames_count_against_the_cap() -> None:
    history = History()
    ring = history.ring("trades:X1")
    assert ring is not None
    ring.start(0)
    history.append(ring, 1, b"1", 0)
    history.append_status(ring, b"stale", 0)
    history.append_status(ring, b"live", 0)
    history.append(ring, 2, b"2", 0)
    assert resume(Position("E.1", 0), ring, top=2, cap=4).replay == (b"1", b"stale", b"live", b"2")
    assert resume(Position("E.1", 0), ring, top=2, cap=3).reason is Reason.TOO_MANY


def test_latest_value_channels_recover_by_snapshot_whatever_the_epoch() -> None:
    assert resume(Position("E.1", 50), None, snap=True) == Outcome(True)  # at the top: nothing more
    assert resume(Position("E.1", 12), None, snap=True) == Outcome(True, snapshot=True)
    assert resume(Position("old", 50), None, snap=True) == Outcome(True, snapshot=True)
    assert resume(Position("E.1", 99), None, snap=True) == Outcome(True, snapshot=True)


def book_ring(seqs: range, *, snapshot_at: int | None = None) -> Ring:
    history = History(sizes={"book": 100})
    ring = history.ring("book:X1:10")
    assert ring is not None
    ring.start(seqs.start - 1)
    for seq in seqs:
        if seq == snapshot_at:
            ring.restart(seq)
        else:
            history.append(ring, seq, b"%d" % seq, 0)
    return ring


def test_a_book_replays_the_diffs_it_holds_and_else_recovers_by_snapshot() -> None:
    def book(since: Position, ring: Ring, cap: int = 500) -> Outcome:
        return resume(since, ring, top=150, cap=cap, snap=True)

    diffs = book_ring(range(1, 151))  # 100 kept: 51 to 150
    assert book(Position("E.1", 140), diffs) == Outcome(
        True, replay=tuple(b"%d" % s for s in range(141, 151))
    )
    assert book(Position("E.1", 50), diffs).replay == tuple(b"%d" % s for s in range(51, 151))  # 100 diffs
    assert book(Position("E.1", 150), diffs) == Outcome(True)  # at the top: nothing
    by_snapshot = Outcome(True, snapshot=True)  # every reason: the snapshot, and still recovered
    assert book(Position("E.1", 49), diffs) == by_snapshot  # older than the ring
    assert book(Position("E.0", 140), diffs) == by_snapshot  # another epoch
    assert book(Position("E.1", 151), diffs) == by_snapshot  # ahead
    assert book(Position("E.1", 140), diffs, cap=9) == by_snapshot  # over what this request may replay
    reset = book_ring(range(1, 151), snapshot_at=145)  # a snapshot publication inside the window
    assert book(Position("E.1", 140), reset) == by_snapshot
    assert book(Position("E.1", 145), reset).replay == tuple(b"%d" % s for s in range(146, 151))


def test_a_position_is_found_under_either_spelling() -> None:
    since = {"trades:btcusdt": Position("E", 1), "trades:ETHUSDT": Position("E", 2)}
    assert position_of(since, "trades:btcusdt", "trades:BTCUSDT") == Position("E", 1)
    assert position_of(since, "trades:ethusdt", "trades:ETHUSDT") == Position("E", 2)
    assert position_of(since, "price:X1", "price:X1") is None
    assert position_of(None, "price:X1", "price:X1") is None


def test_the_ack_carries_the_position_and_the_outcome() -> None:
    plain = Greeting([b"snap"], epoch="E.1", seq=7, recoverable=True)
    assert list(plain) == [b"snap"] and plain.replayed == 0
    ack = json.loads(plain.ack("trades:X1", 0, 3))
    assert ack == {
        "type": "subscribed", "channel": "trades:X1", "timestamp": "1970-01-01T00:00:00.000Z", "id": 3,
        "epoch": "E.1", "seq": 7, "recoverable": True,
    }  # fmt: skip
    replayed = Greeting(
        [b"a", b"b"], epoch="E.1", seq=7, recoverable=True, outcome=Outcome(True, replay=(b"a", b"b"))
    )
    ack = json.loads(replayed.ack("trades:X1", 0, None))
    assert (ack["wasRecovering"], ack["recovered"], ack["replayed"], "reason" in ack) == (
        True,
        True,
        2,
        False,
    )
    failed = Greeting(
        [], epoch="E.2", seq=0, recoverable=True, outcome=Outcome(False, Reason.AHEAD, snapshot=True)
    )
    ack = json.loads(failed.ack("trades:X1", 0, None))
    assert (ack["recovered"], ack["reason"], "replayed" in ack) == (False, "ahead", False)
