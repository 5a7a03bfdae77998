"""The bus's older messages joined to a ring (tickwire.backlog), through resume.decide: pure."""

from __future__ import annotations

from tickwire.backlog import Backlog, payload_of
from tickwire.history import History, Ring
from tickwire.protocol import Position
from tickwire.publications import ChannelStatus, Publication
from tickwire.resume import Reason, decide


CH = "trades:BTCUSDT"
NOW = 1_700_000_100_000


def pub(seq: int, time: int = NOW) -> Publication:
    return Publication(CH, seq, b'{"seq":%d}' % seq, True, time)


def stale(time: int = NOW) -> ChannelStatus:
    return ChannelStatus(CH, False, "upstream disconnected", time)


def ring_from(start: int, top: int, history: History | None = None) -> Ring:
    """A gateway's ring that opened the channel at ``start`` and holds up to ``top``."""
    history = history or History()
    ring = history.ring(CH)
    assert ring is not None
    ring.start(start)
    for seq in range(start + 1, top + 1):
        history.append(ring, seq, pub(seq).payload, NOW)
    return ring


def resume(
    ring: Ring | Backlog, since: int, top: int, cap: int = 500
) -> tuple[bool, Reason | None, list[bytes]]:
    outcome = decide(
        Position("e", since), epoch="e", top=top, ring=ring, by_snapshot=False, cap=cap, now_ms=NOW
    )
    return outcome.recovered, outcome.reason, list(outcome.replay)


def payloads(*seqs: int) -> list[bytes]:
    return [pub(s).payload for s in seqs]


def test_the_bus_part_then_the_ring_part_without_a_repeat() -> None:
    ring = ring_from(50, 60)  # opened at 50: alone it cannot serve a resume from 40
    assert resume(ring, 40, 60) == (False, Reason.HISTORY_EXPIRED, [])
    older: list[Publication | ChannelStatus] = [
        *map(pub, range(41, 56)),
        stale(),
    ]  # the stream, read up to 55 and a status
    assert resume(Backlog(ring, 40, older, 500, top=60), 40, 60) == (True, None, payloads(*range(41, 61)))


def test_what_the_stream_holds_beyond_the_hubs_top_is_not_replayed() -> None:
    """The stream is ahead of the hub (pub/sub lags): 61-63 will reach the client live."""
    ring = ring_from(50, 60)
    older = list(map(pub, range(41, 64)))
    recovered, reason, replay = resume(Backlog(ring, 40, older, 500, top=60), 40, 60)
    assert (recovered, reason, replay) == (True, None, payloads(*range(41, 61)))


def test_status_frames_come_in_place_and_the_ring_gives_those_after_the_join() -> None:
    history = History()
    ring = ring_from(50, 52, history)
    history.append_status(ring, payload_of(stale()), NOW)  # after 52, in the ring
    older: list[Publication | ChannelStatus] = [
        pub(51),
        stale(1),
        pub(52),
        stale(2),
    ]  # the stream's own status after 52 is not used
    backlog = Backlog(ring, 50, older, 500, top=52)
    ring.floor = 51  # (as if 51 were evicted meanwhile) the ring alone cannot serve 50
    assert resume(backlog, 50, 52)[2] == [
        pub(51).payload, payload_of(stale(1)), pub(52).payload, payload_of(stale()),
    ]  # fmt: skip


def test_a_ring_that_moved_on_meanwhile_does_not_join() -> None:
    history = History(sizes={"trades": 5})
    ring = ring_from(50, 55, history)
    backlog = Backlog(ring, 40, list(map(pub, range(41, 53))), 500, top=55)  # the stream read up to 52
    for seq in range(56, 60):  # arrived during the read: the ring (5) now starts above 53
        history.append(ring, seq, pub(seq).payload, NOW)
    assert resume(backlog, 40, 59) == (False, Reason.HISTORY_EXPIRED, [])


def test_a_read_cut_at_the_cap_is_too_many() -> None:
    ring = ring_from(100, 110)
    backlog = Backlog(ring, 40, list(map(pub, range(41, 52))), 10, top=110)  # cap 10: 11 came back
    assert resume(backlog, 40, 45, cap=10)[:2] == (False, Reason.TOO_MANY)


def test_messages_older_than_the_kinds_age_are_history_expired() -> None:
    history = History()
    ring = history.ring("signals:BTCUSDT")  # kept 24 h
    assert ring is not None
    ring.start(10)
    day = 24 * 3600 * 1000
    old = [Publication("signals:BTCUSDT", s, b"{}", True, NOW - day - 1) for s in range(6, 11)]
    assert resume(Backlog(ring, 5, old, 500, top=10), 5, 10)[:2] == (False, Reason.HISTORY_EXPIRED)
    young = [Publication("signals:BTCUSDT", s, b"{}", True, NOW - day + 1) for s in range(6, 11)]
    assert resume(Backlog(ring, 5, young, 500, top=10), 5, 10)[:2] == (True, None)
