"""``--workers N``: N gateway processes on one port (SO_REUSEPORT) plus one ingest.

A plain supervisor: the parent starts the children with the same settings
(as ``TICKWIRE_*`` variables), forwards SIGINT/SIGTERM to them, and starts a
child that died again after a short pause. The children share the upstream
through the Redis bus (docs/multi-node.md).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

from ..config import OPTIONS, Settings
from ..errors import ConfigError


__all__ = ["run_workers"]

logger = logging.getLogger("tickwire.workers")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _child(settings: Settings, role: str, port: int) -> list[str]:
    args = [sys.executable, "-m", "tickwire", "serve", "--role", role, "--workers", "1"]
    args += ["--host", settings.host, "--port", str(port)]
    if role == "gateway":
        args.append("--reuse-port")
    return args


def run_workers(settings: Settings) -> int:
    """Run ``settings.workers`` gateway processes on one port plus one ingest; returns the exit code.

    The children read every other setting from the environment, which the
    parent fills from its own settings. SIGINT/SIGTERM to the parent is
    forwarded to every child; a child that dies is started again after a
    short pause (at most once per second per child).
    """
    if not settings.redis_url:
        raise ConfigError("--workers needs --redis-url (env TICKWIRE_REDIS_URL)")
    port = settings.port or _free_port(settings.host)
    ingest_port = _free_port(settings.host)
    env = dict(os.environ)
    env.update(_env_of(settings))
    wanted = [("ingest", ingest_port)] + [("gateway", port)] * settings.workers
    children: list[subprocess.Popen[bytes] | None] = [None] * len(wanted)
    started = [0.0] * len(wanted)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    logger.info(
        "tickwire: %d gateway workers on http://%s:%s/, ingest health on port %s",
        settings.workers, settings.host, port, ingest_port,
    )  # fmt: skip
    try:
        while not stopping:
            for i, (role, child_port) in enumerate(wanted):
                child = children[i]
                if (child is None or child.poll() is not None) and time.monotonic() - started[i] > 1.0:
                    if child is not None:
                        logger.warning(
                            "worker %s (pid %s) exited with %s; restarting", role, child.pid, child.returncode
                        )
                    started[i] = time.monotonic()
                    children[i] = subprocess.Popen(_child(settings, role, child_port), env=env)
            time.sleep(0.2)
        deadline = time.monotonic() + settings.shutdown_timeout + 5
        for child in children:
            if child is not None:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
    finally:
        for child in children:
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _env_of(settings: Settings) -> dict[str, str]:
    """Every setting as its TICKWIRE_* variable, so a child process gets the same ones."""
    env: dict[str, str] = {}
    for opt in OPTIONS:
        value = getattr(settings, opt.field)
        if value is None or opt.field in {"role", "workers", "port", "host", "reuse_port"}:
            continue
        if isinstance(value, bool):
            env[opt.env] = "true" if value else "false"
        elif isinstance(value, tuple):
            env[opt.env] = ",".join(value)
        else:
            env[opt.env] = str(value)
    return env
