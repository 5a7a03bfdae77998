"""The outbox rules, pure: no event loop, no socket (src/tickwire/outbox.py)."""

from __future__ import annotations

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tickwire import outbox
from tickwire.outbox import Outbox


def f(name: str) -> bytes:
    """A frame that names itself, so a joined ``take()`` reads back as a list."""
    return name.encode() + b";"


def frames(data: bytes) -> list[str]:
    return [part.decode() for part in data.split(b";")[:-1]]


def test_frames_leave_in_order_across_channels_and_control_frames() -> None:
    box = Outbox(max_queue=10)
    assert box.push_final("trades:A", f("a1"))
    assert box.push_control(f("ack"))
    assert not box.push_latest("price:B", f("b1"))
    assert box.push_final("trades:C", f("c1"))
    assert box.push_control(f("pong"))
    assert frames(box.take()) == ["a1", "ack", "b1", "c1", "pong"]


def test_a_latest_frame_replaces_its_pending_one_in_place() -> None:
    box = Outbox(max_queue=10)
    assert box.push_latest("price:A", f("a1")) is False
    assert box.push_final("trades:B", f("b1"))
    assert box.push_latest("price:A", f("a2")) is True  # conflated
    assert box.push_latest("price:A", f("a3")) is True
    assert box.queued == 2 and box.finals == 1
    assert frames(box.take()) == ["a3", "b1"]  # the newest value, where the channel first queued
    assert box.push_latest("price:A", f("a4")) is False  # written: nothing left to replace
    assert frames(box.take()) == ["a4"]


def test_a_final_frame_pins_the_pending_latest_frame_of_its_channel() -> None:
    box = Outbox(max_queue=10)
    box.push_latest("klines:A:1m", f("k1"))
    box.push_latest("price:B", f("b1"))
    assert box.finals == 0
    assert box.push_final("klines:A:1m", f("k2-final"))
    assert box.finals == 2  # the pinned frame must now be delivered too
    assert box.push_latest("klines:A:1m", f("k3")) is False  # queues after the final, replaces nothing
    assert box.push_latest("klines:A:1m", f("k4")) is True
    assert box.push_latest("price:B", f("b2")) is True  # other channels still conflate
    assert frames(box.take()) == ["k1", "b2", "k2-final", "k4"]


def test_overflow_at_exactly_max_queue_queues_nothing() -> None:
    box = Outbox(max_queue=3)
    assert box.push_latest("price:A", f("p1")) is False  # latest frames are not counted
    for n in range(3):
        assert box.push_final("trades:B", f(f"t{n}")), n
    assert box.finals == 3 and box.queued == 4
    assert box.push_final("trades:B", f("t3")) is False
    assert box.push_control(f("ack")) is False  # control frames share the bound
    assert box.push_latest("price:A", f("p2")) is True  # conflation goes on at the bound
    assert frames(box.take()) == ["p2", "t0", "t1", "t2"]


def test_a_pin_counts_towards_the_bound_and_a_refused_push_changes_nothing() -> None:
    box = Outbox(max_queue=2)
    box.push_final("trades:B", f("t1"))
    box.push_latest("price:A", f("p1"))
    assert box.push_final("price:A", f("s1")) is False  # t1 + pinned p1 + s1 would be 3
    assert box.finals == 1 and box.queued == 2
    assert box.push_latest("price:A", f("p2")) is True  # p1 was not pinned: still replaceable
    assert box.push_final("trades:B", f("t2")) is True
    assert frames(box.take()) == ["t1", "p2", "t2"]


def test_purge_removes_only_that_channels_frames() -> None:
    box = Outbox(max_queue=10)
    box.push_final("orders:u1", f("o1"))
    box.push_latest("price:A", f("p1"))
    box.push_latest("orders:u1", f("o-latest"))
    box.push_final("orders:u1", f("o2"))  # pins o-latest
    box.push_control(f("ack"))
    box.push_latest("orders:u1", f("o3"))
    box.push_final("trades:B", f("t1"))
    assert box.purge("orders:u1") == 4
    assert box.queued == 3 and box.finals == 2
    assert box.purge("orders:u1") == 0
    assert box.purge("orders:other") == 0
    # the remaining latest frame is still replaceable, at its own place
    assert box.push_latest("price:A", f("p2")) is True
    assert box.push_latest("orders:u1", f("o4")) is False  # nothing of it left to replace
    assert frames(box.take()) == ["p2", "ack", "t1", "o4"]


