from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tickwire.server import Gateway

from .helpers import running_gateway


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    """A default gateway (simulated market, memory bus) on a free loopback port."""
    async with running_gateway(linger=0.2) as gw:
        yield gw
