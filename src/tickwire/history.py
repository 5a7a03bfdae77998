"""History per channel: a ring of recent frames, so a reconnecting client can resume.

Pure: no asyncio, no clock reads (the hub passes ``now_ms``), no I/O.

Theory of operation (docs/resume.md):

* A channel of a kind that keeps history (``trades``, ``klines``, ``signals``
  and the private kinds) has one :class:`Ring` while the hub holds it. The
  hub appends each publication once (never once per subscriber) and each
  status frame it fanned out; a ring keeps the JSON payloads as they were
  sent, so a replay is byte for byte what the live subscribers got.
* A ring is one unbroken run of ``seq``: a publication that does not follow
  the newest one (a gap on the bus) empties it and starts again. ``floor``
  is the lowest position a client may resume from: every message after it
  is in the ring. Evicting a publication raises ``floor`` to its seq;
  evicting a status frame raises it past the publication before it, since a
  client there would miss that status.
* Three bounds evict oldest first: a size per kind, an age for kinds that
  keep history for a time (signals and private channels: 24 h), and one
  memory cap for all rings of a node. The memory cap needs the globally
  oldest entry: a FIFO of (ring, append number) records the order of every
  append; references to entries a ring already dropped by itself are
  skipped when met and compacted away when they are half the FIFO.
* Latest-value kinds (``price``, ``ticker``, ``depth``) keep no ring: they
  recover by snapshot. ``book`` channels keep a small one (100 entries) of
  their diffs, so a client whose book is in step resumes with the diffs it
  missed; a snapshot publication starts the ring again at its seq
  (:meth:`Ring.restart`), so a client from before it gets the current
  snapshot instead (docs/book.md, "Resume of books").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping


__all__ = [
    "DEFAULT_MAX_AGE_MS",
    "DEFAULT_MEMORY",
    "DEFAULT_REPLAY_CAP",
    "DEFAULT_SIZES",
    "ENTRY_OVERHEAD",
    "HISTORY_KINDS",
    "History",
    "Ring",
    "normal_sizes",
    "parse_bytes",
    "parse_sizes",
    "recovers_by_snapshot",
]

_PRIVATE = ("orders", "portfolio", "account")

HISTORY_KINDS = ("trades", "klines", "signals", "book", *_PRIVATE)
"""Channel kinds that may keep a ring (``--history KIND=N``; ``private`` names the three private kinds)."""

DEFAULT_SIZES: Mapping[str, int] = {
    "trades": 2000,
    "klines": 300,
    "signals": 1000,
    "book": 100,  # diffs: past 100 a snapshot is the cheaper way back (PROTOCOL.md)
} | dict.fromkeys(_PRIVATE, 1000)
"""Messages kept per channel, by kind (docs/protocol.md, "resume")."""

DEFAULT_MAX_AGE_MS: Mapping[str, int] = dict.fromkeys(("signals", *_PRIVATE), 24 * 3600 * 1000)
"""Kinds whose entries also expire with age: published events, kept 24 h."""

DEFAULT_MEMORY = 256 * 1024 * 1024
"""Bytes all rings of a node may hold (``--history-memory``)."""

DEFAULT_REPLAY_CAP = 500
"""Most frames replayed for one channel; more is ``too_many`` (a snapshot instead)."""

ENTRY_OVERHEAD = 160
"""Bytes an entry costs beside its payload (tuple, deque slot, FIFO reference), for the memory cap."""

_SNAPSHOT_PREFIXES = ("price:", "ticker:", "depth:", "book:")


def recovers_by_snapshot(channel: str) -> bool:
    """Whether a snapshot recovers the channel (latest-value and book kinds): a resume that
    cannot replay still answers ``recovered: true``. A book replays its ring when it can."""
    return channel.startswith(_SNAPSHOT_PREFIXES)


class _Budget:
    """Bytes and entries held by every ring of one :class:`History`."""

    __slots__ = ("bytes", "entries")

    def __init__(self) -> None:
        self.bytes = 0
        self.entries = 0


# an entry: (seq, is_status, payload, time_ms); a status has the seq of the publication before it
_Entry = tuple[int, bool, bytes, int]


class Ring:
    """The recent history of one channel; made by :meth:`History.ring`.

    Attributes:
        floor: the lowest ``seq`` a client may resume from (every later message is here).
        top: the newest publication's ``seq`` (None until the hub knows the channel's position).
    """

    __slots__ = ("_budget", "appended", "closed", "dropped", "entries", "floor", "max_age_ms", "size", "top")

    def __init__(self, size: int, max_age_ms: int, budget: _Budget) -> None:
        self.size = size
        self.max_age_ms = max_age_ms  # 0: no expiry by age
        self.entries: deque[_Entry] = deque()
        self.floor = 0
        self.top: int | None = None
        self.appended = 0  # entries ever appended (the FIFO of the memory cap counts with it)
        self.dropped = 0  # entries ever evicted from the left
        self.closed = False
        self._budget = budget

    def start(self, seq: int) -> None:
        """The channel's position when the hub opened it (the bus's newest seq, 0 when none)."""
        if self.top is None:
            self.floor = self.top = seq

    def add(self, seq: int, payload: bytes, now_ms: int) -> None:
        """Append a publication; a seq that does not follow ``top`` starts the ring again."""
        if self.top is None or seq != self.top + 1:
            self.clear()
            self.floor = seq - 1
        self.top = seq
        self._push((seq, False, payload, now_ms))

    def add_status(self, payload: bytes, now_ms: int) -> None:
        """Append a status frame (it sits after the publication ``top``)."""
        if self.top is None:
            return  # before the position is known nobody can resume into it
        self._push((self.top, True, payload, now_ms))

    def _push(self, entry: _Entry) -> None:
        self.entries.append(entry)
        self.appended += 1
        self._budget.bytes += len(entry[2]) + ENTRY_OVERHEAD
        self._budget.entries += 1
        while len(self.entries) > self.size:
            self.evict()

    def evict(self) -> None:
        """Drop the oldest entry, raising ``floor`` past what it held."""
        seq, is_status, payload, _ = self.entries.popleft()
        self.dropped += 1
        self._budget.bytes -= len(payload) + ENTRY_OVERHEAD
        self._budget.entries -= 1
        self.floor = max(self.floor, seq + 1 if is_status else seq)

    def expire(self, now_ms: int) -> None:
        """Drop entries older than ``max_age_ms``."""
        if not self.max_age_ms:
            return
        oldest = now_ms - self.max_age_ms
        entries = self.entries
        while entries and entries[0][3] < oldest:
            self.evict()

    def clear(self) -> None:
        """Drop every entry (a gap in seq, or the channel was released)."""
        while self.entries:
            self.evict()

    def restart(self, seq: int) -> None:
        """A book snapshot published at ``seq``: what came before it is of no use to a
        resume (the client gets the current snapshot), so the ring starts again there."""
        self.clear()
        self.floor = self.top = seq

    def after(self, seq: int) -> list[bytes]:
        """The payloads after position ``seq``, in order: publications above it and the
        status frames that followed it. The caller checked ``floor <= seq <= top``."""
        found: list[bytes] = []
        for entry_seq, is_status, payload, _ in reversed(self.entries):
            if entry_seq < seq or (entry_seq == seq and not is_status):
                break
            found.append(payload)
        found.reverse()
        return found


class History:
    """The rings of one node, under one memory cap.

    Args:
        sizes: messages kept per channel, by kind; a kind missing or at 0 keeps none.
        max_age_ms: per kind, how long entries are kept (a kind missing: no age limit).
        max_bytes: the memory cap of all rings together; the oldest entries go first.
        replay_cap: most frames replayed for one channel.
    """

    def __init__(
        self,
        *,
        sizes: Mapping[str, int] = DEFAULT_SIZES,
        max_age_ms: Mapping[str, int] = DEFAULT_MAX_AGE_MS,
        max_bytes: int = DEFAULT_MEMORY,
        replay_cap: int = DEFAULT_REPLAY_CAP,
    ) -> None:
        self.sizes = dict(sizes)
        self.max_age_ms = dict(max_age_ms)
        self.max_bytes = max_bytes
        self.replay_cap = replay_cap
        self._budget = _Budget()
        self._order: deque[tuple[Ring, int]] = deque()  # every append, oldest first
        self.evicted_for_memory = 0

    @classmethod
    def none(cls) -> History:
        """A history that keeps nothing (every channel recovers by snapshot or not at all)."""
        return cls(sizes={})

    @property
    def held_bytes(self) -> int:
        """Bytes all rings hold (payloads plus ``ENTRY_OVERHEAD`` each)."""
        return self._budget.bytes

    @property
    def held_entries(self) -> int:
        return self._budget.entries

    def ring(self, channel: str) -> Ring | None:
        """A new ring for ``channel``, or None when its kind keeps no history."""
        kind = channel.partition(":")[0]
        size = self.sizes.get(kind, 0)
        if size <= 0:
            return None
        return Ring(size, self.max_age_ms.get(kind, 0), self._budget)

    def append(self, ring: Ring, seq: int, payload: bytes, now_ms: int) -> None:
        """One publication of ``ring``'s channel (the hub calls this once per publication)."""
        ring.add(seq, payload, now_ms)
        self._appended(ring, now_ms)

    def append_status(self, ring: Ring, payload: bytes, now_ms: int) -> None:
        before = ring.appended
        ring.add_status(payload, now_ms)
        if ring.appended != before:
            self._appended(ring, now_ms)

    def _appended(self, ring: Ring, now_ms: int) -> None:
        self._order.append((ring, ring.appended - 1))
        ring.expire(now_ms)
        order = self._order
        while self._budget.bytes > self.max_bytes and order:
            owner, index = order.popleft()
            if not owner.closed and index >= owner.dropped:  # still held: the oldest of all
                owner.evict()
                self.evicted_for_memory += 1
        if len(order) > 2 * self._budget.entries + 1024:
            self._compact()

    def _compact(self) -> None:
        """Forget FIFO references to entries their ring already dropped (amortized O(1))."""
        self._order = deque((r, i) for r, i in self._order if not r.closed and i >= r.dropped)

    def release(self, ring: Ring) -> None:
        """The hub let the channel go: its entries are freed now."""
        ring.clear()
        ring.closed = True


