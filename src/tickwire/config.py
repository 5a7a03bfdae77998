"""Settings: one frozen object, filled from flags, each with an env-var twin.

Decision: a frozen dataclass filled by argparse rather than
pydantic-settings, to keep the dependency list short; the option table
below is the single place a setting is declared. A flag wins over its
``TICKWIRE_*`` variable, which wins over the default. A bad value stops
start-up with one line naming the setting and the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .history import DEFAULT_MEMORY, normal_sizes, parse_bytes
from .sources import SOURCE_NAMES


__all__ = ["OPTIONS", "Option", "Settings", "add_options", "settings_from", "settings_table"]


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3000
    source: str = "simulated"
    seed: int = 42
    linger: float = 5.0
    ping_interval: float = 30.0
    max_subscriptions: int = 50
    rate: float = 10.0
    burst: float = 20.0
    max_message_size: int = 65536
    max_queue: int = 1024
    write_delay_ms: float = 0.0
    # resume (docs/resume.md): sizes per kind over the defaults of history.DEFAULT_SIZES
    history: str = ""  # KIND=N,... (history.parse_sizes reads it)
    history_memory: int = DEFAULT_MEMORY
    resume_window: float = 120.0
    shutdown_timeout: float = 5.0
    log_level: str = "info"
    log_format: str = "text"
    log_rate: float = 20.0
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_rest_url: str = "https://api.binance.com"
    binance_rotate_after: float = 23 * 3600.0
    stall_ticker: float = 5.0
    stall_kline: float = 10.0
    stall_depth: float = 2.0
    stall_trades_min: float = 10.0
    replay_file: str | None = None
    replay_speed: float = 1.0
    replay_loop: bool = False
    # scale-out (docs/multi-node.md)
    role: str = "all"
    redis_url: str | None = None
    redis_prefix: str = "tickwire"
    workers: int = 1
    reuse_port: bool = False
    backlog: int = 4096  # a load balancer restart reconnects every client at once
    # security (docs/security.md); secrets never appear in repr or logs
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_secret_file: str | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    api_keys_file: str | None = None
    max_publish_size: int = 1024 * 1024
    max_connections: int = 50_000
    max_connections_per_ip: int = 0
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    protect_stats: bool = False


_KINDS: dict[Callable[[str], Any], str] = {int: "a whole number", float: "a number"}
"""The expected type of a converter, in words, for the one-line error."""


def _number(kind: Callable[[str], Any], raw: str, reason: str) -> Any:
    """``raw`` as ``kind``; ``ValueError(reason)`` when it is not one (int's own message is for
    programmers: ``invalid literal for int() with base 10``)."""
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(reason) from None


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    reason = f"must be {_KINDS[kind]} greater than 0"

    def convert(raw: str) -> Any:
        value = _number(kind, raw, reason)
        if not value > 0:  # also refuses nan
            raise ValueError(reason)
        return value

    return convert


def _port(raw: str) -> int:
    reason = "must be a port number, 0 to 65535"
    value: int = _number(int, raw, reason)
    if not 0 <= value <= 65535:
        raise ValueError(reason)
    return value


def _non_negative(raw: str) -> float:
    reason = "must be a number, 0 or more"
    value: float = _number(float, raw, reason)
    if not value >= 0:  # also refuses nan
        raise ValueError(reason)
    return value


def _non_negative_int(raw: str) -> int:
    reason = "must be a whole number, 0 or more"
    value: int = _number(int, raw, reason)
    if value < 0:
        raise ValueError(reason)
    return value


def _csv(raw: str) -> tuple[str, ...]:
    """Comma-separated values, blanks dropped."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _networks(raw: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks, normalized (``10.0.0.0/8``)."""
    try:
        return tuple(str(ipaddress.ip_network(part, strict=False)) for part in _csv(raw))
    except ValueError:
        raise ValueError("must be IP addresses or CIDR networks, comma-separated") from None


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _ws_url(raw: str) -> str:
    if not raw.startswith(("ws://", "wss://")):
        raise ValueError("must start with ws:// or wss://")
    return raw.rstrip("/")


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return raw.rstrip("/")


