"""The shared test helpers do what the tests rely on (a helper that cannot fail hides bugs)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tickwire.frames import text_frame

from .helpers import FakeTransport, Running, eventually, eventually_sync, free_port, running_gateway


async def test_eventually_returns_the_first_true_value_and_awaits_async_checks() -> None:
    calls: list[int] = []

    def check() -> list[int] | None:
        calls.append(1)
        return calls if len(calls) >= 3 else None

    assert await eventually(check) == [1, 1, 1]

    async def async_check() -> str:
        await asyncio.sleep(0)
        return "ready"

    assert await eventually(async_check) == "ready"


async def test_eventually_fails_naming_what_it_waited_for() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AssertionError, match="waiting for the impossible"):
        await eventually(lambda: False, timeout=0.05, what="the impossible")
    assert loop.time() - started >= 0.05


def test_eventually_sync_returns_the_first_true_value_or_fails_naming_what() -> None:
    calls: list[int] = []

    def check() -> int | None:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else None

    assert eventually_sync(check, interval=0.001) == 3
    started = time.monotonic()
    with pytest.raises(AssertionError, match="waiting for the impossible"):
        eventually_sync(lambda: False, timeout=0.05, what="the impossible", interval=0.01)
    assert time.monotonic() - started >= 0.05


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


async def test_fake_transport_stalls_until_released() -> None:
    transport = FakeTransport(stalled=True)
    transport.write(text_frame(b'{"n":1}'))
    assert transport.get_write_buffer_size() == FakeTransport.FULL
    drain = asyncio.ensure_future(transport.drain())
    await asyncio.sleep(0)
    assert not drain.done()  # a full buffer: the writer waits
    transport.release()
    await asyncio.wait_for(drain, 1)
    transport.write(text_frame(b'{"n":2}'))
    assert transport.get_write_buffer_size() == 0  # released: the client keeps up
    assert transport.messages() == [{"n": 1}, {"n": 2}]


async def test_fake_transport_buffers_until_the_client_reads() -> None:
    transport = FakeTransport()
    transport.writelines([text_frame(b'{"a":1}'), text_frame(b'{"b":2}')])
    assert transport.get_write_buffer_size() == transport.max_buffered > 0
    assert transport.read_all() == [{"a": 1}, {"b": 2}]
    assert transport.get_write_buffer_size() == 0 and transport.read_all() == []
    transport.close(4008, "slow")
    assert transport.closed == (4008, "slow")


async def test_running_has_addresses() -> None:
    async with running_gateway() as running:
        assert isinstance(running, Running)
        assert running.url == f"http://127.0.0.1:{running.port}"
        assert running.ws_url == f"ws://127.0.0.1:{running.port}/ws"
        assert running.gateway.settings.port == 0  # the gateway was asked for any free port
