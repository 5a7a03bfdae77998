"""Settings: one frozen object, filled from flags, each with an env-var twin.

Decision (STYLE.md H.33): a frozen dataclass filled by argparse rather than
pydantic-settings, to keep the dependency list short; the option table
below is the single place a setting is declared. A flag wins over its
``TICKWIRE_*`` variable, which wins over the default. A bad value stops
start-up with one line naming the setting and the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


__all__ = ["OPTIONS", "Option", "Settings", "add_options", "settings_from"]


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
    shutdown_timeout: float = 5.0
    log_level: str = "info"
    binance_ws_url: str = "wss://stream.binance.com:9443"
    binance_rest_url: str = "https://api.binance.com"
    binance_rotate_after: float = 23 * 3600.0
    replay_file: str | None = None
    replay_speed: float = 1.0
    replay_loop: bool = False


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        value = kind(raw)
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    convert.__name__ = kind.__name__
    return convert


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number, 0 to 65535")
    return value


def _non_negative(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


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

    @property
    def cli(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "TICKWIRE_" + self.field.upper()


OPTIONS: tuple[Option, ...] = (
    Option("host", "address to listen on"),
    Option("port", "TCP port for WebSocket and HTTP", _port),
    Option("source", "upstream market data", choices=("simulated", "binance", "replay")),
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
    Option("shutdown_timeout", "seconds to wait for clients to close on shutdown", _non_negative),
    Option("log_level", "logging level", choices=("debug", "info", "warning", "error")),
    Option("binance_ws_url", "Binance stream base URL", _ws_url),
    Option("binance_rest_url", "Binance REST base URL", _http_url),
    Option("binance_rotate_after", "seconds before an upstream connection is replaced", _positive(float)),
    Option("replay_file", "capture to play with --source replay"),
    Option("replay_speed", "replay speed factor (2 = twice as fast)", _positive(float)),
    Option("replay_loop", "start the replay again at its end", _bool, flag=True),
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """Declare every setting as a flag (defaults stay None: env and defaults come later)."""
    defaults = Settings()
    for opt in OPTIONS:
        default = getattr(defaults, opt.field)
        text = f"{opt.help} (env {opt.env}; default {default})"
        if opt.flag:
            parser.add_argument(opt.cli, dest=opt.field, action="store_const", const="true", help=text)
        else:
            parser.add_argument(opt.cli, dest=opt.field, metavar=opt.field.upper(), help=text)


def settings_from(args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from parsed flags, then env, then defaults.

    Raises:
        ConfigError: one line, naming the flag or variable and why it is wrong.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = getattr(args, opt.field, None) if args is not None else None
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
            reason = str(exc) if "must" in str(exc) else f"not a valid {opt.convert.__name__}"
            raise ConfigError(f"{where}={raw!r}: {reason}") from None
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    if s.source == "replay" and not s.replay_file:
        raise ConfigError("--source replay needs --replay-file (env TICKWIRE_REPLAY_FILE)")
    if s.replay_file and s.source == "replay" and not os.path.isfile(s.replay_file):
        raise ConfigError(f"--replay-file={s.replay_file!r}: no such file")
    if s.burst < 1:
        raise ConfigError(f"--burst={s.burst}: must be at least 1")


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy with ``changes`` (tests and embedding)."""
    return dataclasses.replace(settings, **changes)


def option_rows() -> Sequence[tuple[str, str, str, str]]:
    """(flag, env, default, help) rows, for the README table."""
    defaults = Settings()
    return [(o.cli, o.env, str(getattr(defaults, o.field)), o.help) for o in OPTIONS]