def parse_sizes(raw: str) -> tuple[tuple[str, int], ...]:
    """``--history``: ``KIND=N,...`` (``private=N`` sets orders, portfolio and account).

    Raises:
        ValueError: with a reason starting "must", for the one-line start-up error.
    """
    sizes: dict[str, int] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        kind, sep, count = part.partition("=")
        kind = kind.strip()
        if not sep or not count.strip().isdigit():
            raise ValueError(f"must be KIND=N,... with N a whole number 0 or more (got {part!r})")
        if kind not in (*HISTORY_KINDS, "private"):
            why = " (it recovers by snapshot)" if recovers_by_snapshot(kind + ":") else ""
            raise ValueError(
                f"must name kinds that keep history: {', '.join(HISTORY_KINDS)} or private; not {kind!r}{why}"
            )
        for name in _PRIVATE if kind == "private" else (kind,):
            sizes[name] = int(count)
    return tuple(sizes.items())


def normal_sizes(raw: str) -> str:
    """``--history`` checked and spelled out (``private=5`` is ``orders=5,portfolio=5,account=5``):
    a plain string, so the setting travels through the environment to ``--workers`` children."""
    return ",".join(f"{kind}={n}" for kind, n in parse_sizes(raw))


_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2, "g": 1024**3, "gib": 1024**3}


def parse_bytes(raw: str) -> int:
    """``--history-memory``: bytes, or with a unit (``512MiB``, ``1g``); at least 1 MiB."""
    text = raw.strip().lower().replace(" ", "")
    digits = len(text) - len(text.lstrip("0123456789"))
    number, unit = text[:digits], text[digits:]
    if not number or unit not in _UNITS:
        raise ValueError("must be a size in bytes, or with a unit: 256MiB, 1GiB")
    value = int(number) * _UNITS[unit]
    if value < 1024**2:
        raise ValueError("must be at least 1MiB")
    return value
