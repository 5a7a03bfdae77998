"""The publish API: backends push signals and private events (docs/protocol.md, "HTTP endpoints").

``POST /api/v1/publish`` takes ``{"channel": ..., "data": {...}}``;
``POST /api/v1/publish/batch`` takes ``{"messages": [...]}`` and is all or
nothing: every message is validated before the first one is published.

Order of checks, cheapest and least revealing first: the API key (401, before
a byte of the body is read), the declared and then the actual body size
(413), JSON and shape (400), each channel (400). ``data`` stays the
publisher's raw JSON bytes (``msgspec.Raw``): it is validated as JSON once,
then spliced into the frame by :meth:`Ingest.publish`, which encodes each
message once for every subscriber and gets its ``seq`` from the bus (one
counter cluster-wide on Redis). A bus that is down answers 503; a batch is
validated whole before its first message is published, but a bus failing in
the middle of one leaves the messages before it published (their seqs are
not returned).

API keys are compared in constant time (:func:`hmac.compare_digest` over
SHA-256 digests, so neither content nor length leaks through timing) and are
never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import msgspec
from aiohttp import web

from ..bus.base import BusUnavailable
from ..channels import Channel, parse_channel
from ..config import Settings
from ..errors import ConfigError, ErrorCode, ProtocolError
from ..ingest import Ingest
from ..stats import Stats


__all__ = ["MIN_KEY_LENGTH", "ApiKeys", "PublishApi", "error_response"]

MIN_KEY_LENGTH = 16
"""Shorter API keys are refused at start-up: a key must not be guessable."""


class ApiKeys:
    """The set of valid API keys; :meth:`check` compares in constant time.

    Raises:
        ConfigError: a key shorter than :data:`MIN_KEY_LENGTH` or with whitespace.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        digests: list[bytes] = []
        for key in keys:
            if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
                raise ConfigError(f"API key: must be at least {MIN_KEY_LENGTH} characters without whitespace")
            digests.append(hashlib.sha256(key.encode()).digest())
        self._digests = tuple(digests)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """Keys from ``--api-key``/``TICKWIRE_API_KEYS`` and ``--api-keys-file``.

        The file has one key a line; blank lines and lines starting with ``#``
        are skipped.
        """
        keys = list(settings.api_keys)
        if settings.api_keys_file:
            try:
                text = Path(settings.api_keys_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"--api-keys-file={settings.api_keys_file!r}: {exc}") from None
            keys += [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
        return cls(keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._digests)} keys)"

    def check(self, header: str | None) -> bool:
        """True when ``header`` is ``Bearer <a configured key>``."""
        if header is None:
            return False
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        digest = hashlib.sha256(given.strip().encode("utf-8", "surrogatepass")).digest()
        ok = False
        for known in self._digests:  # no early exit: time does not tell which key matched
            ok |= hmac.compare_digest(digest, known)
        return ok

    def require(self, request: web.Request) -> web.Response | None:
        """None when the request carries a valid key, else the 401 answer."""
        if not self._digests:
            return error_response(401, ErrorCode.UNAUTHORIZED, "no API key is configured on this gateway")
        if not self.check(request.headers.get("Authorization")):
            return error_response(401, ErrorCode.UNAUTHORIZED, "missing or wrong API key (Bearer)")
        return None


def error_response(status: int, code: ErrorCode | str, message: str) -> web.Response:
    """``{"success":false,"error":{"code","message"}}`` with ``status``."""
    body = {"success": False, "error": {"code": str(code), "message": message}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


class _Message(msgspec.Struct, forbid_unknown_fields=True):
    channel: str
    data: msgspec.Raw


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[_Message]


_T = TypeVar("_T")

_decode_one = msgspec.json.Decoder(_Message).decode
_decode_batch = msgspec.json.Decoder(_Batch).decode


def _decode(decode: Callable[[bytes], _T], body: bytes, shape: str) -> _T:
    """``decode(body)``, or the 400 that says what the body must look like."""
    try:
        return decode(body)
    except msgspec.ValidationError as exc:
        raise _bad(f"body must be {shape}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise _bad(f"not valid JSON: {exc}") from None


class _Rejected(Exception):
    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad(message: str, code: ErrorCode = ErrorCode.INVALID_MESSAGE) -> _Rejected:
    return _Rejected(400, code, message)


def _validate(msg: _Message, where: str = "") -> tuple[Channel, msgspec.Raw]:
    try:
        channel = parse_channel(msg.channel)
    except ProtocolError as exc:
        raise _bad(f"{where}{exc.message}", exc.code) from None
    if not channel.is_publishable:
        raise _bad(
            f"{where}channel {channel.name!r} is fed by the upstream only; "
            "publish to signals:, orders:, portfolio: or account:",
            ErrorCode.INVALID_CHANNEL,
        )
    if bytes(memoryview(msg.data)[:1]) != b"{":
        raise _bad(f"{where}'data' must be a JSON object")
    return channel, msg.data


class PublishApi:
    """The two POST handlers, bound to one ingest.

    Args:
        ingest: where publications go (seq and encoding happen there).
        keys: the API keys.
        max_size: largest body in bytes; larger answers 413.
        stats: counts requests by status.
    """

    def __init__(self, ingest: Ingest, keys: ApiKeys, *, max_size: int = 1024 * 1024, stats: Stats) -> None:
        self._ingest = ingest
        self._keys = keys
        self._max_size = max_size
        self._stats = stats

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/publish", self.handle_publish)
        app.router.add_post("/api/v1/publish/batch", self.handle_batch)

    async def handle_publish(self, request: web.Request) -> web.Response:
        return await self._handle(request, batch=False)

    async def handle_batch(self, request: web.Request) -> web.Response:
        return await self._handle(request, batch=True)

    async def _handle(self, request: web.Request, *, batch: bool) -> web.Response:
        response = self._keys.require(request)
        published = 0
        if response is None:
            try:
                body = await self._body(request)
                response, published = await (self._publish_batch(body) if batch else self._publish_one(body))
            except _Rejected as exc:
                response = error_response(exc.status, exc.code, exc.message)
            except BusUnavailable as exc:
                response = error_response(503, "UNAVAILABLE", f"bus unavailable, nothing published: {exc}")
        self._stats.count_publish(response.status, published)
        return response

    async def _body(self, request: web.Request) -> bytes:
        limit = self._max_size
        declared = request.content_length
        if declared is not None and declared > limit:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> _Rejected:
        return _Rejected(413, ErrorCode.MESSAGE_TOO_LARGE, f"body over {self._max_size} bytes")

    async def _publish_one(self, body: bytes) -> tuple[web.Response, int]:
        msg = _decode(_decode_one, body, '{"channel": str, "data": {...}}')
        channel, data = _validate(msg)
        seq = await self._ingest.publish(channel, data)
        return web.json_response({"success": True, "seq": seq}), 1

    async def _publish_batch(self, body: bytes) -> tuple[web.Response, int]:
        batch = _decode(_decode_batch, body, '{"messages": [{"channel", "data"}, ...]}')
        if not batch.messages:
            raise _bad("'messages' must not be empty")
        # all or nothing: validate every message before publishing the first
        checked = [_validate(msg, f"messages[{i}]: ") for i, msg in enumerate(batch.messages)]
        seqs = [await self._ingest.publish(channel, data) for channel, data in checked]
        return web.json_response({"success": True, "seqs": seqs}), len(seqs)
