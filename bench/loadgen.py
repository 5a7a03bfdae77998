"""Load generator: client processes, each with many picows connections.

The harness talks to each worker over a ``multiprocessing`` pipe with small
dict commands (``connect``, ``reset``, ``collect``, ``stall``, ``close``).
A connection counts the text frames it receives; one in ``sample_every``
also parses each frame's event time (the trade ``id``, in µs) for latency.
The receipt time is read once per socket read, not once per frame.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect


__all__ = ["Workers"]

_ID = b'"id":'
_SUBSCRIBED = b'{"type":"subscribed"'
_MAX_SAMPLES = 400_000


class Conn(WSListener):
    __slots__ = ("acks", "closed", "frames", "last", "lat", "now", "sample", "transport")

    def __init__(self, sample: bool, lat: list[int]) -> None:
        self.sample = sample
        self.lat = lat
        self.frames = 0
        self.acks = 0
        self.last = 0.0
        self.now = 0.0
        self.closed: int = 0  # the close code (picows gives a WSCloseCode, an int enum)
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = self.now
        if not now:
            now = self.now = time.time()
        if frame.last_in_buffer:
            self.now = 0.0
            self.last = now
        if frame.msg_type is WSMsgType.TEXT:
            self.frames += 1
            if self.sample:
                data = frame.get_payload_as_bytes()
                if data.startswith(_SUBSCRIBED):
                    self.acks += 1
                    return
                i = data.find(_ID)
                if i >= 0 and len(self.lat) < _MAX_SAMPLES:
                    j = data.find(b",", i)
                    self.lat.append(int(now * 1e6) - int(data[i + 5 : j]))
        elif frame.msg_type is WSMsgType.CLOSE:
            self.closed = frame.get_close_code() or 1005  # type: ignore[assignment]

    def subscribe(self, url: str, channels: list[str]) -> bytes:
        """The subscribe message this connection sends once open (W7's listener adds ``since``)."""
        return json.dumps({"type": "subscribe", "channels": channels}).encode()


def _small_rcvbuf(parsed: Any) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


class _Worker:
    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self.lat: list[int] = []
        self.base_frames = 0

    async def connect(
        self, url: str, specs: list[list[str]], sample_every: int, stall: list[int], listener: str = "count"
    ) -> int:
        """Open one connection per spec (its channels) and subscribe; returns how many are ready.

        ``listener`` names the connection class: ``count`` (:class:`Conn`), or one of
        :data:`bench.listeners.LISTENERS` (W6, W7).
        """
        from .listeners import LISTENERS

        make = Conn if listener == "count" else LISTENERS[listener]
        sem = asyncio.Semaphore(64)
        start = len(self.conns)
        stall_set = {start + s for s in stall}

        async def one(k: int, channels: list[str]) -> Conn | None:
            sample = True  # every connection checks its acks; only some keep latencies
            keep = sample_every > 0 and k % sample_every == 0 and k not in stall_set
            lat = self.lat if keep else []
            async with sem:
                for attempt in range(5):
                    try:
                        factory = _small_rcvbuf if k in stall_set else None
                        _, conn = await ws_connect(
                            lambda: make(sample, lat), url, socket_factory=factory, enable_auto_pong=True
                        )
                        break
                    except Exception:  # refused, reset, handshake timeout: retry
                        await asyncio.sleep(0.2 * (attempt + 1))
                else:
                    return None
            assert isinstance(conn, Conn) and conn.transport is not None
            conn.transport.send(WSMsgType.TEXT, conn.subscribe(url, channels))
            deadline = time.monotonic() + 30
            while conn.acks < len(channels) and time.monotonic() < deadline:  # noqa: ASYNC110 - polled by design
                await asyncio.sleep(0.05)
            conn.sample = keep
            if k in stall_set:
                conn.transport.underlying_transport.pause_reading()
            return conn

        results = await asyncio.gather(*(one(start + k, ch) for k, ch in enumerate(specs)))
        self.conns += [c for c in results if c is not None]
        return sum(1 for c in results if c is not None)

    def reset(self) -> None:
        self.lat.clear()
        for c in self.conns:
            c.frames = 0
            c.last = 0.0

    def collect(self, stalled: list[int]) -> dict[str, Any]:
        skip = set(stalled)
        fast = [c for k, c in enumerate(self.conns) if k not in skip]
        return {
            "frames": sum(c.frames for c in fast),
            "stalled_frames": sum(c.frames for k, c in enumerate(self.conns) if k in skip),
            "lat": list(self.lat),
            "last": [c.last for c in fast if c.last],
            "closed": [c.closed for c in self.conns if c.closed],
            "conns": len(self.conns),
        }

    async def close(self) -> None:
        for c in self.conns:
            if c.transport is not None and not c.transport.is_disconnected:
                c.transport.disconnect()
        self.conns.clear()
        await asyncio.sleep(0.2)


async def _serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: queue.put_nowait(pipe.recv()))
    os.set_blocking(pipe.fileno(), True)  # the loop made it non-blocking; big replies need blocking sends
    worker = _Worker()
    stalled: list[int] = []
    while True:
        cmd = await queue.get()
        op = cmd["op"]
        reply: Any = None
        if op == "connect":
            stalled = stalled + [len(worker.conns) + k for k in cmd.get("stall", [])]
            reply = await worker.connect(
                cmd["url"],
                cmd["specs"],
                cmd["sample_every"],
                cmd.get("stall", []),
                cmd.get("listener", "count"),
            )
        elif op == "reset":
            worker.reset()
        elif op == "collect":
            reply = worker.collect(stalled)
        elif op == "close":
            await worker.close()
            stalled = []
        elif op == "exit":
            pipe.send(None)
            return
        else:  # the workloads' own operations (W6 tallies, W7 drops and resumes)
            from .listeners import handle

            reply = await handle(worker.conns, cmd)
        pipe.send(reply)


