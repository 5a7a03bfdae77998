"""Processes the cluster workloads start: a ``redis-server`` and ``tickwire serve`` nodes on 127.0.0.1.

Used by :mod:`bench.multinode`, :mod:`bench.books` (W6) and :mod:`bench.storm`
(W7). Every process is started inside :func:`processes` and killed when it
exits, Redis last; each listens on a free loopback port. A node's stderr (its
log) goes to a temporary file: at the end one line says how much it logged
and its last line, so a storm of handshake errors does not flood the bench's
output but is not hidden either.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO


__all__ = ["Node", "cpu_seconds", "free_port", "processes", "start_node", "start_redis", "wait_http"]

Procs = list[subprocess.Popen[bytes]]
_TICK = os.sysconf("SC_CLK_TCK")
_logs: dict[int, tuple[str, IO[bytes]]] = {}  # pid -> (the node's address, its stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # answering (503 while the leader warms up is fine)
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer")


@contextlib.contextmanager
def processes() -> Iterator[Procs]:
    procs: Procs = []
    try:
        yield procs
    finally:
        for p in reversed(procs):  # gateways first, Redis last
            if p.poll() is None:
                p.kill()
            p.wait()
            _report_log(p.pid)


def _report_log(pid: int) -> None:
    if pid not in _logs:
        return
    address, log = _logs.pop(pid)
    log.seek(0)
    lines = log.read().decode(errors="replace").splitlines()
    log.close()
    if lines:
        print(f"    (node {address} logged {len(lines)} lines; the last: {lines[-1][:160]})", flush=True)


def start_redis(procs: Procs, directory: str) -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (make system-deps)")
    port = free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.append(
        subprocess.Popen([*args, "--dir", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise TimeoutError("redis-server did not start")


class Node:
    """One ``tickwire serve`` process: its address and its process."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.address = f"127.0.0.1:{port}"
        self.url = f"ws://{self.address}/ws"

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


def start_node(
    procs: Procs, role: str = "all", redis_url: str | None = None, extra: Sequence[str] = ()
) -> Node:
    """Start ``tickwire serve`` (no ``TICKWIRE_*`` variables of ours leak in) and wait until it answers."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "tickwire",
        "serve",
        "--role",
        role,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    args += ["--log-level", "warning", "--max-connections", "100000", *extra]
    if redis_url is not None:
        args += ["--redis-url", redis_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    env.pop("PYTHONASYNCIODEBUG", None)  # debug mode slows every loop several-fold
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
    procs.append(proc)
    node = Node(proc, port)
    _logs[proc.pid] = (node.address, log)
    wait_http(f"http://{node.address}/health")
    return node
