"""Plain counters on one object; ``metrics.py`` and ``/api/v1/ws/stats`` read them.

Hot paths only add to integers here; nothing is rendered until asked.
"""

from __future__ import annotations

from collections import Counter

from .errors import ErrorCode
from .publications import Publication


__all__ = ["Stats"]


class Stats:
    def __init__(self) -> None:
        self.connections_current = 0
        self.connections_opened = 0
        self.connections_closed: Counter[int] = Counter()  # by close code
        self.messages_in = 0
        self.messages_out = 0  # deliveries: one per subscriber per publication
        self.messages_out_by_kind: Counter[str] = Counter()
        self.publications_by_kind: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.conflated = 0
        self.slow_disconnects = 0
        self.rejected_connections: Counter[str] = Counter()  # by reason

    # SessionStats
    def count_in(self) -> None:
        self.messages_in += 1

    def count_error(self, code: ErrorCode) -> None:
        self.errors[code.value] += 1

    def count_conflated(self) -> None:
        self.conflated += 1

    def count_slow(self) -> None:
        self.slow_disconnects += 1

    # Hub.on_deliver
    def on_deliver(self, pub: Publication, subscribers: int) -> None:
        kind = pub.channel.partition(":")[0]
        self.publications_by_kind[kind] += 1
        if subscribers:
            self.messages_out += subscribers
            self.messages_out_by_kind[kind] += subscribers
