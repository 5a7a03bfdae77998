"""Logging setup: one handler on the root logger, text or JSON lines, secrets
redacted, floods of similar lines rate-limited.

Theory of operation:

* Modules log with stdlib ``logging`` on named loggers (``tickwire.server``,
  ``tickwire.session``, ``tickwire.upstream.<source>``) and lazy ``%s``
  arguments; :func:`setup` (called by the CLI) decides where lines go.
* Every record passes two filters on the handler, so they also cover
  library loggers such as ``aiohttp.access``:

  1. :class:`RateLimitFilter`: a token bucket per (logger, level, message
     template). A flood of bad clients produces the same few templates, so
     it is cut to ``rate`` lines per second each after a burst; the next
     line let through says how many similar lines were suppressed, and
     ``tickwire_log_lines_suppressed_total`` counts them all.
  2. :class:`RedactFilter`: renders the message once, then replaces
     anything that looks like a JWT, a ``Bearer`` credential, a secret URL
     parameter (``?token=``), a URL password or a configured secret
     (:func:`add_secret`) with ``[redacted]``. Exceptions and stack traces
     are redacted too.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from .ratelimit import TokenBucket


__all__ = [
    "JsonFormatter",
    "RateLimitFilter",
    "RedactFilter",
    "add_secret",
    "redact",
    "settings_secrets",
    "setup",
    "suppressed_total",
]

REDACTED = "[redacted]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a JWT: three base64url parts, the first one a JSON object ({" -> eyJ)
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # an Authorization header value
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{REDACTED}"),
    # secret query parameters: ?token=..., &api_key=...
    (
        re.compile(r"(?i)([?&;](?:token|access_token|api_key|apikey|key|secret|password)=)[^&\s\"'#]+"),
        rf"\1{REDACTED}",
    ),
    # "token": "..." and token=... in JSON or key=value text
    (
        re.compile(
            r"(?i)(\"?\b(?:token|api_?key|secret|password|authorization)\"?\s*[:=]\s*\"?)[^\s\"',}&]+"
        ),
        rf"\1{REDACTED}",
    ),
    # credentials in a URL: redis://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
)

_MIN_SECRET = 4  # shorter values would redact ordinary words


class _Secrets:
    """Configured secret values, matched literally (longest first)."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        value = value.strip()
        if len(value) < _MIN_SECRET or value in self.values:
            return
        self.values.add(value)
        ordered = sorted(self.values, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(v) for v in ordered))


_secrets = _Secrets()
_suppressed = [0]  # all lines suppressed by any RateLimitFilter since start


def add_secret(value: str) -> None:
    """Never log ``value`` (an API key or JWT secret loaded at run time, from a file say)."""
    _secrets.add(value)


def suppressed_total() -> int:
    """Log lines suppressed by the rate limiter since start (for ``/metrics``)."""
    return _suppressed[0]


def redact(text: str) -> str:
    """``text`` with every token, key and configured secret replaced by ``[redacted]``."""
    if _secrets.pattern is not None:
        text = _secrets.pattern.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def settings_secrets(settings: object) -> list[str]:
    """The secret values of a settings dataclass: fields named like a secret,
    key, token or password, and the contents of such ``*_file`` fields (one
    secret a line, and the whole file). Public keys are not secrets."""
    found: list[str] = []
    if not dataclasses.is_dataclass(settings):
        return found
    for f in dataclasses.fields(settings):
        name, value = f.name, getattr(settings, f.name)
        if not re.search(r"secret|api_key|token|password", name):
            continue
        if name.endswith("_file"):
            found.extend(_file_secrets(value))
        elif isinstance(value, str):
            found.append(value)
        elif isinstance(value, tuple | list | frozenset | set):
            found.extend(v for v in value if isinstance(v, str))
    return found


def _file_secrets(path: object) -> list[str]:
    if not isinstance(path, str) or not path:
        return []
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError):
        return []  # the module that uses the file reports it
    return [text.strip(), *(line.strip() for line in text.splitlines())]


_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class RedactFilter(logging.Filter):
    """Renders each record's message once and takes secrets out of it (and of
    its exception text, stack and string extras). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(_message(record))
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and isinstance(value, str):
                record.__dict__[key] = redact(value)
        return True


class _Bucket:
    __slots__ = ("bucket", "suppressed")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.suppressed = 0


class RateLimitFilter(logging.Filter):
    """At most ``burst`` lines, then ``rate`` lines per second, per
    (logger, level, message template); the next line let through after a
    suppression carries ``suppressed=N``.

    Args:
        rate: lines per second per template, sustained.
        burst: lines per template let through at once after a quiet spell.
        clock: monotonic seconds (injected by tests).
        max_templates: templates tracked; beyond it, new ones share one bucket,
            so a logger fed unbounded formatted strings cannot grow memory.
    """

    _OVERFLOW = ("", 0, "")

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_templates: int = 1024,
    ) -> None:
        super().__init__()
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max = max_templates
        self._buckets: dict[tuple[str, int, str], _Bucket] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        state = self._state((record.name, record.levelno, str(record.msg)), now)
        if not state.bucket.take(now):
            state.suppressed += 1
            _suppressed[0] += 1
            return False
        if state.suppressed:
            record.suppressed = state.suppressed
            record.msg = f"{_message(record)} [{state.suppressed} similar lines suppressed]"
            record.args = None
            state.suppressed = 0
        return True

    def _state(self, key: tuple[str, int, str], now: float) -> _Bucket:
        state = self._buckets.get(key)
        if state is None:
            if len(self._buckets) >= self._max:
                key = self._OVERFLOW
                state = self._buckets.get(key)
            if state is None:
                state = self._buckets[key] = _Bucket(TokenBucket(rate=self._rate, burst=self._burst, now=now))
        return state


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string must not hide the line
        return f"{record.msg!r} {record.args!r}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601, ms), ``level``,
    ``logger``, ``message``, any ``extra`` fields, and ``exc`` / ``stack``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`setup` installs (so a second setup replaces it)."""


def setup(
    *,
    level: str = "info",
    fmt: str = "text",
    rate: float = 20.0,
    burst: float | None = None,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> logging.Handler:
    """Send log lines to ``stream`` (stderr) in ``fmt`` (``text`` or ``json``).

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error`` (the root level).
        fmt: ``text`` (human) or ``json`` (one object per line).
        rate: lines per second per message template; 0 turns the limiter off.
        burst: lines per template at once (default: 5 seconds' worth, at least 10).
        secrets: values never to print (API keys, the JWT secret).
        stream: where to write (tests pass a StringIO).
        clock: monotonic seconds, for the rate limiter.

    Returns:
        The installed handler; a second call replaces it.
    """
    for value in secrets:
        add_secret(value)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream if stream is not None else sys.stderr)
    if rate > 0:
        handler.addFilter(RateLimitFilter(rate=rate, burst=burst or max(10.0, 5 * rate), clock=clock))
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
