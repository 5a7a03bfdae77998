"""The state class of the outbox (book channels), pure: src/tickwire/outbox.py rule 6.

Frames are tokens ``channel|kind|seq|pos;`` so a joined ``take()`` reads
back as a list: ``kind`` is ``d`` (diff), ``s`` (snapshot), ``st`` (status),
``t`` (trade), ``p`` (price), ``c`` (control); ``pos`` is the order in which
the hub produced them.
"""

from __future__ import annotations

from typing import ClassVar

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tickwire import outbox
from tickwire.outbox import MAX_STATE_DIFFS, Outbox


def tok(channel: str, kind: str, seq: int, pos: int) -> bytes:
    return f"{channel}|{kind}|{seq}|{pos};".encode()


def parse(data: bytes) -> list[tuple[str, str, int, int]]:
    out = []
    for part in data.decode().split(";")[:-1]:
        channel, kind, seq, pos = part.split("|")
        out.append((channel, kind, int(seq), int(pos)))
    return out


class FakeView:
    """A state channel's view: its snapshot is the state at its current seq."""

    def __init__(self, channel: str, snapshot_size: int = 10_000) -> None:
        self.channel = channel
        self.seq = 0
        self.pos = 0
        self.snapshot_size = snapshot_size
        self.whole = True
        self.encoded: dict[int, bytes] = {}

    def snapshot_frame(self) -> bytes | None:
        if not self.whole:
            return None
        if self.seq not in self.encoded:  # once per seq, like BookView
            self.encoded[self.seq] = tok(self.channel, "s", self.seq, self.pos)
        return self.encoded[self.seq]


class Feed:
    """A hub's order of events for one outbox, with the views of its book channels."""

    def __init__(self, box: Outbox, snapshot_size: int = 10_000, size_b: int | None = None) -> None:
        self.box = box
        self.pos = 0
        self.views = {
            "book:A:10": FakeView("book:A:10", snapshot_size),
            "book:B:10": FakeView("book:B:10", size_b if size_b is not None else snapshot_size),
        }

    def diff(self, channel: str) -> bool:
        view = self.views[channel]
        self.pos += 1
        view.seq += 1
        view.pos = self.pos
        return self.box.push_state(channel, tok(channel, "d", view.seq, self.pos), False, view)

    def snapshot(self, channel: str) -> bool:
        view = self.views[channel]
        self.pos += 1
        view.seq += 1
        view.pos = self.pos
        return self.box.push_state(channel, tok(channel, "s", view.seq, self.pos), True, view)

    def status(self, channel: str) -> bool:
        self.pos += 1
        return self.box.push_final(channel, tok(channel, "st", self.views[channel].seq, self.pos))


def test_book_frames_never_count_toward_max_queue_nor_overflow() -> None:
    box = Outbox(max_queue=2)
    feed = Feed(box)
    feed.snapshot("book:A:10")
    for _ in range(MAX_STATE_DIFFS):
        assert feed.diff("book:A:10") is False
    assert box.finals == 0 and box.queued == 1 + MAX_STATE_DIFFS
    assert box.push_final("trades:T", tok("trades:T", "t", 1, 99))
    assert box.push_final("trades:T", tok("trades:T", "t", 2, 100))
    assert not box.push_final("trades:T", tok("trades:T", "t", 3, 101))  # the bound is as before
    assert feed.diff("book:A:10") is True  # and book frames still queue, as a snapshot
    assert box.finals == 2


def test_more_than_32_pending_diffs_become_the_current_snapshot() -> None:
    box = Outbox()
    feed = Feed(box)
    feed.snapshot("book:A:10")  # seq 1
    box.push_latest("price:P", tok("price:P", "p", 1, 0))
    for _ in range(MAX_STATE_DIFFS):
        feed.diff("book:A:10")  # seqs 2..33
    assert feed.diff("book:A:10") is True  # the 33rd: seq 34
    got = parse(box.take())
    assert got == [("price:P", "p", 1, 0), ("book:A:10", "s", 34, 34)]


