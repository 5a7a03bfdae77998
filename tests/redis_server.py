"""A real ``redis-server`` for tests, and real ``tickwire serve`` processes.

Every process started here is killed in a ``finally`` (or by its context
manager), and everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import eventually_sync, free_port


__all__ = ["Node", "RedisServer", "run_node", "run_redis"]


class RedisServer:
    """One redis-server process; :meth:`stop` and :meth:`start` again on the same port (a restart)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed: run `make system-deps`")
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.directory), "--protected-mode", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually_sync(self._answers, 5, "redis-server to accept connections")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def run_redis(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Node:
    """A ``tickwire serve`` child process on 127.0.0.1."""

    def __init__(self, role: str, redis_url: str, *, port: int | None = None, extra: list[str] | None = None):
        self.role = role
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        args = [sys.executable, "-m", "tickwire", "serve", "--role", role, "--host", "127.0.0.1"]
        args += [
            "--port",
            str(self.port),
            "--redis-url",
            redis_url,
            "--linger",
            "1",
            "--log-level",
            "warning",
        ]
        args += ["--shutdown-timeout", "1", *(extra or [])]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child never blocks
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.role} exited with {self.process.returncode}: {self.output()[-2000:]}")
        try:
            self.health()
        except OSError:
            return False
        return True

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@contextlib.contextmanager
def run_node(role: str, redis_url: str, **kwargs: Any) -> Iterator[Node]:
    node = Node(role, redis_url, **kwargs)
    try:
        eventually_sync(node.answers, 15, f"tickwire {role} to answer /health")
        yield node
    finally:
        node.kill()
