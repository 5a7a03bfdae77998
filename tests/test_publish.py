"""The publish API over real HTTP: every status, batch all-or-nothing, delivery shape, keys."""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tickwire.config import Settings, add_options, replace, settings_from
from tickwire.errors import ConfigError
from tickwire.server.publish import ApiKeys

from .helpers import Client, Running, running_gateway
from .tokens import API_KEY


AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def gw() -> AsyncIterator[Running]:
    async with running_gateway(linger=0.2, api_keys=(API_KEY,), max_publish_size=4096) as gateway:
        yield gateway


async def post(
    gw: Running, path: str, body: Any = None, *, data: Any = None, headers: dict[str, str] | None = AUTH
) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{gw.url}{path}",
            json=body if data is None else None,
            data=data,
            headers=headers or {},
        ) as resp:
            assert resp.content_type == "application/json"
            answer = await resp.json()
            assert isinstance(answer, dict)
            return resp.status, answer


def error(status_answer: tuple[int, dict[str, Any]]) -> tuple[int, str]:
    status, answer = status_answer
    assert answer["success"] is False and set(answer["error"]) == {"code", "message"}
    return status, answer["error"]["code"]


async def test_publish_delivers_signal_with_type_symbol_and_seq(gw: Running) -> None:
    async with Client.connect(gw.ws_url) as client:
        await client.subscribe("signals:btcusdt")
        for seq in (1, 2):
            status, answer = await post(
                gw, "/api/v1/publish", {"channel": "signals:btcusdt", "data": {"n": seq}}
            )
            assert (status, answer) == (200, {"success": True, "seq": seq})
            msg = await client.recv()
            assert msg == {
                "type": "signal",
                "channel": "signals:BTCUSDT",
                "symbol": "BTCUSDT",
                "seq": seq,
                "data": {"n": seq},
            }
    assert gw.gateway.stats.publish_requests[200] == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "INVALID_MESSAGE"),
        (b"[1, 2]", "INVALID_MESSAGE"),
        (b'{"channel": "signals:BTCUSDT"}', "INVALID_MESSAGE"),
        (b'{"channel": "signals:BTCUSDT", "data": [1]}', "INVALID_MESSAGE"),
        (b'{"channel": "signals:BTCUSDT", "data": "text"}', "INVALID_MESSAGE"),
        (b'{"channel": "signals:BTCUSDT", "data": {}, "extra": 1}', "INVALID_MESSAGE"),
        (b'{"channel": 5, "data": {}}', "INVALID_MESSAGE"),
        (b'{"channel": "prices:BTCUSDT", "data": {}}', "INVALID_CHANNEL"),
        (b'{"channel": "orders:has space", "data": {}}', "INVALID_CHANNEL"),
        (b'{"channel": "price:BTCUSDT", "data": {}}', "INVALID_CHANNEL"),  # market: upstream only
        (b'{"channel": "klines:BTCUSDT:1m", "data": {}}', "INVALID_CHANNEL"),
        (b"\xff\xfe{}", "INVALID_MESSAGE"),
        (b"", "INVALID_MESSAGE"),
    ],
)
async def test_bad_bodies_answer_400(gw: Running, body: bytes, code: str) -> None:
    assert error(await post(gw, "/api/v1/publish", data=body)) == (400, code)


