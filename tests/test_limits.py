"""Connection limits over real sockets: per address (4029), Origin (1008), total cap (503); metrics."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from tickwire.server.accesslog import AccessLogger, redact_url
from tickwire.server.admission import ConnectionGuard, client_address, normalize_origin
from tickwire.stats import Stats

from .helpers import Client, eventually, running_gateway


async def refused_close(url: str, **kwargs: Any) -> tuple[int | None, str]:
    """Connect and expect the server to close at once: (close code, reason)."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, **kwargs) as ws:
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            return ws.close_code, str(msg.extra or "")


async def metrics_text(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        return await resp.text()


async def test_connections_per_address_close_with_4029() -> None:
    async with (
        running_gateway(linger=0.2, max_connections_per_ip=2) as gw,
        contextlib.AsyncExitStack() as stack,
    ):
        url = gw.ws_url
        first = await stack.enter_async_context(Client.connect(url))
        await stack.enter_async_context(Client.connect(url))
        code, reason = await refused_close(url)
        assert code == 4029 and "too many connections" in reason
        await first.ws.close()
        await eventually(lambda: gw.gateway.guard.connections_from("127.0.0.1") < 2, what="the close noticed")
        async with Client.connect(url) as again:
            assert again.welcome["type"] == "connected"
        assert gw.gateway.stats.rejected_connections["per_ip"] == 1
        assert 'tickwire_connections_rejected_total{reason="per_ip"} 1.0' in await metrics_text(gw.url)


async def test_origin_not_allowed_closes_with_1008() -> None:
    async with running_gateway(
        linger=0.2, allowed_origins=("https://app.example", "http://localhost:3000")
    ) as gw:
        url = gw.ws_url
        code, reason = await refused_close(url, origin="https://evil.example")
        assert code == 1008 and "origin" in reason
        assert (await refused_close(url, origin="null"))[0] == 1008
        for origin in ("https://APP.example/", "http://localhost:3000", None):
            headers = {"Origin": origin} if origin else {}
            async with Client.connect(url, headers=headers) as c:  # no Origin: not a browser, allowed
                assert c.welcome["type"] == "connected"
        assert gw.gateway.stats.rejected_connections["origin"] == 2
        assert gw.gateway.guard.total == 0


async def test_total_cap_refuses_the_upgrade_with_503() -> None:
    async with running_gateway(linger=0.2, max_connections=2) as gw, contextlib.AsyncExitStack() as stack:
        url = gw.ws_url
        for _ in range(2):
            await stack.enter_async_context(Client.connect(url))
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with Client.connect(url):
                pass
        assert info.value.status == 503
        assert gw.gateway.stats.rejected_connections["total"] == 1
        text = await metrics_text(gw.url)
        assert 'tickwire_connections_rejected_total{reason="total"} 1.0' in text


async def test_a_failed_upgrade_releases_its_slot() -> None:
    async with running_gateway(linger=0.2, max_connections=1) as gw, aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.get(gw.ws_url.replace("ws://", "http://")) as resp:
                assert resp.status == 400  # not an upgrade
        assert gw.gateway.guard.total == 0
        async with Client.connect(gw.ws_url) as c:
            assert c.welcome["type"] == "connected"


def test_guard_bookkeeping() -> None:
    stats = Stats()
    guard = ConnectionGuard(max_connections=3, max_per_ip=2, allowed_origins=["*"], stats=stats)
    assert guard.origin_allowed("https://anything.example")
    assert guard.admit("a", None) is None and guard.admit("a", None) is None
    rejection = guard.admit("a", None)
    assert rejection is not None and rejection.close_code == 4029
    assert guard.admit("b", None) is None
    rejection = guard.admit("c", None)
    assert rejection is not None and rejection.http_status == 503
    guard.release("a")
    guard.release("a")
    assert guard.connections_from("a") == 0 and guard.total == 1
    assert stats.rejected_connections == {"per_ip": 1, "total": 1}
    assert normalize_origin(" HTTPS://App.Example/ ") == "https://app.example"


def test_access_log_redacts_tokens(caplog: pytest.LogCaptureFixture) -> None:
    assert redact_url(URL("/ws?token=abc.def.ghi&x=1")) == "/ws?token=REDACTED&x=1"
    assert redact_url(URL("/ws?x=1")) == "/ws?x=1"
    request = make_mocked_request("GET", "/ws?token=secret.jwt.value")
    logger = logging.getLogger("test.access")
    caplog.set_level(logging.INFO, logger="test.access")
    AccessLogger(logger, "").log(request, aiohttp.web.Response(status=101), 0.01)
    assert "secret.jwt.value" not in caplog.text and "token=REDACTED" in caplog.text


PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("198.51.100.7", None, "198.51.100.7"),  # no proxy, no header
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),  # an untrusted peer cannot claim an address
        ("10.1.2.3", "203.0.113.9", "203.0.113.9"),  # one trusted proxy
        ("10.1.2.3", "203.0.113.9, 10.9.9.9", "203.0.113.9"),  # two trusted proxies
        ("10.1.2.3", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged left part is ignored
        ("10.1.2.3", "10.5.5.5, 10.6.6.6", "10.5.5.5"),  # only proxies: the farthest one
        ("10.1.2.3", "not-an-ip, 203.0.113.9", "203.0.113.9"),
        ("10.1.2.3", "203.0.113.9, garbage", "10.1.2.3"),  # garbage from a proxy: stop at the peer
        ("10.1.2.3", "2001:db8::1", "2001:db8::1"),
        ("10.1.2.3", "", "10.1.2.3"),
    ],
)
def test_client_address_trusts_only_hops_added_by_trusted_proxies(
    peer: str, header: str | None, expected: str
) -> None:
    assert client_address(peer, header, PROXIES) == expected
    assert client_address(peer, header, ()) == peer  # no trusted proxies: the header never counts


async def test_per_address_cap_behind_a_trusted_proxy_counts_forwarded_clients() -> None:
    async with (
        running_gateway(linger=0.2, max_connections_per_ip=1, trusted_proxies=("127.0.0.1/32",)) as gw,
        contextlib.AsyncExitStack() as stack,
    ):
        url = gw.ws_url
        for client in ("203.0.113.1", "203.0.113.2"):  # two clients behind one proxy address
            c = await stack.enter_async_context(Client.connect(url, headers={"X-Forwarded-For": client}))
            assert c.welcome["type"] == "connected"
        code, _ = await refused_close(url, headers={"X-Forwarded-For": "203.0.113.1"})
        assert code == 4029
        assert gw.gateway.guard.connections_from("203.0.113.2") == 1


async def test_forwarded_header_is_ignored_without_trusted_proxies() -> None:
    async with (
        running_gateway(linger=0.2, max_connections_per_ip=1) as gw,
        contextlib.AsyncExitStack() as stack,
    ):
        url = gw.ws_url
        await stack.enter_async_context(Client.connect(url, headers={"X-Forwarded-For": "203.0.113.1"}))
        code, _ = await refused_close(url, headers={"X-Forwarded-For": "203.0.113.2"})
        assert code == 4029  # both are 127.0.0.1: a client cannot pick its own address