def _worker_main(pipe: Connection) -> None:
    import resource

    import uvloop

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(_serve(pipe))


class Workers:
    """A pool of client processes; connections are spread round-robin over them."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def _all(self, cmds: list[dict[str, Any]], timeout: float = 120) -> list[Any]:
        for pipe, cmd in zip(self.pipes, cmds, strict=True):
            pipe.send(cmd)
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise TimeoutError("load generator did not answer")
            out.append(pipe.recv())
        return out

    def connect(
        self, url: str, specs: list[list[str]], *, sample_every: int, stall: frozenset[int] = frozenset(),
        listener: str = "count",
    ) -> int:  # fmt: skip
        n = len(self.pipes)
        parts: list[list[list[str]]] = [[] for _ in range(n)]
        stalls: list[list[int]] = [[] for _ in range(n)]
        for k, spec in enumerate(specs):
            if k in stall:
                stalls[k % n].append(len(parts[k % n]))
            parts[k % n].append(spec)
        cmds = [
            {
                "op": "connect",
                "url": url,
                "specs": p,
                "sample_every": sample_every,
                "stall": s,
                "listener": listener,
            }
            for p, s in zip(parts, stalls, strict=True)
        ]
        return sum(self._all(cmds, timeout=300))

    def reset(self) -> None:
        self._all([{"op": "reset"}] * len(self.pipes))

    def each(self, cmd: dict[str, Any], timeout: float = 120) -> list[Any]:
        """Send ``cmd`` to every worker; their replies, in worker order."""
        return self._all([cmd] * len(self.pipes), timeout=timeout)

    def collect(self) -> dict[str, Any]:
        merged: dict[str, Any] = {
            "frames": 0,
            "stalled_frames": 0,
            "lat": [],
            "last": [],
            "closed": [],
            "conns": 0,
        }
        for part in self._all([{"op": "collect"}] * len(self.pipes)):
            for key, value in part.items():
                merged[key] += value
        return merged

    def close(self) -> None:
        self._all([{"op": "close"}] * len(self.pipes))

    def exit(self) -> None:
        try:
            self._all([{"op": "exit"}] * len(self.pipes), timeout=10)
        except (TimeoutError, OSError, EOFError):
            pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
