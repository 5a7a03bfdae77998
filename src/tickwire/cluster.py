"""Scale-out wiring: the bus a setting names, a gateway's view of a remote
upstream, and ``--workers N`` (N gateway processes on one port plus an ingest).

Roles (``--role``): ``all`` holds clients and competes to hold the upstream;
``gateway`` holds clients only and follows the leading ingest through Redis;
``ingest`` holds the upstream only and serves ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, cast

from .bus.base import Bus
from .bus.memory import MemoryBus
from .channels import Channel
from .config import Settings
from .errors import ConfigError, ErrorCode, ProtocolError
from .sources.base import SourceSink


if TYPE_CHECKING:
    from .bus.redis import RedisBus


__all__ = ["FollowerSource", "as_redis", "make_bus", "run_workers"]

logger = logging.getLogger("tickwire.cluster")


def make_bus(settings: Settings) -> Bus:
    """The memory bus, or the Redis bus when ``--redis-url`` is set (imported lazily)."""
    if not settings.redis_url:
        return MemoryBus()
    try:
        from .bus.redis import RedisBus
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("--redis-url needs the redis extra: pip install 'tickwire[redis]'") from exc
    return RedisBus(
        settings.redis_url,
        upstream=settings.source,
        prefix=settings.redis_prefix,
        can_lead=settings.role != "gateway",
    )


def as_redis(bus: Bus) -> RedisBus | None:
    """``bus`` as a :class:`RedisBus`, or None (without importing redis for the memory bus)."""
    return cast("RedisBus", bus) if bus.name == "redis" else None


class FollowerSource:
    """The upstream as a ``--role gateway`` process sees it: through the leading ingest.

    It opens nothing itself (demand travels as leases); its health is the
    leader's, read from Redis. Symbols are validated against the list the
    leader publishes; while no list is published (no leader yet, or a source
    that does not list its symbols), any well-formed market channel is
    accepted and an unknown symbol simply stays silent.
    """

    def __init__(self, bus: RedisBus, name: str) -> None:
        self._bus = bus
        self.name = name

    def attach(self, sink: SourceSink) -> None:
        return None

    async def run(self) -> None:
        return None

    async def validate(self, channel: Channel) -> None:
        if channel.symbol is None:
            return
        if await self._bus.known_symbol(channel.symbol) is False:
            raise ProtocolError(
                ErrorCode.UNKNOWN_SYMBOL,
                f"the {self.name} upstream does not list {channel.symbol}",
                channel=channel.name,
            )

    def open(self, channel: Channel) -> None:
        return None

    def close(self, channel: Channel) -> None:
        return None

    def streams(self) -> list[str]:
        info = self._bus.ingest_info or {}
        upstream = info.get("upstream") or {}
        streams = upstream.get("streamNames") if isinstance(upstream, dict) else None
        return list(streams) if isinstance(streams, list) else []

    def health(self) -> dict[str, object]:
        info = self._bus.ingest_info
        if info is None:
            return {"source": self.name, "live": False, "follower": True, "reason": "no ingest leader"}
        upstream = info.get("upstream")
        health = dict(upstream) if isinstance(upstream, dict) else {}
        health.setdefault("source", self.name)
        health["live"] = bool(health.get("live")) and self._bus.connected
        health["follower"] = True
        health["leader"] = info.get("node")
        return health


# -- --workers N ---------------------------------------------------------------------


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
    from .config import OPTIONS

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
