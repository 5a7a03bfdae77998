"""The load generator's connections for W6 and W7, and the worker operations that drive them.

* :class:`TallyConn` (W6): counts the data frames of its channel, their
  payload bytes, the snapshots among them, and the seq span it saw, so the
  harness can tell diffs, snapshots and messages replaced by a snapshot apart.
* :class:`ResumeConn` (W7): keeps the position (epoch, seq) of each channel
  as a client library does, and on a reconnect subscribes again with
  ``since``. Its :class:`Client` state outlives the socket; it records when
  every channel was acked again and when the first live message (seq past
  the ack's) arrived, the outcome of each resume, and any seq gap or repeat
  on every-message channels (a recovered resume must show none).

The operations (``tally``, ``drop``, ``resume``, ``progress``, ``outcomes``)
reach a worker process through :meth:`bench.loadgen.Workers.each`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import msgspec
from picows import WSFrame, WSMsgType, WSTransport, ws_connect

from .loadgen import Conn


__all__ = ["LISTENERS", "Client", "ResumeConn", "TallyConn", "handle"]

_DATA = (b'{"type":"book"', b'{"type":"depth"')
_SUBSCRIBED = b'{"type":"subscribed"'
_SNAPSHOT = b'"snapshot":true'
_SEQ = b'"seq":'
_HEAD = 200  # bytes of a frame that hold its type, channel, seq and snapshot flag


class _Ack(msgspec.Struct):
    channel: str


_ack = msgspec.json.Decoder(_Ack)


def _seq(head: bytes) -> int:
    i = head.find(_SEQ) + len(_SEQ)
    j = i
    while head[j : j + 1].isdigit():
        j += 1
    return int(head[i:j])


class TallyConn(Conn):
    """One channel's data frames: count, payload bytes, snapshots, first and last seq."""

    __slots__ = ("channel", "first", "nbytes", "seq", "snap_bytes", "snaps")

    def __init__(self, sample: bool, lat: list[int]) -> None:
        super().__init__(sample, lat)
        self.channel = ""
        self.zero()

    def zero(self) -> None:
        self.frames = self.nbytes = self.snaps = self.snap_bytes = 0
        self.first = self.seq = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            if frame.msg_type is WSMsgType.CLOSE:
                self.closed = frame.get_close_code() or 1005  # type: ignore[assignment]
            return
        head = bytes(frame.get_payload_as_memoryview()[:_HEAD])
        if head.startswith(_DATA):
            size = frame.payload_size
            self.frames += 1
            self.nbytes += size
            self.seq = _seq(head)
            self.first = self.first or self.seq
            if _SNAPSHOT in head:
                self.snaps += 1
                self.snap_bytes += size
        elif head.startswith(_SUBSCRIBED):
            self.acks += 1
            self.channel = _ack.decode(frame.get_payload_as_bytes()).channel


def _tally(conns: list[Conn], zero: bool) -> dict[str, dict[str, int]]:
    """Sums per channel since the last zero: frames, bytes, snapshots, seqs published meanwhile."""
    out: dict[str, dict[str, int]] = {}
    for c in conns:
        if not isinstance(c, TallyConn):
            continue
        t = out.setdefault(c.channel, Counter())
        t["clients"] += 1
        t["frames"] += c.frames
        t["bytes"] += c.nbytes
        t["snapshots"] += c.snaps
        t["snapshot_bytes"] += c.snap_bytes
        t["span"] += c.seq - c.first + 1 if c.first else 0  # seqs this client could have had
        t["closed"] += 1 if c.closed else 0
        if zero:
            c.zero()
    return {k: dict(v) for k, v in out.items()}


# -- W7: positions and resumes -------------------------------------------------------


class _Msg(msgspec.Struct):
    """The fields of any server frame that a resuming client reads."""

    type: str
    channel: str | None = None
    seq: int | None = None
    epoch: str | None = None
    recovered: bool | None = None
    replayed: int | None = None
    reason: str | None = None
    snapshot: bool = False


_msg = msgspec.json.Decoder(_Msg)


