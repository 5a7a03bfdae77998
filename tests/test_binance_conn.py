"""Pure helpers of one Binance connection: the connect URL and the reconnect classifier."""

from __future__ import annotations

import aiohttp
import pytest

from tickwire.errors import UpstreamError
from tickwire.sources.binance.limits import Pacer, connect_url, process_exception


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


def test_pacer_spaces_control_messages_and_keeps_a_slot_for_a_pong() -> None:
    pacer = Pacer(interval=0.3, per_second=5)
    assert pacer.wait(10.0) <= 0  # nothing sent: at once
    pacer.sent(10.0, control=True)
    assert pacer.wait(10.1) == pytest.approx(0.2)  # spaced by the interval
    pacer.sent(10.3, control=True)
    pacer.sent(10.35)  # a pong
    assert pacer.wait(10.6) == pytest.approx(
        0.4
    )  # three of ours in the last second: wait for the oldest to age
    assert pacer.wait(11.0) <= 0
    pacer.sent(11.0)  # pongs alone never wait, but they count
    pacer.sent(11.0)
    pacer.sent(11.0)
    assert pacer.wait(11.1) == pytest.approx(0.2)  # five in the last second: until 10.3 ages out
