"""tickwire: a real-time market-data WebSocket gateway."""

from __future__ import annotations

from .channels import Channel, Kind, parse_channel
from .errors import CloseCode, ConfigError, ErrorCode, ProtocolError, TickwireError


__all__ = [
    "Channel",
    "CloseCode",
    "ConfigError",
    "ErrorCode",
    "Kind",
    "ProtocolError",
    "TickwireError",
    "__version__",
    "parse_channel",
]

__version__ = "0.1.0"