class Client:
    """One client across its connections: positions, and what its last (re)subscribe gave."""

    def __init__(self) -> None:
        self.url = ""
        self.channels: list[str] = []
        self.positions: dict[str, tuple[str, int]] = {}  # channel -> (epoch, last seq processed)
        self.acked: dict[str, int] = {}  # channel -> the seq of this connection's ack
        self.outcomes: Counter[str] = Counter()  # "trades:recovered", "trades:epoch_changed" ...
        self.replayed = self.gaps = self.repeats = 0
        self.t_acked = self.t_live = 0.0

    def forget(self) -> None:
        """Start the tally of a new storm (the positions stay)."""
        self.outcomes.clear()
        self.replayed = self.gaps = self.repeats = 0

    def since(self) -> dict[str, dict[str, Any]]:
        return {ch: {"epoch": e, "seq": s} for ch, (e, s) in self.positions.items() if ch in self.channels}

    def ack(self, msg: _Msg, now: float) -> None:
        channel, epoch, seq = msg.channel or "", msg.epoch or "", msg.seq or 0
        if msg.recovered is not None:
            kind = channel.split(":", 1)[0]
            self.outcomes[f"{kind}:{'recovered' if msg.recovered else msg.reason}"] += 1
            self.replayed += msg.replayed or 0
        if not msg.recovered:  # a new start: the snapshot (or the next live message) follows
            self.positions[channel] = (epoch, seq)
        self.acked[channel] = seq
        if len(self.acked) == len(self.channels):
            self.t_acked = now

    def data(self, channel: str, seq: int, snapshot: bool, now: float) -> None:
        epoch, last = self.positions.get(channel, ("", 0))
        # every message matters on trades: no gap, nothing twice (a snapshot repeats the last one
        # by design, after a fresh subscribe or a resume that was not recovered)
        if channel.startswith("trades:") and not snapshot:
            if seq > last + 1:
                self.gaps += 1
            elif seq <= last:
                self.repeats += 1
        self.positions[channel] = (epoch, seq)
        if self.t_acked and not self.t_live and seq > self.acked.get(channel, seq):
            self.t_live = now


class ResumeConn(Conn):
    """A connection of a :class:`Client`: subscribes with ``since`` when the client has positions."""

    __slots__ = ("client",)

    def __init__(self, sample: bool, lat: list[int], client: Client | None = None) -> None:
        super().__init__(sample, lat)
        self.client = client or Client()

    def subscribe(self, url: str, channels: list[str]) -> bytes:
        c = self.client
        c.url, c.channels = url, channels
        c.acked, c.t_acked, c.t_live = {}, 0.0, 0.0
        msg: dict[str, Any] = {"type": "subscribe", "channels": channels}
        if c.positions:
            msg["since"] = c.since()
        return json.dumps(msg).encode()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            if frame.msg_type is WSMsgType.CLOSE:
                self.closed = frame.get_close_code() or 1005  # type: ignore[assignment]
            return
        self.frames += 1
        msg = _msg.decode(frame.get_payload_as_bytes())
        if msg.type == "subscribed":
            self.acks += 1
            self.client.ack(msg, time.time())
        elif msg.seq is not None and msg.channel is not None:
            self.client.data(msg.channel, msg.seq, msg.snapshot, time.time())


async def _resume(conns: list[Conn], swap: dict[str, str]) -> int:
    """Reconnect every client at once (no pacing: a load balancer's restart), with ``since``."""

    async def one(old: ResumeConn) -> Conn | None:
        client = old.client
        client.forget()
        url = swap.get(client.url, client.url)
        for attempt in range(8):
            try:
                _, conn = await ws_connect(lambda: ResumeConn(False, [], client), url, enable_auto_pong=True)
                break
            except Exception:  # refused, reset, handshake timeout: retry as a client would
                await asyncio.sleep(0.1 * (attempt + 1))
        else:
            return None
        assert isinstance(conn, ResumeConn) and conn.transport is not None
        conn.transport.send(WSMsgType.TEXT, conn.subscribe(url, client.channels))
        return conn

    olds = [c for c in conns if isinstance(c, ResumeConn)]
    news = await asyncio.gather(*(one(c) for c in olds))
    conns[:] = [c for c in news if c is not None]
    return len(conns)


def _progress(conns: list[Conn], t0: float) -> dict[str, Any]:
    clients = [c.client for c in conns if isinstance(c, ResumeConn)]
    return {
        "clients": len(clients),
        "acked": [c.t_acked - t0 for c in clients if c.t_acked],
        "live": [c.t_live - t0 for c in clients if c.t_live],
    }


def _outcomes(conns: list[Conn]) -> dict[str, Any]:
    total: Counter[str] = Counter()
    out = {"replayed": 0, "gaps": 0, "repeats": 0, "closed": 0}
    for c in conns:
        if isinstance(c, ResumeConn):
            total.update(c.client.outcomes)
            out["replayed"] += c.client.replayed
            out["gaps"] += c.client.gaps
            out["repeats"] += c.client.repeats
            out["closed"] += 1 if c.closed else 0
    return {**out, "outcomes": dict(total)}


async def handle(conns: list[Conn], cmd: dict[str, Any]) -> Any:
    """One workload operation on this worker's connections."""
    match cmd["op"]:
        case "tally":
            return _tally(conns, cmd.get("zero", False))
        case "drop":  # the load balancer goes away: every socket closes, the clients keep their state
            for c in conns:
                if c.transport is not None and not c.transport.is_disconnected:
                    c.transport.disconnect()
            return len(conns)
        case "resume":
            return await _resume(conns, cmd.get("swap", {}))
        case "progress":
            return _progress(conns, cmd["t0"])
        case "outcomes":
            return _outcomes(conns)
    raise ValueError(f"unknown load generator operation {cmd['op']!r}")


LISTENERS: dict[str, type[Conn]] = {"tally": TallyConn, "resume": ResumeConn}
"""Connection classes by the name :meth:`bench.loadgen.Workers.connect` takes."""
