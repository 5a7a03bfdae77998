from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .helpers import Running, running_gateway
from .redis_server import RedisServer, run_redis


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    """A default gateway (simulated market, memory bus) on a free loopback port."""
    async with running_gateway(linger=0.2) as running:
        yield running


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, in a temp dir; killed after the test."""
    with run_redis(tmp_path) as server:
        yield server
