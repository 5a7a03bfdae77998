"""The root of the client library's errors (re-exported by :mod:`tickwire.client`)."""

from __future__ import annotations

from ..errors import TickwireError


__all__ = ["ClientError"]


class ClientError(TickwireError):
    """Base of the client library's errors."""
