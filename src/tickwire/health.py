"""Typed health of the parts that talk to the outside: what ``/health`` shows and
``/metrics`` reads. Pure data (msgspec Structs, camelCase on the wire)."""

from __future__ import annotations

import msgspec


__all__ = ["SourceHealth"]


class SourceHealth(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A source's state for ``/health`` (camelCase on the wire) and ``/metrics``.

    ``source`` and ``live`` are always there; a source fills the counters it
    has (a counter it does not have reads 0 and is left out of the JSON).
    Sources add their own fields in a subclass.
    """

    source: str
    live: bool
    reason: str | None = None
    streams: int = 0  # channels open upstream
    connections: int = 0  # upstream connections open now
    reconnects: int = 0  # since start, planned rotations not counted
    stale_streams: list[str] = []  # streams the watchdog considers stalled now
    rest_calls: int = 0  # REST requests sent since start
    rest_limited: int = 0  # REST answers 429/418 since start
    stream_names: list[str] | None = None  # set by an ingest that leads a cluster (Redis bus)
    stale_channels: list[str] | None = None  # set by the node for ``/health``
    follower: bool = False  # a ``--role gateway`` process: this is the leading ingest's upstream
    leader: str | None = None  # the node id of that ingest
    simulated: bool = False  # the data is invented by the simulated market
    book_resyncs: dict[str, int] = {}  # order book resyncs since start, by reason (gap, crossed, ...)
    rest_weight_used: int = 0  # REST request weight used this minute, per the venue's last answer
    snapshot_weight: int = 0  # REST request weight spent on order book snapshots since start
    backfill_runs: int = 0  # upstream gaps backfilled over REST since start (sources/binance/backfill.py)
    backfill_filled: int = 0  # events those backfills published
    backfill_lost: int = 0  # backfills that could not fill their whole gap (the live status says what)
    backfill_duplicates: int = 0  # buffered live events dropped: a backfill had published them