@dataclass(frozen=True, slots=True)
class Option:
    field: str
    help: str
    convert: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    flag: bool = False  # a switch: --name sets True
    append: bool = False  # repeatable: the values are joined with commas for ``convert``
    aliases: tuple[str, ...] = ()  # more flag spellings (``--api-key`` for ``--api-keys``)

    @property
    def cli(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "TICKWIRE_" + self.field.upper()


OPTIONS: tuple[Option, ...] = (
    Option("host", "address to listen on"),
    Option("port", "TCP port for WebSocket and HTTP", _port),
    Option(
        "backlog", "pending TCP connections the listen socket queues (the kernel caps it)", _positive(int)
    ),
    Option("source", "upstream market data", choices=SOURCE_NAMES),
    Option("seed", "random seed of the simulated market", int),
    Option("linger", "seconds an upstream stream stays open after its last subscriber left", _non_negative),
    Option(
        "ping_interval", "seconds between WebSocket pings; no pong within half of it closes", _positive(float)
    ),
    Option("max_subscriptions", "channels per client", _positive(int)),
    Option("rate", "client messages per second (token bucket rate)", _positive(float)),
    Option("burst", "client message burst (token bucket size)", _positive(float)),
    Option("max_message_size", "largest client frame in bytes; larger closes with 1009", _positive(int)),
    Option("max_queue", "every-message frames queued for a slow client before 4008", _positive(int)),
    Option(
        "write_delay_ms",
        "ms a client's frames may be held to be written together (0: next loop iteration)",
        _non_negative,
    ),
    Option(
        "history",
        "messages kept per channel for resumes, KIND=N,... over trades=2000,klines=300,"
        "signals=1000,private=1000,book=100 (0: none)",
        normal_sizes,
    ),
    Option("history_memory", "bytes all history may hold, oldest first out (units: MiB, GiB)", parse_bytes),
    Option(
        "resume_window", "seconds a channel keeps its history after its last subscriber left", _non_negative
    ),
    Option("shutdown_timeout", "seconds to wait for clients to close on shutdown", _non_negative),
    Option("log_level", "logging level", choices=("debug", "info", "warning", "error")),
    Option("log_format", "log line format (json: one object per line)", choices=("text", "json")),
    Option("log_rate", "log lines/s per message template; more are suppressed (0: no cap)", _non_negative),
    Option("binance_ws_url", "Binance stream base URL", _ws_url),
    Option("binance_rest_url", "Binance REST base URL", _http_url),
    Option("binance_rotate_after", "seconds before an upstream connection is replaced", _positive(float)),
    Option(
        "stall_ticker",
        "seconds without ticker data before a stream is stale (venue: every 1 s)",
        _positive(float),
    ),
    Option(
        "stall_kline",
        "seconds without kline data before a stream is stale (venue: every 2 s)",
        _positive(float),
    ),
    Option(
        "stall_depth",
        "seconds without book data before a stream is stale (venue: every 100 ms)",
        _positive(float),
    ),
    Option(
        "stall_trades_min",
        "least seconds without trades before a stream is stale (more for a slow symbol: 20 mean gaps)",
        _positive(float),
    ),
    Option("replay_file", "capture to play with --source replay"),
    Option("replay_speed", "replay speed factor (2 = twice as fast)", _positive(float)),
    Option("replay_loop", "start the replay again at its end", _bool, flag=True),
    Option(
        "role",
        "all: clients and upstream; gateway: clients only; ingest: upstream only (needs --redis-url)",
        choices=("all", "gateway", "ingest"),
    ),
    Option("redis_url", "Redis for many processes (redis://host:6379/0); unset: one process, memory bus"),
    Option("redis_prefix", "prefix of every Redis key and channel"),
    Option("workers", "gateway processes on one port, plus an ingest (needs --redis-url)", _positive(int)),
    Option("reuse_port", "share the port with other processes (SO_REUSEPORT)", _bool, flag=True),
    Option("jwt_secret", "HS256 secret for client tokens (32+ bytes)"),
    Option("jwt_secret_file", "file holding the HS256 secret"),
    Option("jwt_public_key", "PEM public key file for RS256/ES256 client tokens"),
    Option("jwt_issuer", "required token 'iss'"),
    Option("jwt_audience", "required token 'aud'"),
    Option("jwt_algorithms", "token algorithms allowed (comma-separated; default from the keys)", _csv),
    Option(
        "api_keys",
        "publish API keys (repeatable, also as --api-key; env: comma-separated)",
        _csv,
        append=True,
        aliases=("--api-key",),
    ),
    Option("api_keys_file", "file with publish API keys, one a line"),
    Option("max_publish_size", "largest publish API body in bytes (larger: 413)", _positive(int)),
    Option("max_connections", "total WebSocket connections (0: no cap)", _non_negative_int),
    Option("max_connections_per_ip", "connections per client address (0: no cap)", _non_negative_int),
    Option(
        "allowed_origins",
        "browser Origins allowed (repeatable, also as --allowed-origin; empty: any)",
        _csv,
        append=True,
        aliases=("--allowed-origin",),
    ),
    Option("protect_stats", "stats and metrics need the publish API key", _bool, flag=True),
    Option(
        "trusted_proxies",
        "proxies (IPs/CIDRs) whose X-Forwarded-For names the client for per-address limits and logs",
        _networks,
        append=True,
        aliases=("--trusted-proxy",),
    ),
)


def _help(opt: Option, default: Any) -> str:
    """``help (env TICKWIRE_X; default D)``, without a default that is unset, empty or off."""
    shown = "" if default in (None, "", (), False) else f"; default {default}"
    return f"{opt.help} (env {opt.env}{shown})".replace("%", "%%")


def add_options(parser: argparse.ArgumentParser) -> None:
    """Declare every setting as a flag (defaults stay None: env and defaults come later).

    Choices are shown as argparse shows them (``{text,json}``) but checked by
    :func:`settings_from`, so a bad value from a flag or from the environment
    gets the same one-line error.
    """
    defaults = Settings()
    for opt in OPTIONS:
        text = _help(opt, getattr(defaults, opt.field))
        metavar = "{" + ",".join(opt.choices) + "}" if opt.choices else opt.field.upper()
        if opt.flag:
            parser.add_argument(opt.cli, dest=opt.field, action="store_const", const="true", help=text)
        elif opt.append:
            parser.add_argument(
                opt.cli, *opt.aliases, dest=opt.field, metavar=metavar, action="append", help=text
            )
        else:
            parser.add_argument(opt.cli, dest=opt.field, metavar=metavar, help=text)


def settings_from(args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from parsed flags, then env, then defaults.

    Raises:
        ConfigError: one line, naming the flag or variable and why it is wrong.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = getattr(args, opt.field, None) if args is not None else None
        if isinstance(raw, list):  # a repeatable flag
            raw = ",".join(raw)
        where = opt.cli
        if raw is None:
            raw = env.get(opt.env)
            where = opt.env
        if raw is None:
            continue
        if opt.choices is not None and raw not in opt.choices:
            raise ConfigError(f"{where}={raw!r}: must be one of {', '.join(opt.choices)}")
        try:
            values[opt.field] = opt.convert(raw)
        except ValueError as exc:
            reason = str(exc) if str(exc).startswith("must") else _expected(opt.convert)
            raise ConfigError(f"{where}={raw!r}: {reason}") from None
    settings = Settings(**values)
    _check(settings)
    return settings


def _expected(convert: Callable[[str], Any]) -> str:
    """Why ``convert`` refused a value, when it did not say (``int``, ``float``)."""
    kind = _KINDS.get(convert)
    return f"must be {kind}" if kind else "is not a valid value"


def _check(s: Settings) -> None:
    if s.source == "replay" and not s.replay_file:
        raise ConfigError("--source replay needs --replay-file (env TICKWIRE_REPLAY_FILE)")
    if s.replay_file and s.source == "replay" and not os.path.isfile(s.replay_file):
        raise ConfigError(f"--replay-file={s.replay_file!r}: no such file")
    if s.write_delay_ms > 1000:
        raise ConfigError(f"--write-delay-ms={s.write_delay_ms:g}: must be at most 1000")
    if s.burst < 1:
        raise ConfigError(f"--burst={s.burst}: must be at least 1")
    if s.role != "all" and not s.redis_url:
        raise ConfigError(f"--role {s.role} needs --redis-url (env TICKWIRE_REDIS_URL)")
    if s.workers > 1 and not s.redis_url:
        raise ConfigError(f"--workers {s.workers} needs --redis-url (env TICKWIRE_REDIS_URL)")
    if s.workers > 1 and s.role != "all":
        raise ConfigError(f"--workers {s.workers} runs its own roles; leave --role at all")
    if s.redis_url and not s.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"--redis-url={s.redis_url!r}: must start with redis://, rediss:// or unix://")
    if s.jwt_secret and s.jwt_secret_file:
        raise ConfigError("--jwt-secret and --jwt-secret-file: give one, not both")
    if s.protect_stats and not (s.api_keys or s.api_keys_file):
        raise ConfigError("--protect-stats needs an API key (--api-key, --api-keys-file)")


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy with ``changes`` (tests and embedding)."""
    return dataclasses.replace(settings, **changes)


def settings_table() -> str:
    """The README's settings table (``make readme`` writes it; a test keeps it current)."""
    defaults = Settings()
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for o in OPTIONS:
        default = getattr(defaults, o.field)
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = "" if default in (None, "") else f"`{default}`"
        meaning = o.help
        if o.choices:
            meaning += "; one of " + ", ".join(f"`{c}`" for c in o.choices)
        rows.append(f"| `{o.cli}` | `{o.env}` | {shown} | {meaning} |")
    return "\n".join(rows)