def test_more_bytes_of_diffs_than_the_snapshot_become_the_snapshot() -> None:
    box = Outbox()
    feed = Feed(box, snapshot_size=60)  # a diff token is ~20 bytes
    feed.snapshot("book:A:10")
    assert feed.diff("book:A:10") is False
    assert feed.diff("book:A:10") is False
    assert feed.diff("book:A:10") is False  # 3 diffs: ~57 bytes
    assert feed.diff("book:A:10") is True
    assert [kind for _, kind, _, _ in parse(box.take())] == ["s"]


def test_a_snapshot_publication_replaces_pending_diffs_at_once() -> None:
    box = Outbox()
    feed = Feed(box)
    feed.snapshot("book:A:10")
    feed.diff("book:B:10")  # another channel's frames stay
    feed.diff("book:A:10")
    feed.diff("book:A:10")
    assert feed.snapshot("book:A:10") is False  # not counted as a replacement by the state rule
    feed.diff("book:A:10")
    got = [(c, k, s) for c, k, s, _ in parse(box.take())]
    assert got == [("book:B:10", "d", 1), ("book:A:10", "s", 4), ("book:A:10", "d", 5)]


def test_a_status_between_diffs_keeps_its_place_before_the_snapshot() -> None:
    box = Outbox()
    feed = Feed(box)
    feed.snapshot("book:A:10")
    box.push_latest("price:P", tok("price:P", "p", 1, 0))
    feed.diff("book:A:10")
    feed.status("book:A:10")  # stale: "upstream disconnected"
    feed.status("book:A:10")  # live again, no reset
    for _ in range(MAX_STATE_DIFFS):
        feed.diff("book:A:10")
    got = [(c, k, s) for c, k, s, _ in parse(box.take())]
    # the client reads the statuses in the order they happened, then the state after them
    assert got == [
        ("price:P", "p", 1),
        ("book:A:10", "st", 2),
        ("book:A:10", "st", 2),
        ("book:A:10", "s", 34),
    ]


def test_indexes_stay_right_after_a_replacement() -> None:
    """Conflation and purge still find their frames after frames were removed."""
    box = Outbox(max_queue=10)
    feed = Feed(box)
    for _ in range(3):
        feed.diff("book:A:10")
    box.push_latest("price:P", tok("price:P", "p", 1, 0))
    box.push_final("orders:u", tok("orders:u", "t", 1, 0))
    feed.snapshot("book:A:10")  # removes the three diffs before the price frame
    assert box.push_latest("price:P", tok("price:P", "p", 2, 0)) is True
    assert box.finals == 1
    assert box.purge("orders:u") == 1 and box.finals == 0
    feed.diff("book:A:10")
    got = [(c, k, s) for c, k, s, _ in parse(box.take())]
    assert got == [("price:P", "p", 2), ("book:A:10", "s", 4), ("book:A:10", "d", 5)]


def test_a_view_that_is_not_whole_keeps_the_diffs() -> None:
    box = Outbox()
    feed = Feed(box)
    feed.views["book:A:10"].whole = False
    for _ in range(MAX_STATE_DIFFS + 2):
        assert feed.diff("book:A:10") is False
    assert box.queued == MAX_STATE_DIFFS + 2 and box.finals == 0


