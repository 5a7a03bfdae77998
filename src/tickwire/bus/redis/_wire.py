"""What the Redis bus puts into Redis: key names, message bytes and Lua scripts (pure).

Keys live under a prefix ``P``; ``{CH}`` is a Redis Cluster hash tag, so the
keys of one channel share a slot and one script may touch them all:

* ``P:{CH}:seq``, ``P:{CH}:last``, ``P:{CH}:status``: a channel's newest seq,
  last value and status;
* ``P:{CH}:epoch``, ``P:{CH}:hist``: the name of the channel's unbroken
  history of seq, and that history: a stream whose entry ids are
  ``<seq>-0`` for a publication and ``<seq>-N`` (N >= 1) for the status
  frames after it (see "History in Redis" below);
* ``P:pub:CH``: the pub/sub channel of CH; ``P:demand``: new demand;
* ``P:lease:NODE:CH``: a node's demand lease (node ids have no colons);
* ``P:lock:UPSTREAM``, ``P:ingest:UPSTREAM``, ``P:symbols:UPSTREAM``: the
  leader lock, the leader's summary and its symbol list.

Nothing here does I/O; :mod:`tickwire.bus.redis` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ...history import DEFAULT_MAX_AGE_MS, DEFAULT_SIZES
from ...publications import ChannelStatus, Publication


__all__ = [
    "EPOCH",
    "HISTORY",
    "HISTORY_IDLE_MS",
    "PUBLISH",
    "PUBLISH_NEXT",
    "SENTINEL",
    "SEQ_AT_LEAST",
    "SEQ_TTL_MS",
    "STATUS",
    "EpochChange",
    "Keys",
    "StreamLimits",
    "as_bytes",
    "decode_epoch",
    "decode_message",
    "encode_publication",
    "encode_status",
    "split_template",
    "stream_after",
]

SEQ_TTL_MS = 30 * 24 * 3600 * 1000  # a channel's seq outlives any quiet period
SENTINEL = 987_654_321_987_654_321  # the seq placeholder of publish-API templates

HISTORY_IDLE_MS = 3600 * 1000
"""How long the stream of a kind without an age limit outlives its last message (a crashed
ingest's channels; a released channel's keys are deleted at once)."""

# -- History in Redis ----------------------------------------------------------------
#
# Every script that writes a channel first makes sure it has an epoch
# (open_epoch in _LIB): when P:{CH}:epoch is missing, Redis lost the channel's keys (or
# the ingest released the channel and deleted them), so the history starts
# again: the old stream is deleted, the epoch is set to the caller's random
# token and announced on the channel's pub/sub as ``E<epoch>``, before the
# message that follows, so every gateway holding the channel starts its ring
# again at the same point. The epoch lives as long as the seq (SEQ_TTL_MS,
# renewed by every write); the stream only HISTORY_IDLE_MS, or the kind's age.
#
# remember() appends to P:{CH}:hist with MAXLEN ~ size. A stream starts with a
# marker entry (``M``) at the position before its first message: its id is
# ``<s0>-0`` (``0-1`` when s0 is 0, as 0-0 is not a valid id). So a reader
# that finds the entry ``<seq>-0`` (a publication or the marker) knows the
# stream holds every message after position seq: MAXLEN trims only the oldest
# entries. The XADD is NOMKSTREAM, so a missing stream (its first message, or
# expired) and an XADD refused as "smaller than the top" (the seq key was lost
# while the stream stayed) both start the stream again with a marker.
_LIB = """
local function mark_id(s0)
  if s0 == 0 then return '0-1' end
  return s0 .. '-0'
end
local function open_epoch(token, pubch, ttl)
  local epoch = redis.call('GET', KEYS[3])
  if epoch then
    redis.call('PEXPIRE', KEYS[3], ttl)
    return epoch, false
  end
  redis.call('DEL', KEYS[4])
  redis.call('SET', KEYS[3], token, 'PX', ttl)
  redis.call('PUBLISH', pubch, 'E' .. token)
  return token, true
end
local function remember(id, s0, msg, size, ttl)
  if size <= 0 then return end
  local added = redis.pcall('XADD', KEYS[4], 'NOMKSTREAM', 'MAXLEN', '~', size, id, 'm', msg)
  if not added or (type(added) == 'table' and added.err) then
    redis.call('DEL', KEYS[4])
    redis.call('XADD', KEYS[4], mark_id(s0), 'm', 'M')
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', size, id, 'm', msg)
  end
  redis.call('PEXPIRE', KEYS[4], ttl)
end
"""

# KEYS: seq, last, epoch, hist. ARGV: pub/sub channel, seq, message, seq ttl ms,
# epoch token, history size, history ttl ms.
# Returns 0 when published, the new epoch when published as the first message of one,
# else the stored seq (the caller is behind). A plain integer in the common case: an
# array per publication costs the ingest more to parse than the script costs Redis.
PUBLISH = (
    _LIB
    + """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = tonumber(ARGV[2])
