"""What the Redis bus puts into Redis: key names, message bytes and Lua scripts (pure).

Keys live under a prefix ``P``; ``{CH}`` is a Redis Cluster hash tag, so the
keys of one channel share a slot and one script may touch them all:

* ``P:{CH}:seq``, ``P:{CH}:last``, ``P:{CH}:status``: a channel's newest seq,
  last value and status;
* ``P:pub:CH``: the pub/sub channel of CH; ``P:demand``: new demand;
* ``P:lease:NODE:CH``: a node's demand lease (node ids have no colons);
* ``P:lock:UPSTREAM``, ``P:ingest:UPSTREAM``, ``P:symbols:UPSTREAM``: the
  leader lock, the leader's summary and its symbol list.

Nothing here does I/O; :mod:`tickwire.bus.redis` runs it.
"""

from __future__ import annotations

from ...publications import ChannelStatus, Publication


__all__ = [
    "PUBLISH",
    "PUBLISH_NEXT",
    "SENTINEL",
    "SEQ_AT_LEAST",
    "SEQ_TTL_MS",
    "Keys",
    "as_bytes",
    "decode_message",
    "encode_publication",
    "encode_status",
    "split_template",
]

SEQ_TTL_MS = 30 * 24 * 3600 * 1000  # a channel's seq outlives any quiet period
SENTINEL = 987_654_321_987_654_321  # the seq placeholder of publish-API templates

# KEYS: seq, last. ARGV: pub/sub channel, seq, message, seq ttl ms.
# Returns 0 when published, else the stored seq (the caller is behind).
PUBLISH = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[2]) <= stored then return stored end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[3])
return 0
"""

# KEYS: seq, last. ARGV: pub/sub channel, channel, event time, frame head, frame tail, seq ttl ms.
# The frame is head .. seq .. tail; the message layout is encode_publication's.
PUBLISH_NEXT = """
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local msg = 'P' .. seq .. '\\n1\\n' .. ARGV[3] .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[4] .. seq .. ARGV[5]
redis.call('SET', KEYS[2], msg)
redis.call('PUBLISH', ARGV[1], msg)
return seq
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

    def lease(self, node: str, channel: str) -> str:
        return f"{self.lease_prefix}{node}:{channel}"

    def parse_lease(self, key: str) -> tuple[str, str]:
        node, _, channel = key[len(self.lease_prefix) :].partition(":")
        return node, channel


def as_bytes(value: bytes | str) -> bytes:
    """A value read from Redis as bytes."""
    return value if isinstance(value, bytes) else value.encode()
