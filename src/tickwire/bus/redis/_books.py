"""Order books across a cluster: the snapshot key, and how a gateway syncs a book channel from it.

Theory of operation (docs/multi-node.md, "Order books"):

* **The key.** The leading ingest owns each book (``books.BookProjector``)
  and publishes its diffs like any publication, through the seq-guarded
  script. Its :class:`SnapshotWriter` also stores every open book channel's
  snapshot at the seq of the channel's last publication in ``P:{CH}:book``
  (the bus message layout of ``P:{CH}:last``): at once after a snapshot
  publication (open, reset), else at most once per ``interval`` while diffs
  flow. :data:`WRITE_SNAPSHOT` refuses a snapshot whose publication is not
  in Redis yet (``P:{CH}:seq`` below it; retried shortly) or that is not
  newer than the stored one, so the key is always a true state of the
  channel's history at a seq every gateway can receive or has received.
* **Joining a flowing channel.** For a book channel :meth:`BookReader.read`
  (the bus's ``last``) reads the key, the status and ``P:{CH}:seq`` in one
  MGET, after the SUBSCRIBE is confirmed. A snapshot at S is *usable* when
  every diff after it reaches this node: S >= that seq (all later ones come
  on pub/sub), or S >= F - 1 where F starts the run of contiguous seqs this
  node received (the hub's view holds them and catches up). Otherwise the
  diffs between S and F were published before the SUBSCRIBE and are lost
  here: it polls the key until the next write, rather than let the view
  serve S and then a gap.
* **A gap.** A publication that does not follow the newest seen (a
  reconnect, a message lost) starts a new run; :meth:`BookReader.gap` then
  re-reads the key in the background until a snapshot is usable and no newer
  than what pub/sub delivered, and hands it to the hub as a re-delivery,
  which the hub offers to the channel's view: a view that broke is whole
  again from the key, one that is whole ignores it. A client is never
  served a book the gateway cannot continue, only a later one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from ...backoff import backoff
from ...publications import ChannelStatus, Publication
from ._link import Link
from ._wire import as_bytes, decode_message, encode_publication


__all__ = ["BOOK_TTL_MS", "WRITE_SNAPSHOT", "BookReader", "SnapshotWriter", "book_key", "is_book", "usable"]

logger = logging.getLogger("tickwire.bus.redis")

BOOK_TTL_MS = 24 * 3600 * 1000  # a key its leader could not delete (killed) does not stay forever

# KEYS: seq, book. ARGV: the snapshot's seq, its bus message, ttl ms.
# Returns 1 when stored, 0 when the stored snapshot is as new, -1 when the
# snapshot's own publication is not in Redis yet (the caller retries).
WRITE_SNAPSHOT = """
local seq = tonumber(ARGV[1])
if seq > tonumber(redis.call('GET', KEYS[1]) or '0') then return -1 end
local held = redis.call('GETRANGE', KEYS[2], 0, 24)
local at = tonumber(string.match(held, '^P(%d+)') or '0')
if at >= seq then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""


def is_book(channel: str) -> bool:
    return channel.startswith("book:")


def book_key(prefix: str, channel: str) -> str:
    """``P:{CH}:book``: the channel's snapshot, in the hash slot of its other keys."""
    return f"{prefix}:{{{channel}}}:book"


def is_snapshot(payload: bytes) -> bool:
    """Whether a book message is a snapshot, without decoding it: ``protocol.encode_book``
    writes ``"snapshot":true`` before ``"data"``, and a diff has no such field."""
    head = payload.find(b'"data"')
    return payload.find(b'"snapshot":true', 0, head if head >= 0 else len(payload)) >= 0


def usable(snapshot: int, stored: int, run: int | None) -> bool:
    """Whether a snapshot at ``snapshot`` continues without a gap on this node.

    Args:
        stored: the channel's seq in Redis, read with the snapshot.
        run: the first seq of the run of contiguous seqs this node received
            (None: nothing received since its SUBSCRIBE).
    """
    return snapshot >= stored or (run is not None and snapshot >= run - 1)


