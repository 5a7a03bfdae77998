"""Pure helpers of one Binance connection: the connect URL and the reconnect classifier."""

from __future__ import annotations

import aiohttp

from tickwire.errors import UpstreamError
from tickwire.sources.binance.connection import connect_url, process_exception


def test_connect_url_carries_every_stream_that_fits() -> None:
    url, included = connect_url("wss://x", ["btcusdt@trade", "ethusdt@ticker"], max_length=4000)
    assert url == "wss://x/stream?streams=btcusdt@trade/ethusdt@ticker"
    assert included == ["btcusdt@trade", "ethusdt@ticker"]


def test_connect_url_leaves_the_rest_to_subscribe() -> None:
    streams = [f"s{i:03d}usdt@trade" for i in range(10)]  # 14 characters each, plus a separator
    base = len("wss://x/stream?streams=")
    url, included = connect_url("wss://x", streams, max_length=base + 3 * 15)
    assert included == streams[:3]
    assert len(url) == base + 3 * 15 - 1
    assert connect_url("wss://x", streams, max_length=base)[1] == []


def test_transport_faults_are_retried_and_bugs_are_not() -> None:
    for exc in (aiohttp.ClientConnectionError(), OSError(), TimeoutError(), UpstreamError("x")):
        assert process_exception(exc) is None
    bug = KeyError("x")
    assert process_exception(bug) is bug
