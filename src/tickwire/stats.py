"""Plain counters on one object; ``server/metrics.py`` and ``/api/v1/ws/stats`` read them.

Hot paths only add to integers here; nothing is rendered until asked. The
one histogram the hot path feeds (end-to-end latency) is a list of integer
bucket counts per channel kind, observed once per publication in
:meth:`Stats.on_deliver` (the hub's ``on_deliver`` hook), never once per
subscriber.

Methods other modules call (each is one or two integer additions):

* sessions (``session.SessionStats``): :meth:`count_in`, :meth:`count_error`,
  :meth:`count_conflated`, :meth:`count_slow`, :meth:`count_written`,
  :meth:`count_dropped`, :meth:`count_book_snapshot`, :meth:`count_throttled`;
* the hub: :meth:`on_deliver`, :meth:`count_resume`;
* the server and the abuse limits: :meth:`count_rejected`;
* the publish API: :meth:`count_publish`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable

from .channels import Kind
from .clock import wall_ms
from .errors import ErrorCode
from .publications import Publication


__all__ = ["LATENCY_BUCKETS_MS", "Stats"]

LATENCY_BUCKETS_MS: tuple[int, ...] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
"""Upper bounds (ms, inclusive) of the latency histogram; one more bucket is +Inf."""


class Stats:
    """Counters for one node.

    Args:
        clock_ms: wall clock in ms epoch, the clock of ``Publication.event_time``.
    """

    def __init__(self, *, clock_ms: Callable[[], int] = wall_ms) -> None:
        self._clock_ms = clock_ms
        self.connections_current = 0
        self.connections_opened = 0
        self.connections_closed: Counter[int] = Counter()  # by close code
        self.rejected_connections: Counter[str] = Counter()  # by reason
        self.messages_in = 0  # client frames received
        self.messages_out = 0  # deliveries: one per subscriber per publication
        self.messages_out_by_kind: Counter[str] = Counter()
        self.publications_by_kind: Counter[str] = Counter()  # channel messages in, one per publication
        self.bytes_out = 0  # bytes written to client sockets (WebSocket frames)
        self.errors: Counter[str] = Counter()
        self.conflated = 0
        self.throttled: Counter[str] = Counter()  # by channel kind: frames a throttle dropped
        self.dropped = 0  # frames discarded unsent because their client was closed
        self.slow_disconnects = 0
        self.book_snapshots = 0  # book snapshots queued instead of a slow client's pending diffs
        self.publish_requests: Counter[int] = Counter()  # by HTTP status
        self.publish_messages = 0  # channel messages accepted by the publish API
        self.writes = 0  # socket writes of client frames (one per client per flush)
        self.resumes: Counter[str] = Counter()  # ``since`` answered: "recovered" or the reason
        buckets = len(LATENCY_BUCKETS_MS) + 1
        self.latency_buckets: dict[str, list[int]] = {k.value: [0] * buckets for k in Kind}
        self.latency_sum_ms: Counter[str] = Counter()

    # -- SessionStats ----------------------------------------------------------

    def count_in(self) -> None:
        self.messages_in += 1

    def count_error(self, code: ErrorCode) -> None:
        self.errors[code.value] += 1

    def count_conflated(self, subscribers: int = 1) -> None:
        """Latest values replaced before they were written: in one client's outbox
        (``1``), or in the hub before fan-out (one per subscriber that missed it)."""
        self.conflated += subscribers

    def count_throttled(self, channel: str, frames: int = 1) -> None:
        """``frames`` held frames (or book diffs) of a throttled subscription to ``channel``,
        superseded before their due time."""
        self.throttled[channel.partition(":")[0]] += frames

    def count_slow(self) -> None:
        self.slow_disconnects += 1

    def count_book_snapshot(self) -> None:
        """A client's pending book diffs were replaced by the channel's snapshot."""
        self.book_snapshots += 1

    def count_written(self, nbytes: int) -> None:
        """One coalesced socket write of ``nbytes``."""
        self.bytes_out += nbytes
        self.writes += 1

    def count_flush(self, writes: int, nbytes: int) -> None:
        """One node-level flush: ``writes`` socket writes of ``nbytes`` in all."""
        self.bytes_out += nbytes
        self.writes += writes

    def count_dropped(self, frames: int) -> None:
        """``frames`` queued for a client were discarded when it was closed."""
        self.dropped += frames

    # -- Hub.on_deliver ----------------------------------------------------------

    def on_deliver(self, pub: Publication, subscribers: int) -> None:
        """Once per publication the hub fanned out, with its local subscriber count."""
        kind = pub.channel.partition(":")[0]
        self.publications_by_kind[kind] += 1
        if not subscribers:
            return
        self.messages_out += subscribers
        self.messages_out_by_kind[kind] += subscribers
        if pub.event_time > 0:
            latency = max(0, self._clock_ms() - pub.event_time)
            counts = self.latency_buckets.get(kind)
            if counts is None:
                return  # not a channel kind: keep the label set bounded
            counts[bisect_left(LATENCY_BUCKETS_MS, latency)] += 1
            self.latency_sum_ms[kind] += latency

    def count_resume(self, result: str) -> None:
        """One channel of a ``subscribe`` with ``since``: ``recovered`` or the reason it was not."""
        self.resumes[result] += 1

    # -- server, limits, publish API -----------------------------------------------

    def count_rejected(self, reason: str) -> None:
        """A connection refused by a limit; ``reason`` is one of a fixed set
        (``per_ip``, ``total``, ``origin``, ``auth``, ``shutting_down``)."""
        self.rejected_connections[reason] += 1

    def count_publish(self, status: int, messages: int = 1) -> None:
        """One publish API request answered with HTTP ``status``.

        Args:
            status: the HTTP status sent (200, 400, 401, 413, ...).
            messages: channel messages it published (a batch has many);
                counted only for a 2xx answer.
        """
        self.publish_requests[status] += 1
        if 200 <= status < 300:
            self.publish_messages += messages
