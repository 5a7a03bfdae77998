"""Server-to-client WebSocket text frames, built once and written to many sockets.

RFC 6455 section 5.2: a server frame is never masked, so a whole frame
(header and payload) is the same bytes for every subscriber. The hub builds
it once per channel message; sessions write it as is, several per write.
Only unfragmented text frames without extensions are built here; the
WebSocket library still owns the handshake, control frames and reading.
"""

from __future__ import annotations

import struct


__all__ = ["text_frame"]

_FIN_TEXT = 0x81


def text_frame(payload: bytes) -> bytes:
    """One final text frame carrying ``payload`` (UTF-8 JSON)."""
    n = len(payload)
    if n < 126:
        return bytes((_FIN_TEXT, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, n) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, n) + payload
