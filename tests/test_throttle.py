"""Throttle per subscription, pure: held frames, due times, release (src/tickwire/throttle.py)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings, strategies as st

from tickwire.outbox import Outbox
from tickwire.throttle import Held, Throttle


def f(name: str) -> bytes:
    """A frame that names itself, so a joined ``take()`` reads back as a list."""
    return name.encode() + b";"


def frames(data: bytes) -> list[str]:
    return [part.decode() for part in data.split(b";")[:-1]]


class Rig:
    """A client's outbox and throttle; records what the throttle reports."""

    def __init__(self) -> None:
        self.box = Outbox(max_queue=100)
        self.pendings = 0
        self.superseded: dict[str, int] = {}
        self.snapshots: dict[str, bytes | None] = {}
        self.throttle = Throttle(
            self.box,
            push_final=self.push_final,
            on_pending=self.on_pending,
            on_superseded=self.on_superseded,
        )

    def push_final(self, channel: str, frame: bytes) -> None:
        assert self.box.push_final(channel, frame)

    def on_pending(self) -> None:
        self.pendings += 1

    def on_superseded(self, channel: str, frames: int) -> None:
        self.superseded[channel] = self.superseded.get(channel, 0) + frames

    def view(self, channel: str, window: int, *, due: int, state: bool = False) -> Held:
        view = self.throttle.view_for(channel)
        assert self.throttle.settle(channel, view, window, state=state, due_ms=due) is None
        return view

    def release(self, now: int) -> int:
        return self.throttle.release(now, self.snapshots.get)

    def take(self) -> list[str]:
        return frames(self.box.take())


def test_a_held_frame_waits_for_its_due_time_and_only_the_newest_goes() -> None:
    rig = Rig()
    view = rig.view("price:A", 250, due=250)
    for n in range(1, 4):
        view.push_latest("price:A", f(f"a{n}"))
    assert rig.box.queued == 0 and rig.throttle.pending
    assert rig.release(200) == 0 and rig.take() == []
    assert rig.release(250) == 1
    assert rig.take() == ["a3"]  # the newest at the end of the window: the trailing edge
    assert rig.superseded == {"price:A": 2}  # counted once, at the release
    assert not rig.throttle.pending


def test_the_next_frame_waits_a_whole_window_after_a_release() -> None:
    rig = Rig()
    view = rig.view("price:A", 100, due=0)
    view.push_latest("price:A", f("a1"))
    assert rig.release(50) == 1 and rig.take() == ["a1"]
    view.push_latest("price:A", f("a2"))  # right after: due again at 150
    assert rig.release(100) == 0
    assert rig.release(150) == 1 and rig.take() == ["a2"]


def test_an_idle_channel_goes_out_at_the_first_tick() -> None:
    rig = Rig()
    view = rig.view("price:A", 500, due=500)
    assert rig.release(5_000) == 0  # nothing held: nothing to do, nothing pending
    view.push_latest("price:A", f("a1"))
    assert rig.release(5_050) == 1 and rig.take() == ["a1"]


def test_on_pending_fires_when_the_client_starts_holding_after_holding_nothing() -> None:
    rig = Rig()
    a = rig.view("price:A", 100, due=100)
    b = rig.view("ticker:B", 100, due=100)
    a.push_latest("price:A", f("a1"))
    a.push_latest("price:A", f("a2"))
    b.push_latest("ticker:B", f("b1"))
    assert rig.pendings == 1
    rig.release(100)
    assert not rig.throttle.pending
    b.push_latest("ticker:B", f("b2"))
    assert rig.pendings == 2


def test_a_final_frame_is_never_held_and_takes_the_held_frame_with_it() -> None:
    rig = Rig()
    view = rig.view("klines:A:1m", 1000, due=1000)
    view.push_latest("klines:A:1m", f("k1"))
    view.push_final("klines:A:1m", f("k1-final"))
    assert rig.take() == ["k1", "k1-final"]  # at once, in order, before the due time
    assert not rig.throttle.pending
    view.push_latest("klines:A:1m", f("k2"))
    assert rig.release(999) == 0
    assert rig.release(1000) == 1 and rig.take() == ["k2"]


def test_a_status_goes_out_at_once_after_the_value_before_it() -> None:
    rig = Rig()
    view = rig.view("price:A", 500, due=500)
    view.push_final("price:A", f("stale"))  # nothing held: only the status
    view.push_latest("price:A", f("a1"))
    view.push_final("price:A", f("live"))
    assert rig.take() == ["stale", "a1", "live"]


def test_a_released_frame_a_slow_client_has_not_read_is_replaced_in_its_outbox() -> None:
    rig = Rig()
    view = rig.view("price:A", 100, due=0)
    view.push_latest("price:A", f("a1"))
    rig.release(0)
    view.push_latest("price:A", f("a2"))
    rig.release(100)  # the client did not read a1: a2 takes its place
    assert rig.box.queued == 1 and rig.take() == ["a2"]


