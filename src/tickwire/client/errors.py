"""The client library's errors (re-exported by :mod:`tickwire.client`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import TickwireError


if TYPE_CHECKING:
    from ..messages import Error


__all__ = ["ClientError", "ConnectionClosed", "SubscriptionError"]


class ClientError(TickwireError):
    """Base of the client library's errors."""


class ConnectionClosed(ClientError):
    """The gateway closed for good (1008, 1009) or refused the handshake.

    Args:
        code: the WebSocket close code, or the HTTP status of a refused handshake.
        reason: the close reason or a description.
    """

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}" if code else reason)
        self.code = code
        self.reason = reason


class SubscriptionError(ClientError):
    """The gateway refused some channels of a ``subscribe``; the others are subscribed."""

    def __init__(self, errors: list[Error]) -> None:
        text = "; ".join(f"{e.channel or '*'}: {e.code} {e.message}" for e in errors)
        super().__init__(text)
        self.errors = errors


class _EarlyClose(Exception):
    """The socket closed before the welcome (e.g. 4029 right after the handshake)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