if seq <= stored then return stored end
local epoch, created = open_epoch(ARGV[5], ARGV[1], ARGV[4])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('SET', KEYS[2], ARGV[3])
local s0 = stored
if created then s0 = seq - 1 end
remember(ARGV[2] .. '-0', s0, ARGV[3], tonumber(ARGV[6]), ARGV[7])
redis.call('PUBLISH', ARGV[1], ARGV[3])
if created then return epoch end
return 0
"""
)

# KEYS: seq, last, epoch, hist. ARGV: pub/sub channel, channel, event time, frame head,
# frame tail, seq ttl ms, epoch token, history size, history ttl ms.
# The frame is head .. seq .. tail; the message layout is encode_publication's. Returns {seq, epoch}.
PUBLISH_NEXT = (
    _LIB
    + """
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local epoch = open_epoch(ARGV[7], ARGV[1], ARGV[6])
local msg = 'P' .. seq .. '\\n1\\n' .. ARGV[3] .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[4] .. seq .. ARGV[5]
redis.call('SET', KEYS[2], msg)
remember(seq .. '-0', seq - 1, msg, tonumber(ARGV[8]), ARGV[9])
redis.call('PUBLISH', ARGV[1], msg)
return {seq, epoch}
"""
)

# KEYS: seq, status, epoch, hist. ARGV: pub/sub channel, message, seq ttl ms, epoch token,
# history size, history ttl ms. Returns the new epoch if it made one, else 0.
# A status enters the history only when it changes the channel's state (stale <-> live;
# a first status only when stale), the rule the hub follows before fanning one out.
STATUS = (
    _LIB
    + """
