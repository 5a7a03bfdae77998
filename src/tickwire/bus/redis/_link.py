"""What both sides of the Redis bus share: one client, the key names, this node's id."""

from __future__ import annotations

import os
import random
import re
import socket
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import msgspec
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...backoff import backoff
from ...health import SourceHealth
from ...logs import REDACTED
from ._wire import Keys


__all__ = ["IngestInfo", "Link", "decode_info", "node_id", "safe_url"]


def node_id() -> str:
    """This process's id in leases and the lock: host, pid and a random suffix, no colons."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{random.randbytes(3).hex()}"


def safe_url(url: str) -> str:
    """``url`` with its password masked (``redis://:[redacted]@host:6379/0``), for log lines.

    The log filter masks URL passwords too; this keeps them out of a host's own handlers.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}"))


class IngestInfo(msgspec.Struct, kw_only=True, rename="camel"):
    """What the leading ingest writes to Redis every reconcile step (expires with it)."""

    node: str
    upstream: SourceHealth | None
    cluster_demand: int
    demand_by_node: dict[str, int]
    time: int


def decode_info(raw: bytes) -> IngestInfo | None:
    try:
        return msgspec.json.decode(raw, type=IngestInfo)
    except msgspec.ValidationError:  # written by another version: no leader info until it is rewritten
        return None


class Link:
    """The connection holder of one :class:`~tickwire.bus.redis.RedisBus`.

    ``ingest_info`` is the leader's summary as this node last read it (hub
    side, with its lease renewal) or wrote it (ingest side, while leading).
    """

    def __init__(
        self,
        url: str,
        *,
        keys: Keys,
        node: str,
        clock_ms: Callable[[], int],
        rng: random.Random,
    ) -> None:
        self.url = url
        self.safe_url = safe_url(url)
        self.keys = keys
        self.node = node
        self.clock_ms = clock_ms
        self._rng = rng
        self.redis: Redis = Redis.from_url(
            url,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            retry=Retry(NoBackoff(), 0),  # our loops retry, with backoff; redis-py must not hide outages
            health_check_interval=5,
        )
        self.ingest_info: IngestInfo | None = None

    def backoff(self) -> Iterator[float]:
        """Reconnect delays: jittered, from 0.2 s doubling to a cap of 5 s."""
        return backoff(initial=0.2, max_delay=5.0, rng=self._rng)
