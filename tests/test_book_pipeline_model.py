"""Random diff sequences through the whole book pipeline, checked at every step.

A model venue keeps the true book and its update ids. Its diffs reach the
Binance engine (:class:`~tickwire.sources.binance.book.BookSync`), except
those the test drops (a gap), plus bogus ones that cross the book; the test
answers the engine's snapshot requests with the venue's book, sometimes an
older one (Rule 2), truncated to the requested limit (so the coverage guard
asks for refreshes). The engine's updates go through the ingest projection
(:class:`~tickwire.books.BookProjector`) onto two depth channels; each
publication is applied to the hub's view (:class:`~tickwire.bookview.BookView`)
and to a client :class:`~tickwire.client.book.Book`, and statuses go to the
client too. After every step, while the engine is live: every depth's
client book, view and view snapshot equal the venue's book at the engine's
update id (top DEPTH); the client never had to resync (every checksum
verified, no seq gap). And every gap or crossing shows each channel exactly
``stale "book resync"`` -> snapshot with ``reset`` -> ``live``, with no diff
in between, while a refresh shows no status and no reset at all.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

from hypothesis import event, given, settings, strategies as st

from tickwire.books import BookProjector
from tickwire.bookview import BookView
from tickwire.channels import parse_channel
from tickwire.client import messages as client_messages
from tickwire.client.book import RESYNC, Book as ClientBook
from tickwire.events import BookUpdate
from tickwire.protocol import encode_status
from tickwire.publications import Publication
from tickwire.sources.binance import book as engine_module
from tickwire.sources.binance.book import RESYNC as BOOK_RESYNC, BookSync, Fetch
from tickwire.sources.binance.bookparse import DiffEvent, RestBook


D = Decimal
SYMBOL = "BTCUSDT"
DEPTHS = (10, 20)
CHANNELS = {d: f"book:{SYMBOL}:{d}" for d in DEPTHS}
LEVELS = 60  # per side at the start
LIMIT = 45  # snapshot levels (in place of Binance's 1000): a few deletions and the guard asks for a refresh

Levels = dict[int, int]  # price in ticks -> quantity in lots


def price(ticks: int) -> D:
    return D(ticks) / 10


def qty(lots: int) -> D:
    return D(lots * 125) / 1000


class Venue:
    """The true book and its update ids; every state kept, for references and old snapshots."""

    def __init__(self) -> None:
        self.bids: Levels = {1000 - i: 1 + i % 5 for i in range(LEVELS)}
        self.asks: Levels = {1001 + i: 1 + i % 3 for i in range(LEVELS)}
        self.uid = 1000
        self.states: dict[int, tuple[Levels, Levels]] = {self.uid: (dict(self.bids), dict(self.asks))}

    def update(self, changes: list[tuple[bool, int, int]], ids: int) -> DiffEvent:
        """Apply ``changes`` (is_bid, ticks from the other side's best, lots; 0 removes), never crossing."""
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for is_bid, offset, lots in changes:
            if is_bid:
                ticks = min(self.asks, default=1001) - 1 - offset
                side, out = self.bids, bids
            else:
                ticks = max(self.bids, default=1000) + 1 + offset
                side, out = self.asks, asks
            if lots:
                side[ticks] = lots
            else:
                side.pop(ticks, None)
            out[ticks] = lots
        return self._event(bids, asks, ids)

    def bogus_cross(self) -> DiffEvent:
        """An event the venue never applied: a bid far above every ask (its update id is used up)."""
        return self._event({10**6: 1}, {}, 1, apply=False)

    def _event(
        self, bids: dict[int, int], asks: dict[int, int], ids: int, *, apply: bool = True
    ) -> DiffEvent:
        first, self.uid = self.uid + 1, self.uid + ids
        self.states[self.uid] = (dict(self.bids), dict(self.asks))
        return DiffEvent(
            symbol=SYMBOL, first=first, last=self.uid, event_time=self.uid,
            bids=tuple((price(p), qty(q)) for p, q in bids.items()),
            asks=tuple((price(p), qty(q)) for p, q in asks.items()),
        )  # fmt: skip

    def snapshot(self, back: int, limit: int) -> RestBook:
        """The book ``back`` updates ago, ``limit`` levels a side, best first."""
        uids = sorted(self.states)
        uid = uids[max(0, len(uids) - 1 - back)]
        bids, asks = self.states[uid]
        return RestBook(
            last_update_id=uid,
            bids=tuple((price(p), qty(q)) for p, q in sorted(bids.items(), reverse=True)[:limit]),
            asks=tuple((price(p), qty(q)) for p, q in sorted(asks.items())[:limit]),
        )

    def top(self, uid: int, depth: int) -> tuple[list[tuple[D, D]], list[tuple[D, D]]]:
        bids, asks = self.states[uid]
        return (
            [(price(p), qty(q)) for p, q in sorted(bids.items(), reverse=True)[:depth]],
            [(price(p), qty(q)) for p, q in sorted(asks.items())[:depth]],
        )


class Pipeline:
    """Engine -> projection -> (hub view, client book) per depth, with a log per channel."""

    def __init__(self) -> None:
        self.fetch: int | None = None  # the limit of the snapshot the engine waits for
        self.seqs: dict[str, int] = {}
        self.projector = BookProjector(next_seq=self._next_seq, publish=self._publish)
        self.views = {c: BookView(c) for c in CHANNELS.values()}
        self.clients = {c: ClientBook(c) for c in CHANNELS.values()}
        self.log: dict[str, list[tuple[Any, ...]]] = {c: [] for c in CHANNELS.values()}
        self.engine = BookSync(SYMBOL, self, precision=(1, 3))
        for channel in CHANNELS.values():
            self.projector.open(parse_channel(channel))
        self.engine.want_depth(max(DEPTHS))

    def _next_seq(self, channel: str) -> int:
        self.seqs[channel] = self.seqs.get(channel, 0) + 1
        return self.seqs[channel]

    # -- the engine's owner (BookOwner) --------------------------------------------------------

    def book_event(self, update: BookUpdate) -> None:
        self.projector.on_update(update)

    def book_status(self, symbol: str, live: bool, reason: str | None) -> None:
        for channel in CHANNELS.values():
            status = client_messages.decode(encode_status(channel, live, 0, reason))
            assert isinstance(status, client_messages.Status)
            assert self.clients[channel].apply(status) is not RESYNC
            self.log[channel].append(("live",) if live else ("stale", reason))

    def book_fetch(self, symbol: str, why: Fetch, limit: int, delay: float) -> None:
        assert self.fetch is None, "one snapshot request at a time"
        self.fetch = limit

    # -- publications ----------------------------------------------------------------------

    def _publish(self, pub: Publication) -> None:
        self.views[pub.channel].apply(pub.seq, pub.payload)
        msg = client_messages.decode(pub.payload)
        assert isinstance(msg, client_messages.BookMessage)
        assert self.clients[pub.channel].apply(msg) is not RESYNC, self.clients[pub.channel].problem
        self.log[pub.channel].append(("snapshot", msg.reset) if msg.snapshot else ("diff",))


# (is_bid, ticks from the other side's best, lots): removals are frequent, so the levels the
# snapshot vouched for wear away and the coverage guard asks for refreshes
lots = st.sampled_from([0, 0, 0, 1, 2, 5])
changes = st.lists(st.tuples(st.booleans(), st.integers(0, 12), lots), min_size=1, max_size=6)
_STEP = {
    "diff": st.tuples(st.just("diff"), changes, st.integers(1, 3)),
    "answer": st.tuples(st.just("answer"), st.sampled_from([0, 0, 0, 0, 1, 3])),  # how many updates old
    "drop": st.tuples(st.just("drop"), changes, st.integers(1, 3)),
    "cross": st.tuples(st.just("cross")),
}
# mostly diffs, so books live long enough to drift and be refreshed; now and then a fault
steps = st.lists(
    st.sampled_from(["diff"] * 12 + ["answer"] * 3 + ["drop", "cross"]).flatmap(_STEP.__getitem__),
    min_size=20,
    max_size=100,
)


def check_sequences(log: list[tuple[Any, ...]]) -> None:
    """stale "book resync" -> snapshot (a reset, once one was sent) -> live, nothing between; a
    reset only after that stale; no other stale (a refresh shows no status)."""
    for i, entry in enumerate(log):
        if entry == ("stale", BOOK_RESYNC):
            after = [("snapshot", ("snapshot", False) in log[:i] or ("snapshot", True) in log[:i]), ("live",)]
            assert log[i + 1 : i + 3] == after[: len(log) - i - 1], log[i:]
        if entry == ("snapshot", True):
            assert log[i - 1] == ("stale", BOOK_RESYNC), log[: i + 1]
    assert {e for e in log if e[0] == "stale"} <= {("stale", BOOK_RESYNC)}


def check_books(pipe: Pipeline, venue: Venue) -> None:
    engine = pipe.engine
    for client in pipe.clients.values():
        assert client.resyncs == 0, client.problem  # every checksum verified, no seq gap
    if engine.reason is not None or engine.book is None:
        return  # stale: clients keep the last book they were sent, and get nothing until the reset
    for depth, channel in CHANNELS.items():
        if engine.book.covered() < depth:
            continue  # the refresh the guard asked for is pending: no snapshot vouches for those levels
        want = venue.top(engine.book.update_id, depth)
        client, view = pipe.clients[channel], pipe.views[channel]
        assert client.synced and client.seq == view.seq == pipe.seqs[channel]
        assert client.top(depth) == want, f"{channel} at {engine.book.update_id}"
        assert client.top(depth + 1) == want  # nothing held past the window
        assert list(map(list, view.levels())) == list(map(list, want))
        again = ClientBook(channel)  # the view's snapshot, as the state class would send it
        snapshot = client_messages.decode(view.snapshot_payload())
        assert isinstance(snapshot, client_messages.BookMessage) and again.apply(snapshot) is not RESYNC
        assert again.top(depth + 1) == want


@given(steps)
@settings(max_examples=120, deadline=None)
def test_random_diffs_through_engine_projection_view_and_client_book(script: list[tuple[Any, ...]]) -> None:
    with mock.patch.object(engine_module, "snapshot_limit", lambda depth: LIMIT):
        run(script)


def run(script: list[tuple[Any, ...]]) -> None:
    venue, pipe = Venue(), Pipeline()
    pipe.engine.on_diff(venue.update([(True, 0, 1)], 1))  # the first diff: the engine asks for a snapshot
    assert pipe.fetch is not None
    limit, pipe.fetch = pipe.fetch, None
    pipe.engine.on_snapshot(venue.snapshot(0, limit), venue.uid)  # live from the start
    assert all(entries == [("snapshot", False), ("live",)] for entries in pipe.log.values())
    for step in script:
        kind, book = step[0], pipe.engine.book
        live = pipe.engine.reason is None and book is not None
        before = {c: len(entries) for c, entries in pipe.log.items()}
        broken = False  # this step shows the engine a gap or a crossed book
        if kind in ("diff", "cross"):
            sent = venue.update(step[1], step[2]) if kind == "diff" else venue.bogus_cross()
            if live and book is not None:
                broken = sent.first > book.update_id + 1 or (kind == "cross" and bool(book.asks.prices))
            pipe.engine.on_diff(sent)
        elif kind == "drop":
            venue.update(step[1], step[2])  # never delivered: the next diff shows the gap
        elif pipe.fetch is not None:  # answer the engine's request, maybe with an older book
            limit, pipe.fetch = pipe.fetch, None
            pipe.engine.on_snapshot(venue.snapshot(step[1], limit), venue.uid)
        if broken:  # the channels are told stale, and get nothing else until the reset snapshot
            assert all(pipe.log[c][n:] == [("stale", BOOK_RESYNC)] for c, n in before.items())
        for entries in pipe.log.values():
            check_sequences(entries)
        check_books(pipe, venue)
    engine = pipe.engine
    for reason in engine.resyncs:
        event(f"resync: {reason}")
    event(f"refreshes swapped in: {min(engine.refreshes, 3)}")
    event(f"old snapshots fetched again: {min(engine.refetches, 1)}")
    event(
        f"diffs a client applied: {min(sum(e == ('diff',) for e in pipe.log[CHANNELS[10]]), 20) // 10 * 10}+"
    )