local previous = redis.call('GET', KEYS[2])
local epoch, created = open_epoch(ARGV[4], ARGV[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
local live = string.sub(ARGV[2], 2, 2)
if (previous and string.sub(previous, 2, 2) ~= live) or (not previous and live == '0') then
  local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
  remember(stored .. '-*', stored, ARGV[2], tonumber(ARGV[5]), ARGV[6])
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
if created then return epoch end
return 0
"""
)

# KEYS: seq, last, epoch, hist. ARGV: pub/sub channel, epoch token, seq ttl ms.
# The channel's epoch, made now when missing (a gateway asks before anything was published).
EPOCH = (
    _LIB
    + """
local epoch = open_epoch(ARGV[2], ARGV[1], ARGV[3])
return epoch
"""
)

# KEYS: epoch, hist. ARGV: first id, last id, count. The epoch and the stream's entries in
# that range, read in one step so they belong together.
HISTORY = """
local epoch = redis.call('GET', KEYS[1]) or false
return {epoch, redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[2], 'COUNT', ARGV[3])}
"""

# KEYS: seq. ARGV: seq, ttl ms. Raise the stored seq to at least ARGV[1].
SEQ_AT_LEAST = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > stored then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 0
"""


# -- the messages on the wire (pure) --------------------------------------------
#
# One line-oriented layout that a Lua script can build by concatenation:
#   P<seq>\n<final 0|1>\n<event time ms>\n<channel>\n<payload>
#   S<live 0|1>\n<time ms>\n<channel>\n<reason>
#   S<live 0|1>\n<time ms> <gap from> <gap to>\n<channel>\n<reason>   (a live status with a gap)
# A channel name never contains a newline (channels.py); payload and reason
# come last, so they may. A status without a gap keeps the first layout byte for
# byte, so gateways of either version read each other's; only a gap is new.


def encode_publication(pub: Publication) -> bytes:
    head = b"P%d\n%d\n%d\n%s\n" % (pub.seq, pub.final, pub.event_time, pub.channel.encode())
    return head + pub.payload


def encode_status(status: ChannelStatus) -> bytes:
    reason = (status.reason or "").encode()
    at = b"%d" % status.time if status.gap is None else b"%d %d %d" % (status.time, *status.gap)
    return b"S%d\n%s\n%s\n%s" % (status.live, at, status.channel.encode(), reason)


def decode_message(data: bytes) -> Publication | ChannelStatus:
    """The inverse of :func:`encode_publication` and :func:`encode_status`.

    Raises:
        ValueError: not a message of this bus.
    """
    kind, body = data[:1], data[1:]
    if kind == b"P":
        seq, final, event_time, channel, payload = body.split(b"\n", 4)
        return Publication(channel.decode(), int(seq), payload, final == b"1", int(event_time))
    if kind == b"S":
        live, at, channel, reason = body.split(b"\n", 3)
        time, *gap = (int(n) for n in at.split(b" "))
        if len(gap) not in (0, 2):
            raise ValueError(f"not a bus status: {data[:40]!r}")
        lost = (gap[0], gap[1]) if gap else None
        return ChannelStatus(channel.decode(), live == b"1", reason.decode() or None, time, lost)
    raise ValueError(f"not a bus message: {data[:20]!r}")


class EpochChange(NamedTuple):
    """``E<epoch>`` on a channel's pub/sub: its history begins again as ``epoch``."""

    channel: str
    epoch: str


def decode_epoch(channel: str, data: bytes) -> EpochChange | None:
    """The epoch announced by ``data``, or None when it is another message."""
    return EpochChange(channel, data[1:].decode()) if data[:1] == b"E" else None


def _entry_id(raw: bytes | str) -> tuple[int, int]:
    ms, _, n = as_bytes(raw).partition(b"-")
    return int(ms), int(n)


def stream_after(entries: list[Any], after: int) -> list[Publication | ChannelStatus] | None:
    """The messages after position ``after`` in an XRANGE read from ``<after>-0``, or None
    when they cannot be proven whole.

    Whole means: the first entry is ``<after>-0`` (that publication, or the
    marker a stream starts with), so nothing after it was trimmed; and the
    publications that follow continue its seq without a hole.
    """
    if not entries:
        return None
    first_id, first = entries[0]
    if _entry_id(first_id)[0] != after or _field(first)[:1] not in (b"P", b"M"):
        return None
    found: list[Publication | ChannelStatus] = []
    top = after
    for _, fields in entries[1:]:
        raw = _field(fields)
        if raw[:1] == b"M":
            continue
        msg = decode_message(raw)
        if isinstance(msg, Publication):
            if msg.seq != top + 1:
                return None  # a hole (publications the ingest dropped)
            top = msg.seq
        found.append(msg)
    return found


def _field(fields: list[Any] | dict[Any, Any]) -> bytes:
    """The ``m`` field of a stream entry (its only one): a flat list as a script returns it,
    or a dict as redis-py's XRANGE parses it."""
    return as_bytes(next(iter(fields.values())) if isinstance(fields, dict) else fields[1])


class StreamLimits:
    """How much history a channel's stream keeps: entries (``MAXLEN ~``) and expiry, by kind.

    Args:
        sizes: entries per channel by kind, the ``--history`` settings (a kind missing: none).
        max_age_ms: kinds kept for a time (signals, private: 24 h): their streams expire after it.
        idle_ms: when other kinds' streams expire after their last message.
    """

    def __init__(
        self,
        sizes: Mapping[str, int] = DEFAULT_SIZES,
        max_age_ms: Mapping[str, int] = DEFAULT_MAX_AGE_MS,
        *,
        idle_ms: int = HISTORY_IDLE_MS,
    ) -> None:
        self._sizes = dict(sizes)
        self._max_age_ms = dict(max_age_ms)
        self._idle_ms = idle_ms

    def of(self, channel: str) -> tuple[int, int]:
        """(entries kept, expiry in ms) of ``channel``'s stream; 0 entries: no stream."""
        kind = channel.partition(":")[0]
        return self._sizes.get(kind, 0), self._max_age_ms.get(kind, self._idle_ms)


def split_template(frame: bytes) -> tuple[bytes, bytes]:
    """Cut a frame encoded with seq :data:`SENTINEL` into the parts before and after the seq.

    Raises:
        ValueError: the frame has no top-level ``"seq":SENTINEL``.
    """
    marker = b'"seq":%d' % SENTINEL
    at = frame.find(marker)
    if at < 0:
        raise ValueError("encode(seq) must put the seq in a top-level 'seq' field")
    return frame[: at + len(b'"seq":')], frame[at + len(marker) :]


class Keys:
    """The key and pub/sub channel names of one deployment (``prefix``) and upstream."""

    def __init__(self, prefix: str, upstream: str) -> None:
        self.prefix = prefix
        self.demand = f"{prefix}:demand"
        self.lock = f"{prefix}:lock:{upstream}"
        self.ingest = f"{prefix}:ingest:{upstream}"
        self.symbols = f"{prefix}:symbols:{upstream}"
        self.lease_prefix = f"{prefix}:lease:"
        self._pub_prefix = f"{prefix}:pub:"

    def node(self, node: str) -> str:
        """The node's own pub/sub channel, which keeps an idle connection subscribed."""
        return f"{self.prefix}:node:{node}"

    def pub(self, channel: str) -> str:
        return self._pub_prefix + channel

    def channel_of(self, pubsub_channel: str) -> str | None:
        return (
            pubsub_channel[len(self._pub_prefix) :] if pubsub_channel.startswith(self._pub_prefix) else None
        )

    def seq(self, channel: str) -> str:
        return f"{self.prefix}:{{{channel}}}:seq"

    def last(self, channel: str) -> str:
        return f"{self.prefix}:{{{channel}}}:last"

    def status(self, channel: str) -> str:
        return f"{self.prefix}:{{{channel}}}:status"

    def epoch(self, channel: str) -> str:
        return f"{self.prefix}:{{{channel}}}:epoch"

    def hist(self, channel: str) -> str:
        return f"{self.prefix}:{{{channel}}}:hist"

    def lease(self, node: str, channel: str) -> str:
        return f"{self.lease_prefix}{node}:{channel}"

    def parse_lease(self, key: str) -> tuple[str, str]:
        node, _, channel = key[len(self.lease_prefix) :].partition(":")
        return node, channel


def as_bytes(value: bytes | str) -> bytes:
    """A value read from Redis as bytes."""
    return value if isinstance(value, bytes) else value.encode()
