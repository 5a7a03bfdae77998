"""Error codes, close codes and the exception hierarchy.

::

    TickwireError
    ├── ProtocolError        a client message is wrong; carries its wire answer (code)
    ├── ConfigError          a setting is wrong; the process stops at start-up
    └── UpstreamError        the exchange misbehaved (bad frame, refused subscribe)

A :class:`ProtocolError` is recoverable: the session answers it with an
``error`` frame and keeps the connection (docs/protocol.md, "Errors"). Closing is
decided by the session from close codes below, never by the error itself.
"""

from __future__ import annotations

import enum


__all__ = [
    "CloseCode",
    "ConfigError",
    "ErrorCode",
    "ProtocolError",
    "TickwireError",
    "UpstreamError",
]


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` frame (docs/protocol.md, "Errors")."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    INVALID_CHANNEL = "INVALID_CHANNEL"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    SUBSCRIPTION_LIMIT = "SUBSCRIPTION_LIMIT"
    RATE_LIMITED = "RATE_LIMITED"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"


class CloseCode(enum.IntEnum):
    """WebSocket close codes (docs/protocol.md, "Close codes").

    1001 and 4008 mean "reconnect" (4008 after a longer back-off); 4001 means
    "reconnect only with a new token"; 1008, 1009 and 4029 mean the client
    must change its behaviour first.
    """

    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    TOKEN_EXPIRED = 4001
    SLOW_CONSUMER = 4008
    TOO_MANY_CONNECTIONS = 4029


class TickwireError(Exception):
    """Base class of every error tickwire raises on purpose."""


class ProtocolError(TickwireError):
    """A client message that gets an ``error`` frame instead of its answer.

    Args:
        code: the wire code.
        message: human-readable text for the client.
        channel: the channel the error is about, when there is one.
        ref: the ``id`` of the client message, echoed on the error frame.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        channel: str | None = None,
        ref: str | int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.channel = channel
        self.ref = ref


class ConfigError(TickwireError):
    """A bad setting: start-up fails with one line naming it."""


class UpstreamError(TickwireError):
    """The upstream exchange sent something we cannot use."""
