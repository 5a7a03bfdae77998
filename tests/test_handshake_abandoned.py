"""A client that gives up during the WebSocket handshake (a reconnect storm's
retries) costs a debug line, not an error with a traceback."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from .helpers import eventually, running_gateway


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _send_and_reset(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        sock.sendall(UPGRADE)


async def test_an_abandoned_handshake_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_gateway() as running:
        for _ in range(50):
            await asyncio.to_thread(_send_and_reset, running.port)
        await eventually(lambda: running.gateway.stats.connections_current == 0, what="no session left")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