def test_take_empties_and_clear_drops() -> None:
    box = Outbox(max_queue=2)
    assert not box and box.take() == b""
    box.push_final("trades:A", f("t1"))
    box.push_latest("price:A", f("p1"))
    assert box and box.queued == 2 and box.finals == 1
    assert box.take() == b"t1;p1;"
    assert not box and box.queued == 0 and box.finals == 0
    assert box.push_final("trades:A", f("t2")) and box.push_final("trades:A", f("t3"))  # bound reset
    box.push_latest("price:A", f("p2"))
    assert box.clear() == 3
    assert not box and box.take() == b""
    assert box.push_latest("price:A", f("p3")) is False  # nothing left to replace after a clear


# --- a model: a plain list of entries --------------------------------------------------

CHANNELS = st.sampled_from(["price:A", "price:B", "trades:A", "orders:u1", ""])


class Entry:
    __slots__ = ("channel", "frame", "replaceable")

    def __init__(self, channel: str, frame: bytes, replaceable: bool) -> None:
        self.channel, self.frame, self.replaceable = channel, frame, replaceable


class OutboxMachine(RuleBasedStateMachine):
    """Random pushes, takes and purges against the outbox and a list model."""

    def __init__(self) -> None:
        super().__init__()
        self.max_queue = 5
        self.box = Outbox(max_queue=self.max_queue)
        self.model: list[Entry] = []
        self.n = 0

    def _frame(self, channel: str) -> bytes:
        self.n += 1
        return f(f"{channel}#{self.n}")

    def _must(self) -> int:
        return sum(1 for e in self.model if not e.replaceable)

    @rule(channel=CHANNELS.filter(bool))
    def push_latest(self, channel: str) -> None:
        frame = self._frame(channel)
        for e in self.model:
            if e.channel == channel and e.replaceable:
                e.frame = frame
                assert self.box.push_latest(channel, frame) is True
                return
        self.model.append(Entry(channel, frame, True))
        assert self.box.push_latest(channel, frame) is False

    def _push_final(self, channel: str, frame: bytes) -> bool:
        pending = [e for e in self.model if e.channel == channel and e.replaceable]
        if self._must() + len(pending) >= self.max_queue:
            return False
        for e in pending:
            e.replaceable = False
        self.model.append(Entry(channel, frame, False))
        return True

    @rule(channel=CHANNELS.filter(bool))
    def push_final(self, channel: str) -> None:
        frame = self._frame(channel)
        assert self.box.push_final(channel, frame) is self._push_final(channel, frame)

    @rule()
    def push_control(self) -> None:
        frame = self._frame("")
        assert self.box.push_control(frame) is self._push_final("", frame)

    @rule()
    def take(self) -> None:
        data = self.box.take()
        assert data == b"".join(e.frame for e in self.model)
        self.model.clear()
        # per channel, frames leave in the order they were pushed
        last: dict[str, int] = {}
        for name in frames(data):
            channel, _, n = name.rpartition("#")
            assert int(n) > last.get(channel, 0)
            last[channel] = int(n)

    @rule(channel=CHANNELS)
    def purge(self, channel: str) -> None:
        kept = [e for e in self.model if e.channel != channel]
        assert self.box.purge(channel) == len(self.model) - len(kept)
        self.model = kept

    @rule()
    def clear(self) -> None:
        assert self.box.clear() == len(self.model)
        self.model.clear()

    @invariant()
    def counts_agree(self) -> None:
        assert self.box.queued == len(self.model)
        assert self.box.finals == self._must() <= self.max_queue
        assert bool(self.box) == bool(self.model)

    @invariant()
    def the_shared_empty_containers_stay_empty(self) -> None:
        # an outbox that never held two frames uses them; a write to them would reach every other
        assert outbox._NO_FRAMES == [] and outbox._NO_CHANNELS == [] and outbox._NO_INDEX == {}


OutboxMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestOutboxModel = OutboxMachine.TestCase
