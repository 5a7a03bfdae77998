"""History rings (tickwire.history): sizes, seq runs, status frames, the memory cap, expiry."""

from __future__ import annotations

import pytest

from tickwire.history import (
    DEFAULT_SIZES,
    ENTRY_OVERHEAD,
    History,
    Ring,
    parse_bytes,
    parse_sizes,
    recovers_by_snapshot,
)


def payload(seq: int, pad: int = 0) -> bytes:
    return b'{"seq":%d,"pad":"%s"}' % (seq, b"x" * pad)


def filled(history: History, channel: str, seqs: range, *, now: int = 0, pad: int = 0) -> Ring:
    ring = history.ring(channel)
    assert ring is not None
    ring.start(seqs.start - 1)
    for seq in seqs:
        history.append(ring, seq, payload(seq, pad), now)
    return ring


def seqs_after(ring: Ring, seq: int) -> list[int]:
    return [int(p.split(b",")[0].split(b":")[1]) if p.startswith(b'{"seq"') else -1 for p in ring.after(seq)]


def test_kinds_with_history_and_those_recovering_by_snapshot() -> None:
    history = History()
    assert history.ring("trades:BTCUSDT") is not None and history.ring("orders:auth0|x") is not None
    assert history.ring("price:BTCUSDT") is None and history.ring("depth:BTCUSDT") is None
    book = history.ring("book:BTCUSDT:100")
    assert book is not None and book.size == DEFAULT_SIZES["book"] == 100  # a small ring of diffs
    assert History(sizes={"book": 0}).ring("book:BTCUSDT:100") is None
    assert History(sizes={"trades": 0}).ring("trades:BTCUSDT") is None
    assert History.none().ring("signals:X1") is None
    assert recovers_by_snapshot("depth:BTCUSDT") and recovers_by_snapshot("book:BTCUSDT:20")
    assert not recovers_by_snapshot("klines:BTCUSDT:1m")
    assert (
        DEFAULT_SIZES["trades"] == 2000
        and DEFAULT_SIZES["klines"] == 300
        and DEFAULT_SIZES["account"] == 1000
    )


def test_a_ring_keeps_its_size_and_raises_its_floor() -> None:
    history = History(sizes={"trades": 5})
    ring = filled(history, "trades:X1", range(1, 13))
    assert (ring.floor, ring.top) == (7, 12)
    assert seqs_after(ring, 7) == [8, 9, 10, 11, 12]
    assert seqs_after(ring, 12) == []
    assert history.held_entries == 5
    assert history.held_bytes == sum(len(payload(s)) + ENTRY_OVERHEAD for s in range(8, 13))


def test_a_ring_starts_at_the_channels_position_and_a_seq_gap_starts_it_again() -> None:
    history = History()
    ring = history.ring("trades:X1")
    assert ring is not None
    ring.start(40)
    ring.start(10)  # only the first position counts
    assert (ring.floor, ring.top) == (40, 40)
    for seq in (41, 42, 43):
        history.append(ring, seq, payload(seq), 0)
    history.append(ring, 47, payload(47), 0)  # 44-46 never reached this node
    assert (ring.floor, ring.top) == (46, 47)
    assert seqs_after(ring, 46) == [47]
    assert history.held_entries == 1


def test_status_frames_sit_between_publications_and_count_when_evicted() -> None:
    history = History(sizes={"trades": 4})
    ring = filled(history, "trades:X1", range(1, 3))
    history.append_status(ring, b'{"type":"status","status":"stale"}', 0)
    history.append(ring, 3, payload(3), 0)
    assert seqs_after(ring, 1) == [2, -1, 3]
    assert seqs_after(ring, 2) == [-1, 3]  # a client at 2 may have missed the status after it
    history.append(ring, 4, payload(4), 0)
    history.append(ring, 5, payload(5), 0)  # 4 evicted 1, 5 evicts 2
    assert [e[1] for e in ring.entries] == [True, False, False, False]
    assert ring.floor == 2
    history.append(ring, 6, payload(6), 0)  # evicts the status: a client at 2 would miss it
    assert ring.floor == 3
    assert seqs_after(ring, 3) == [4, 5, 6]


def test_a_status_before_the_position_is_known_is_not_kept() -> None:
    history = History()
    ring = history.ring("signals:X1")
    assert ring is not None
    history.append_status(ring, b"{}", 0)
    assert history.held_entries == 0


def test_the_memory_cap_drops_the_oldest_entries_of_all_rings_first() -> None:
    entry = len(payload(1, 100)) + ENTRY_OVERHEAD
    history = History(max_bytes=10 * entry)
    a = filled(history, "trades:AA", range(1, 7), pad=100)  # 6 entries
    b = filled(history, "trades:BB", range(1, 5), pad=100)  # 4 entries: at the cap
    assert history.held_entries == 10 and history.evicted_for_memory == 0
    history.append(b, 5, payload(5, 100), 0)
    history.append(b, 6, payload(6, 100), 0)
    assert history.evicted_for_memory == 2
    assert (a.floor, a.top) == (2, 6)  # a's two oldest went, b kept everything
    assert (b.floor, b.top) == (0, 6)
    assert history.held_bytes <= history.max_bytes


