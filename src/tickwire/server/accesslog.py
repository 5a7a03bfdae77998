"""The HTTP access log, with secrets taken out.

Browsers pass their JWT as ``?token=`` on the WebSocket URL, and aiohttp's
default access log prints the whole request line, so this logger prints the
URL with every ``token`` value replaced. The ``Authorization`` header (API
keys) is never printed.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL


__all__ = ["SECRET_PARAMS", "AccessLogger", "redact_url"]

SECRET_PARAMS = frozenset({"token", "access_token", "api_key"})


def redact_url(url: URL) -> str:
    """``url``'s path and query with every secret parameter's value replaced."""
    if not any(key in SECRET_PARAMS for key in url.query):
        return url.path_qs
    pairs = [(k, "REDACTED" if k in SECRET_PARAMS else v) for k, v in url.query.items()]
    return url.with_query(pairs).path_qs


class AccessLogger(AbstractAccessLogger):
    """One line per request: address, request line (redacted), status, bytes, seconds."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        version = request.version
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %s %.3fs',
            request.remote, request.method, redact_url(request.rel_url), version.major, version.minor,
            response.status, response.body_length, time,
        )  # fmt: skip

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