class StateMachine(RuleBasedStateMachine):
    """The outbox against a model of what a client must read, after every step.

    The model predicts each ``push_state`` result (replacement at the 33rd
    diff or at more bytes than the snapshot), every final frame's fate
    against ``max_queue``, and on ``take`` checks per-channel order, that each
    book channel's frames form a chain a client can apply (a diff follows its
    predecessor, a snapshot resets), that the client ends at the newest seq,
    and that no more than 32 diffs (nor more bytes than the snapshot) ever waited.
    """

    MAX_QUEUE = 6
    SIZES: ClassVar[dict[str, int]] = {
        "book:A:10": 200,
        "book:B:10": 10_000,
    }  # A meets the byte rule first, B the count rule

    def __init__(self) -> None:
        super().__init__()
        self.box = Outbox(max_queue=self.MAX_QUEUE)
        self.feed = Feed(self.box, self.SIZES["book:A:10"], self.SIZES["book:B:10"])
        self.started: set[str] = set()
        self.pending: dict[str, list[int]] = {}  # book channel -> [diffs, bytes] since a snapshot
        self.finals = 0
        self.expected: list[tuple[str, str, int, int]] = []  # the final frames that must arrive
        self.client_seq: dict[str, int] = {}
        self.price_pos = 0

    @rule(channel=st.sampled_from(["book:A:10", "book:B:10"]))
    def snapshot(self, channel: str) -> None:
        assert self.feed.snapshot(channel) is False
        self.started.add(channel)
        self.pending[channel] = [0, 0]

    @precondition(lambda self: self.started)
    @rule(data=st.data(), n=st.integers(min_value=1, max_value=40))
    def diffs(self, data: st.DataObject, n: int) -> None:
        channel = data.draw(st.sampled_from(sorted(self.started)))
        for _ in range(n):
            count = self.pending.setdefault(channel, [0, 0])
            count[0] += 1
            count[1] += len(tok(channel, "d", self.feed.views[channel].seq + 1, self.feed.pos + 1))
            replace = count[0] > MAX_STATE_DIFFS or count[1] > self.SIZES[channel]
            assert self.feed.diff(channel) is replace
            if replace:
                self.pending[channel] = [0, 0]

    @rule(channel=st.sampled_from(["book:A:10", "book:B:10"]))
    def status(self, channel: str) -> None:
        fits = self.finals < self.MAX_QUEUE
        assert self.feed.status(channel) is fits
        if fits:
            self.finals += 1
            self.expected.append((channel, "st", self.feed.views[channel].seq, self.feed.pos))

    @rule()
    def trade(self) -> None:
        self.feed.pos += 1
        frame = tok("trades:T", "t", 0, self.feed.pos)
        fits = self.finals < self.MAX_QUEUE
        assert self.box.push_final("trades:T", frame) is fits
        if fits:
            self.finals += 1
            self.expected.append(("trades:T", "t", 0, self.feed.pos))

    @rule()
    def price(self) -> None:
        self.feed.pos += 1
        self.price_pos = self.feed.pos
        self.box.push_latest("price:P", tok("price:P", "p", 0, self.feed.pos))

    @rule()
    def take(self) -> None:
        got = parse(self.box.take())
        last_pos: dict[str, int] = {}
        waiting: dict[str, list[int]] = {}
        for channel, kind, seq, pos in got:
            assert pos > last_pos.get(channel, 0), f"{channel} out of order: {got}"
            last_pos[channel] = pos
            if kind == "s":
                self.client_seq[channel] = seq
                waiting[channel] = [0, 0]
            elif kind == "d":
                assert seq == self.client_seq[channel] + 1, f"{channel}: a gap before {seq}"
                self.client_seq[channel] = seq
                count = waiting.setdefault(channel, [0, 0])
                count[0] += 1
                count[1] += len(tok(channel, kind, seq, pos))
                assert count[0] <= MAX_STATE_DIFFS and count[1] <= self.SIZES[channel]
        for channel in self.started:  # the client ends at the newest state
            assert self.client_seq.get(channel) == self.feed.views[channel].seq
        assert [g for g in got if g[1] in ("st", "t")] == self.expected
        prices = [pos for channel, _, _, pos in got if channel == "price:P"]
        assert prices in ([], [self.price_pos])
        self.expected.clear()
        self.finals = 0
        self.pending.clear()
        self.price_pos = 0

    @invariant()
    def finals_count_only_what_must_be_delivered(self) -> None:
        assert self.box.finals == self.finals

    @invariant()
    def the_shared_empty_containers_stay_empty(self) -> None:
        assert outbox._NO_FRAMES == [] and outbox._NO_CHANNELS == [] and outbox._NO_INDEX == {}


TestState = StateMachine.TestCase
TestState.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