def test_released_and_self_evicted_entries_do_not_pin_the_memory_fifo() -> None:
    history = History(sizes={"trades": 3})
    ring = filled(history, "trades:X1", range(1, 10_001))
    assert history.held_entries == 3
    assert len(history._order) <= 2 * history.held_entries + 1024 + 1
    history.release(ring)
    assert history.held_entries == 0 and history.held_bytes == 0
    other = filled(history, "trades:X2", range(1, 3_000))
    assert len(history._order) <= 2 * history.held_entries + 1024 + 1
    assert other.top == 2999


def test_entries_of_timed_kinds_expire() -> None:
    history = History(max_age_ms={"signals": 1000})
    ring = history.ring("signals:X1")
    assert ring is not None and ring.max_age_ms == 1000
    ring.start(0)
    for seq, now in ((1, 0), (2, 500), (3, 1200)):
        history.append(ring, seq, payload(seq), now)
    assert ring.floor == 1 and seqs_after(ring, 1) == [2, 3]  # seq 1 (t=0) expired at t=1200
    ring.expire(2600)
    assert ring.floor == 3 and list(ring.entries) == []
    trades = filled(history, "trades:X1", range(1, 3), now=0)
    trades.expire(10**12)
    assert trades.floor == 0  # trades have no age limit


@pytest.mark.parametrize(
    ("raw", "sizes"),
    [
        ("trades=5000", (("trades", 5000),)),
        (" klines=0 , signals=10,", (("klines", 0), ("signals", 10))),
        ("private=7", (("orders", 7), ("portfolio", 7), ("account", 7))),
        ("book=40,trades=1", (("book", 40), ("trades", 1))),
    ],
)
def test_history_sizes_parse(raw: str, sizes: tuple[tuple[str, int], ...]) -> None:
    assert parse_sizes(raw) == sizes


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("trades", "KIND=N"),
        ("trades=-1", "KIND=N"),
        ("trades=many", "KIND=N"),
        ("price=10", "recovers by snapshot"),
        ("bananas=10", "'bananas'"),
    ],
)
def test_bad_history_sizes_say_why(raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=r"^must") as info:
        parse_sizes(raw)
    assert says in str(info.value)


def test_a_book_snapshot_starts_the_ring_again_at_its_seq() -> None:
    history = History(sizes={"book": 100})
    ring = filled(history, "book:X1:10", range(1, 6))
    history.append_status(ring, b'{"type":"status","status":"stale"}', 0)
    ring.restart(6)  # the reset snapshot: a client from before it gets the current snapshot instead
    assert (ring.floor, ring.top) == (6, 6) and history.held_entries == 0
    history.append_status(ring, b'{"type":"status","status":"live"}', 0)
    history.append(ring, 7, payload(7), 0)
    assert seqs_after(ring, 6) == [-1, 7]  # the client that got the snapshot missed "live" and 7
    assert history.held_bytes == sum(len(p) + ENTRY_OVERHEAD for p in ring.after(6))


def test_memory_sizes_take_units() -> None:
    assert parse_bytes("268435456") == 256 * 1024**2
    assert parse_bytes("512MiB") == parse_bytes("512m") == 512 * 1024**2
    assert parse_bytes("1 GiB") == 1024**3
    for bad in ("", "12 parsecs", "MiB", "1k"):
        with pytest.raises(ValueError, match=r"^must"):
            parse_bytes(bad)


def test_the_settings_check_history_at_start_with_one_line() -> None:
    from tickwire.config import settings_from
    from tickwire.errors import ConfigError

    settings = settings_from(
        None, {"TICKWIRE_HISTORY": "private=5, trades=9", "TICKWIRE_HISTORY_MEMORY": "64MiB"}
    )
    assert settings.history == "orders=5,portfolio=5,account=5,trades=9"  # travels to --workers as is
    assert parse_sizes(settings.history) == (("orders", 5), ("portfolio", 5), ("account", 5), ("trades", 9))
    assert settings.history_memory == 64 * 1024**2 and settings.resume_window == 120.0
    for env, says in (
        ({"TICKWIRE_HISTORY": "depth=5"}, "TICKWIRE_HISTORY='depth=5': must name kinds that keep history"),
        ({"TICKWIRE_HISTORY_MEMORY": "lots"}, "TICKWIRE_HISTORY_MEMORY='lots': must be a size"),
        ({"TICKWIRE_RESUME_WINDOW": "-1"}, "TICKWIRE_RESUME_WINDOW='-1': must be a number, 0 or more"),
    ):
        with pytest.raises(ConfigError) as info:
            settings_from(None, env)
        assert str(info.value).startswith(says) and "\n" not in str(info.value)