async def test_missing_or_wrong_key_answers_401_before_reading(
    gw: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = {"channel": "signals:BTCUSDT", "data": {}}
    wrong = ["Bearer wrong-key-0123456789", f"Basic {API_KEY}", f"Bearer {API_KEY}x", "Bearer"]
    for headers in [None, *({"Authorization": value} for value in wrong)]:
        for path in ("/api/v1/publish", "/api/v1/publish/batch"):
            assert error(await post(gw, path, good, headers=headers)) == (401, "UNAUTHORIZED")
    # a wrong key is refused before the body is even looked at
    assert error(await post(gw, "/api/v1/publish", data=b"x" * 10_000, headers={})) == (401, "UNAUTHORIZED")
    assert gw.gateway.stats.publish_requests[401] == 11
    assert (await post(gw, "/api/v1/publish", good))[0] == 200
    assert API_KEY not in caplog.text


async def test_no_configured_key_refuses_everything() -> None:
    async with running_gateway(linger=0.2) as gw:
        status, code = error(await post(gw, "/api/v1/publish", {"channel": "signals:AB", "data": {}}))
        assert (status, code) == (401, "UNAUTHORIZED")


async def test_body_over_the_limit_answers_413(gw: Running) -> None:
    big = {"channel": "signals:BTCUSDT", "data": {"pad": "x" * 5000}}
    assert error(await post(gw, "/api/v1/publish", big)) == (413, "MESSAGE_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"messages": [{"channel": "signals:BTCUSDT", "data": {"pad": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}}]}'

    assert error(await post(gw, "/api/v1/publish/batch", data=chunks())) == (413, "MESSAGE_TOO_LARGE")
    assert gw.gateway.stats.publish_requests[413] == 2


async def test_batch_is_all_or_nothing(gw: Running) -> None:
    async with Client.connect(gw.ws_url) as client:
        await client.subscribe("signals:AAA", "signals:BBB")
        bad = {
            "messages": [
                {"channel": "signals:AAA", "data": {"i": 0}},
                {"channel": "signals:BBB", "data": {"i": 1}},
                {"channel": "depth:BTCUSDT", "data": {"i": 2}},
            ]
        }
        status, answer = await post(gw, "/api/v1/publish/batch", bad)
        assert status == 400 and answer["error"]["code"] == "INVALID_CHANNEL"
        assert answer["error"]["message"].startswith("messages[2]: ")
        assert error(await post(gw, "/api/v1/publish/batch", {"messages": []})) == (400, "INVALID_MESSAGE")
        assert error(await post(gw, "/api/v1/publish/batch", {"channel": "signals:AAA"})) == (
            400,
            "INVALID_MESSAGE",
        )
        good = {
            "messages": [
                {"channel": c, "data": {"i": i}}
                for i, c in enumerate(["signals:AAA", "signals:BBB", "signals:AAA"])
            ]
        }
        assert await post(gw, "/api/v1/publish/batch", good) == (200, {"success": True, "seqs": [1, 1, 2]})
        got = [await client.recv() for _ in range(3)]
        # nothing of the refused batch arrived: the first data seen is the good batch, seq 1
        assert [(m["channel"], m["seq"], m["data"]) for m in got] == [
            ("signals:AAA", 1, {"i": 0}),
            ("signals:BBB", 1, {"i": 1}),
            ("signals:AAA", 2, {"i": 2}),
        ]
    assert gw.gateway.stats.publish_messages == 3


async def test_data_is_relayed_verbatim(gw: Running) -> None:
    """Digits and nesting are kept: the publisher's JSON is spliced in, not re-encoded through floats."""
    async with Client.connect(gw.ws_url) as client:
        await client.subscribe("signals:ETHUSDT")
        data = b'{"price":3650.123456789012345,"tags":["a",{"b":null}],"ok":true}'
        raw = b'{"channel":"signals:ETHUSDT","data":' + data + b"}"
        status, _ = await post(
            gw, "/api/v1/publish", data=raw, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert status == 200
        frame = await client.ws.receive()
        assert b'"data":' + data in frame.data.encode()


async def test_stats_and_metrics_can_need_the_key() -> None:
    async with running_gateway(linger=0.2, api_keys=(API_KEY,), protect_stats=True) as gw:
        async with aiohttp.ClientSession() as http:
            for path in ("/api/v1/ws/stats", "/metrics"):
                async with http.get(f"{gw.url}{path}") as resp:
                    assert resp.status == 401
                async with http.get(
                    f"{gw.url}{path}", headers={"Authorization": "Bearer nope-nope-nope-nope"}
                ) as resp:
                    assert resp.status == 401
                async with http.get(f"{gw.url}{path}", headers=AUTH) as resp:
                    assert resp.status == 200
            async with http.get(f"{gw.url}/health") as resp:
                assert resp.status in (200, 503)  # health stays open for load balancers
    async with running_gateway(linger=0.2) as gw, aiohttp.ClientSession() as http:
        async with http.get(f"{gw.url}/metrics") as resp:
            assert resp.status == 200  # unprotected by default


def test_keys_from_flags_env_and_file(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_options(parser)
    args = parser.parse_args(["--api-key", "a" * 16, "--api-key", "b" * 16, "--protect-stats"])
    s = settings_from(args, env={"TICKWIRE_API_KEYS": "c" * 16})
    assert s.api_keys == ("a" * 16, "b" * 16) and s.protect_stats  # a flag wins over its env twin
    assert settings_from(None, env={"TICKWIRE_API_KEYS": f"{'c' * 16}, {'d' * 16}"}).api_keys == (
        "c" * 16,
        "d" * 16,
    )
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# publishers\n{'e' * 20}\n\n{'f' * 20}\n")
    keys = ApiKeys.from_settings(replace(Settings(), api_keys=("a" * 16,), api_keys_file=str(keys_file)))
    assert all(keys.check(f"Bearer {k}") for k in ("a" * 16, "e" * 20, "f" * 20))
    assert not keys.check("Bearer " + "g" * 20) and not keys.check(None)
    assert "a" * 16 not in repr(keys)
    with pytest.raises(ConfigError, match="at least 16"):
        ApiKeys(["short"])
    with pytest.raises(ConfigError, match="protect-stats"):
        settings_from(parser.parse_args(["--protect-stats"]), env={})
    with pytest.raises(ConfigError, match="api-keys-file"):
        ApiKeys.from_settings(replace(Settings(), api_keys_file=str(tmp_path / "nope")))
