"""Stats never name a user's private channels unless they are behind the API key.

A public list of ``orders:<userId>`` would tell anyone which users are online.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from .helpers import Client, running_gateway
from .tokens import API_KEY, SECRET, hs_token


AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def _stats(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/v1/ws/stats", headers=headers) as resp:
        assert resp.status == 200
        body = await resp.json()
        data: dict[str, Any] = body["data"]
        return data


@pytest.mark.parametrize("protect", [False, True])
async def test_private_channel_names_only_behind_the_key(protect: bool) -> None:
    async with running_gateway(jwt_secret=SECRET, api_keys=(API_KEY,), protect_stats=protect) as gw:
        url = gw.url
        token = hs_token("u123")
        async with Client.connect(f"{gw.ws_url}?token={token}") as client:
            answers = await client.subscribe("orders:u123", "portfolio:u123", "price:BTCUSDT")
            assert [a["type"] for a in answers] == ["subscribed"] * 3
            stats = await _stats(url, AUTH if protect else None)
    assert stats["privateChannels"] == 2
    if protect:  # the caller showed the key: the full list
        assert stats["activeChannels"] == ["orders:u123", "portfolio:u123", "price:BTCUSDT"]
    else:
        assert stats["activeChannels"] == ["price:BTCUSDT"]
        assert "u123" not in repr(stats)