class SnapshotWriter:
    """The leading ingest's writes of ``P:{CH}:book``.

    Args:
        link: the shared client and key names.
        snapshot: the ingest's snapshot of a channel at its last publication (None: no book).
        leading: whether this node leads (only the leader writes).
        interval: seconds between two writes of a channel while only diffs flow.
        retry: seconds before retrying a snapshot whose publication was not in Redis yet.
    """

    def __init__(
        self,
        link: Link,
        *,
        snapshot: Callable[[str], Publication | None],
        leading: Callable[[], bool],
        interval: float = 1.0,
        retry: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._link = link
        self._snapshot = snapshot
        self._leading = leading
        self._interval = interval
        self._retry = retry
        self._clock = clock
        self._script = link.redis.register_script(WRITE_SNAPSHOT)
        self._urgent: set[str] = set()  # a snapshot was published: write now
        self._dirty: set[str] = set()  # diffs were published: write when the interval is over
        self._forget: set[str] = set()  # the channel closed: delete its key
        self._written: dict[str, float] = {}  # channel -> clock() of its last write
        self._retry_at: float | None = None
        self._wake = asyncio.Event()
        self.writes: dict[str, int] = {}  # keys written, per channel (tests, health)

    def touch(self, pub: Publication) -> None:
        """The ingest published ``pub`` on a book channel."""
        if not self._leading():
            return
        channel = pub.channel
        if is_snapshot(pub.payload):
            self._urgent.add(channel)
            self._wake.set()
        elif channel not in self._dirty:
            self._dirty.add(channel)
            self._wake.set()

    def forget(self, channel: str) -> None:
        """The ingest closed ``channel``: its snapshot is no longer the channel's state."""
        self._urgent.discard(channel)
        self._dirty.discard(channel)
        self._written.pop(channel, None)
        if self._leading():
            self._forget.add(channel)
            self._wake.set()

    async def book_loop(self) -> None:
        """Write due snapshots; sleep until the next one is due."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep())
            self._wake.clear()
            if not self._leading():  # a new leader writes its own
                for pending in (self._urgent, self._dirty, self._forget):
                    pending.clear()
                self._written.clear()
                continue
            try:
                await self._step()
            except (RedisError, OSError) as exc:
                logger.debug("book snapshot write failed: %s", exc)
                self._retry_at = self._clock() + 0.2

    def _sleep(self) -> float | None:
        """Seconds until the next write is due (None: nothing to write)."""
        if self._urgent or self._forget:
            return 0.0
        due = [self._written.get(c, 0.0) + self._interval for c in self._dirty]
        if self._retry_at is not None:
            due.append(self._retry_at)
        return max(0.0, min(due) - self._clock()) if due else None

    async def _step(self) -> None:
        now = self._clock()
        self._retry_at = None
        prefix = self._link.keys.prefix
        forget, self._forget = sorted(self._forget), set()
        due = sorted(
            self._urgent | {c for c in self._dirty if now >= self._written.get(c, 0.0) + self._interval}
        )
        snapshots = [(c, self._snapshot(c)) for c in due]
        async with self._link.redis.pipeline(transaction=False) as pipe:
            if forget:
                await pipe.delete(*(book_key(prefix, c) for c in forget))
            for channel, pub in snapshots:
                if pub is not None:
                    keys = [self._link.keys.seq(channel), book_key(prefix, channel)]
                    args: list[bytes | int] = [pub.seq, encode_publication(pub), BOOK_TTL_MS]
                    await self._script(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        results = results[1:] if forget else results
        done = [(c, p) for c, p in snapshots if p is not None]
        for (channel, _), result in zip(done, results, strict=True):
            if int(result) < 0:  # its publication is still in the outbox: soon
                self._retry_at = now + self._retry
                continue
            if int(result) > 0:
                self._written[channel] = now
                self.writes[channel] = self.writes.get(channel, 0) + 1
            self._urgent.discard(channel)
            self._dirty.discard(channel)
        for channel, pub in snapshots:
            if pub is None:  # not open any more, or no book: nothing to store
                self._urgent.discard(channel)
                self._dirty.discard(channel)


class BookReader:
    """A gateway's reads of ``P:{CH}:book``: on subscribe, and after a gap.

    Args:
        link: the shared client and key names.
        wanted: the channels this node wants (the hub side's set, read only).
        seen: the newest seq delivered per wanted channel (the hub side's, read only).
        deliver: hands a publication to the hub as pub/sub would.
        timeout: seconds :meth:`read` waits for a usable snapshot.
        poll: seconds between two reads of the key while waiting.
    """

    def __init__(
        self,
        link: Link,
        *,
        wanted: set[str],
        seen: dict[str, int],
        deliver: Callable[[Publication], None],
        timeout: float = 2.0,
        poll: float = 0.05,
    ) -> None:
        self._link = link
        self._wanted = wanted
        self._seen = seen
        self._deliver = deliver
        self._timeout = timeout
        self._poll = poll
        self._runs: dict[str, int] = {}  # channel -> first seq of the run received now
        self._reads: dict[str, asyncio.Task[tuple[Publication | None, ChannelStatus | None]]] = {}
        self._syncs: dict[str, asyncio.Task[None]] = {}
        self.resyncs = 0  # snapshots handed over after a gap
        self.waits = 0  # reads that waited for a newer key (the key predated diffs lost here)

    def run(self, channel: str) -> int | None:
        """The first seq of the contiguous run received (None: nothing yet)."""
        return self._runs.get(channel, 1 if channel in self._seen else None)

    async def fetch(self, channel: str) -> tuple[Publication | None, ChannelStatus | None, int]:
        """(the key's snapshot, the channel's status, the channel's seq), read at once."""
        keys = self._link.keys
        raw_book, raw_status, raw_seq = await self._link.redis.mget(
            book_key(keys.prefix, channel), keys.status(channel), keys.seq(channel)
        )
        book = decode_message(as_bytes(raw_book)) if raw_book is not None else None
        status = decode_message(as_bytes(raw_status)) if raw_status is not None else None
        return (
            book if isinstance(book, Publication) else None,
            status if isinstance(status, ChannelStatus) else None,
            int(raw_seq or 0),
        )

    # -- on subscribe ---------------------------------------------------------------

    async def read(self, channel: str) -> tuple[Publication | None, ChannelStatus | None]:
        """The bus's ``last`` of a book channel: a usable snapshot, or None when none comes in time.

        Concurrent reads of one channel (many clients resubscribing) share one.

        Raises:
            RedisError, OSError: Redis failed.
        """
        task = self._reads.get(channel)
        if task is None:
            task = self._reads[channel] = asyncio.get_running_loop().create_task(self._read(channel))
            task.add_done_callback(lambda t: self._read_done(channel, t))
        return await asyncio.shield(task)

    def _read_done(self, channel: str, task: asyncio.Task[object]) -> None:
        if self._reads.get(channel) is task:
            del self._reads[channel]
        if not task.cancelled():
            task.exception()  # retrieved here too: every reader may have been cancelled

    async def _read(self, channel: str) -> tuple[Publication | None, ChannelStatus | None]:
        deadline = time.monotonic() + self._timeout
        waited = False
        while True:
            book, status, stored = await self.fetch(channel)
            ok = book is not None and usable(book.seq, stored, self.run(channel))
            if ok or stored == 0 or (status is not None and not status.live):
                # usable; or nothing published yet (the first snapshot comes on pub/sub);
                # or stale (the greeting is the status, and a reset snapshot follows)
                return (book if ok else None), status
            if time.monotonic() >= deadline:
                return None, status  # the background sync of gap() delivers it later
            if not waited:
                waited = True
                self.waits += 1
            await asyncio.sleep(self._poll)

    # -- after a gap ------------------------------------------------------------------

    def gap(self, channel: str, seq: int) -> None:
        """Pub/sub delivered ``seq`` after a gap (or first): a new run starts; sync from the key."""
        self._runs[channel] = seq
        if channel not in self._syncs:
            task = asyncio.get_running_loop().create_task(self._sync(channel), name=f"book-sync {channel}")
            self._syncs[channel] = task
            task.add_done_callback(
                lambda t: self._syncs.pop(channel, None) if self._syncs.get(channel) is t else None
            )

    async def _sync(self, channel: str) -> None:
        delays = backoff(initial=self._poll, max_delay=1.0, rng=random.Random())
        while channel in self._wanted:
            try:
                book, _, _ = await self.fetch(channel)
            except (RedisError, OSError):
                book = None  # the read loop reconnects; try again
            run, seen = self.run(channel), self._seen.get(channel, 0)
            if channel not in self._wanted:
                return
            if book is not None and run is not None and run - 1 <= book.seq <= seen:
                # no newer than what pub/sub delivered: the hub takes it as a re-delivery
                self.resyncs += 1
                self._deliver(book)
                return
            await asyncio.sleep(next(delays))

    def drop(self, channel: str) -> None:
        """``channel`` is no longer wanted."""
        self._runs.pop(channel, None)
        sync = self._syncs.pop(channel, None)
        if sync is not None:
            sync.cancel()

    def close(self) -> None:
        for task in (*self._syncs.values(), *self._reads.values()):
            task.cancel()
        self._syncs.clear()
        self._reads.clear()