def test_a_throttled_book_gets_the_current_snapshot_at_most_once_per_window() -> None:
    rig = Rig()
    view = rig.view("book:A:20", 200, due=200, state=True)
    view.push_state("book:A:20", f("diff1"))
    view.push_state("book:A:20", f("diff2"))
    view.push_latest("book:A:20", f("snap-as-latest"))  # a state channel's data is only noted
    assert rig.superseded == {}  # counted when released

    rig.snapshots["book:A:20"] = f("snapshot@3")
    assert rig.release(150) == 0
    assert rig.release(200) == 1 and rig.take() == ["snapshot@3"]
    assert rig.superseded == {"book:A:20": 2}  # three frames, one snapshot for them
    assert rig.release(400) == 0  # no change since: nothing
    view.push_state("book:A:20", f("diff4"))
    rig.snapshots["book:A:20"] = None  # stale (resync): nothing can be served
    assert rig.release(400) == 0 and rig.take() == []
    assert not rig.throttle.pending  # the next change asks again


class BookView:
    """A stand-in for the hub's book view: its snapshot, encoded once per seq."""

    def __init__(self) -> None:
        self.frame: bytes | None = None
        self.asked = 0

    def snapshot_frame(self) -> bytes | None:
        self.asked += 1
        return self.frame


def test_a_throttled_book_asks_the_view_its_frames_came_with() -> None:
    rig = Rig()
    view = rig.view("book:A:20", 100, due=0, state=True)
    book = BookView()
    view.push_state("book:A:20", f("snapshot@1"), True, book)  # the subscribe's greeting
    view.push_state("book:A:20", f("diff2"), False, book)
    rig.snapshots["book:A:20"] = f("from-the-hub")  # not asked: the view answers
    book.frame = f("snapshot@2")
    assert rig.release(50) == 1 and rig.take() == ["snapshot@2"] and book.asked == 1
    view.push_state("book:A:20", f("diff3"), False, book)
    book.frame = None  # a resync: no whole book
    assert rig.release(150) == 0 and rig.take() == []


def test_settle_replaces_the_view_and_drops_what_it_held() -> None:
    rig = Rig()
    view = rig.view("price:A", 500, due=500)
    view.push_latest("price:A", f("a1"))
    assert rig.throttle.window("price:A") == 500
    # the same view with another window: nothing for the hub to drop; the held frame is older
    # than the snapshot the subscribe sends, so it is dropped
    assert rig.throttle.settle("price:A", view, 1000, state=False, due_ms=1000) is None
    assert not rig.throttle.pending and rig.throttle.window("price:A") == 1000
    # throttle 0: the session stands in the hub again and the view must leave it
    session = object()
    assert rig.throttle.settle("price:A", session, 0, state=False, due_ms=0) is view
    assert rig.throttle.window("price:A") == 0 and rig.throttle.view_for("price:A") is not view
    assert rig.throttle.views() == []


def test_remove_forgets_the_channel() -> None:
    rig = Rig()
    view = rig.view("price:A", 100, due=100)
    view.push_latest("price:A", f("a1"))
    assert rig.throttle.remove("price:A") is view
    assert not rig.throttle.pending and rig.release(1000) == 0
    assert rig.throttle.remove("price:A") is None


def test_superseded_frames_are_counted_whenever_the_slot_lets_them_go() -> None:
    rig = Rig()
    view = rig.view("price:A", 100, due=100)
    for name in ("a1", "a2"):
        view.push_latest("price:A", f(name))
    view.push_final("price:A", f("stale"))
    assert rig.superseded == {"price:A": 1} and rig.take() == ["a2", "stale"]
    for name in ("a3", "a4", "a5"):
        view.push_latest("price:A", f(name))
    assert rig.throttle.clear() == [("price:A", view)]
    assert rig.superseded == {"price:A": 3} and rig.throttle.views() == []


# -- the properties, for any sequence of pushes and ticks -----------------------------

TICK = 50


@settings(max_examples=300, deadline=None)
@given(
    window=st.sampled_from([100, 150, 250, 500]),
    steps=st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=60),
)
def test_delivered_frames_are_a_subsequence_ending_with_the_newest_a_window_apart(
    window: int, steps: list[tuple[int, bool]]
) -> None:
    """Each step pushes 0 to 4 values, then a tick; the client reads only on some ticks."""
    rig = Rig()
    view = rig.view("price:A", window, due=window)  # the subscribe's snapshot went out at 0
    pushed: list[int] = []
    delivered: list[tuple[int, int]] = []  # (time the frame was released to the outbox, value)
    now = released_at = releases = 0

    def tick(reads: bool) -> None:
        nonlocal now, released_at, releases
        now += TICK
        if rig.release(now):
            released_at = now
            releases += 1
        if reads:  # one channel: at most one frame waits, the last one released
            delivered.extend((released_at, int(name)) for name in rig.take())

    for count, reads in steps:
        for _ in range(count):
            pushed.append(len(pushed) + 1)
            view.push_latest("price:A", f(str(pushed[-1])))
        tick(reads)
    for _ in range(window // TICK + 1):  # quiet: every held value comes due and is read
        tick(True)
    values = [value for _, value in delivered]
    assert values == sorted(set(values)) and set(values) <= set(pushed)  # a subsequence, in order
    if pushed:
        assert values[-1] == pushed[-1]  # the newest value always goes out
    times = [at for at, _ in delivered]
    assert all(t >= window for t in times[:1])  # the subscribe's snapshot was this window's frame
    assert all(b - a >= window for a, b in itertools.pairwise(times))
    # every value pushed was released, or superseded while held (counted)
    assert rig.superseded.get("price:A", 0) == len(pushed) - releases
    assert not rig.throttle.pending and rig.box.queued == 0
