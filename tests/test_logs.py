"""Logs: JSON lines parse, floods are capped, no token, key or secret is ever printed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tickwire import logs
from tickwire.config import Settings

from .helpers import Client, eventually, running_gateway
from .test_metrics import scrape, value
from .tokens import API_KEY, SECRET, claims, hs_token, none_token, signed_hmac


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Restores the root logger after a test installed the tickwire handler."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield io.StringIO()
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def record(
    msg: str, *args: object, name: str = "tickwire.test", level: int = logging.INFO
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


# -- redaction ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET /ws?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig_Nature-1 HTTP/1.1", "eyJhbG"),
        ("GET /ws?symbol=x&token=opaque-token-value HTTP/1.1", "opaque-token-value"),
        ("GET /ws?access_token=abc123def&x=1", "abc123def"),
        ("Authorization: Bearer pub-key-0123456789abcdef", "pub-key-0123"),
        ('frame {"type":"auth","token":"not.a.jwt-but-secret"}', "not.a.jwt-but-secret"),
        ("bus redis://default:hunter2pass@redis:6379/0 down", "hunter2pass"),
        ("api_key=sekrit-value, retrying", "sekrit-value"),
        ("token eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJib2IifQ. (alg none)", "eyJzdWIi"),
    ],
)
def test_redact_takes_tokens_keys_and_url_passwords_out(text: str, secret: str) -> None:
    clean = logs.redact(text)
    assert secret not in clean
    assert logs.REDACTED in clean


def test_redact_keeps_ordinary_text() -> None:
    line = "disconnect ws_1_abc code=1000 reason=closed by client; token expired for alice"
    assert logs.redact(line) == line


def test_configured_secrets_are_redacted_wherever_they_appear(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("file-key-aaaaaaaaaaaa\nfile-key-bbbbbbbbbbbb\n")
    settings = Settings(
        jwt_secret="configured-jwt-secret-xyz", api_keys=("k-one-1234",), api_keys_file=str(keys)
    )
    found = logs.settings_secrets(settings)
    assert {"configured-jwt-secret-xyz", "k-one-1234", "file-key-bbbbbbbbbbbb"} <= set(found)
    for secret in found:
        logs.add_secret(secret)
    text = logs.redact("secret configured-jwt-secret-xyz, keys k-one-1234 file-key-bbbbbbbbbbbb")
    assert "configured" not in text and "k-one" not in text and "file-key" not in text


def test_redact_filter_covers_arguments_exceptions_and_extras() -> None:
    try:
        raise ValueError("bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln")
    except ValueError:
        import sys

        rec = record("auth header %s", "Bearer abc.def.ghi")
        rec.exc_info = sys.exc_info()
    rec.__dict__["url"] = "/ws?token=xyz-secret"
    assert logs.RedactFilter().filter(rec)
    formatted = logs.JsonFormatter().format(rec)
    assert "abc.def.ghi" not in formatted and "eyJzdWIi" not in formatted and "xyz-secret" not in formatted
    assert json.loads(formatted)["exc"].startswith("Traceback")


# -- rate limiting -------------------------------------------------------------


def test_rate_limit_filter_caps_each_template_and_reports_what_it_dropped() -> None:
    now = [100.0]
    limiter = logs.RateLimitFilter(rate=2.0, burst=5.0, clock=lambda: now[0])
    before = logs.suppressed_total()
    passed = [limiter.filter(record("client %s: limit hit", i)) for i in range(100)]
    assert sum(passed) == 5
    assert logs.suppressed_total() - before == 95
    assert limiter.filter(record("another template %s", 1))  # its own bucket
    now[0] += 1.0  # two more tokens
    rec = record("client %s: limit hit", 100)
    assert limiter.filter(rec)
    assert rec.getMessage() == "client 100: limit hit [95 similar lines suppressed]"
    assert rec.__dict__["suppressed"] == 95  # an attribute the limiter adds
    rec = record("client %s: limit hit", 101)
    assert limiter.filter(rec) and "suppressed" not in rec.getMessage()


def test_rate_limit_filter_bounds_its_memory() -> None:
    limiter = logs.RateLimitFilter(rate=1.0, burst=1.0, clock=lambda: 0.0, max_templates=10)
    for i in range(1000):  # formatted strings, not templates: each one is new
        limiter.filter(record(f"line {i}"))
    assert len(limiter._buckets) <= 11


# -- real gateway ----------------------------------------------------------------


async def test_json_lines_parse_and_show_connect_and_disconnect(captured: io.StringIO) -> None:
    logs.setup(level="info", fmt="json", stream=captured)
    async with running_gateway(linger=0.1) as gw:
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe("price:BTCUSDT")
            await client.ws.close(code=1000)
        await eventually(lambda: "disconnect" in captured.getvalue(), what="the disconnect line")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert all(line["time"].endswith("Z") for line in lines)
    messages = [line["message"] for line in lines if line["logger"] == "tickwire.server"]
    assert any(m.startswith("connect ws_") for m in messages)
    [gone] = [m for m in messages if m.startswith("disconnect ")]
    assert "code=1000" in gone and "reason=closed by client" in gone


async def test_a_flood_of_bad_frames_from_one_client_is_capped(captured: io.StringIO) -> None:
    logs.setup(level="info", fmt="text", rate=2.0, burst=10.0, stream=captured)
    loop = asyncio.get_running_loop()
    async with running_gateway(linger=0.1, max_subscriptions=1, rate=100000.0, burst=100000.0) as gw:
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe("price:BTCUSDT")
            suppressed = logs.suppressed_total()
            started = loop.time()
            for i in range(400):  # each one is over the subscription limit: one log line each
                await client.send({"type": "subscribe", "channels": ["price:ETHUSDT"], "id": i})
            await client.recv_until(lambda m: m.get("id") == 399 and m["code"] == "SUBSCRIPTION_LIMIT")
            elapsed = loop.time() - started
            samples = await scrape(gw)
    hits = [line for line in captured.getvalue().splitlines() if "limit hit SUBSCRIPTION_LIMIT" in line]
    assert 10 <= len(hits) <= 10 + 2.0 * elapsed + 1
    assert logs.suppressed_total() - suppressed >= 400 - len(hits)
    assert value(samples, "tickwire_log_lines_suppressed_total") >= 400 - len(hits)
    assert value(samples, "tickwire_errors_total", code="SUBSCRIPTION_LIMIT") == 400


async def test_rate_limit_hits_log_once_per_run_not_per_frame(captured: io.StringIO) -> None:
    logs.setup(level="info", stream=captured, rate=0)  # no log limiter: the session itself is quiet
    async with running_gateway(linger=0.1, rate=1.0, burst=1.0) as gw:
        async with Client.connect(gw.ws_url) as client:
            for i in range(30):
                await client.send({"type": "ping", "id": i})
            await client.recv_until(lambda m: m.get("code") == "RATE_LIMITED")
            stats = gw.gateway.stats
            await eventually(lambda: stats.errors["RATE_LIMITED"] == 29, what="every frame answered")
    hits = [line for line in captured.getvalue().splitlines() if "limit hit RATE_LIMITED" in line]
    assert len(hits) == 1


async def test_no_token_key_or_secret_in_any_log_line(captured: io.StringIO, tmp_path: Path) -> None:
    """A security-matrix run at DEBUG, aiohttp's own access log included."""
    keys_file = tmp_path / "keys"
    keys_file.write_text("file-api-key-0123456789\n")
    settings = Settings(jwt_secret=SECRET, api_keys=(API_KEY,), api_keys_file=str(keys_file))
    logs.setup(level="debug", stream=captured, rate=0, secrets=logs.settings_secrets(settings))
    valid, expired = hs_token("alice"), hs_token("alice", ttl=-60)
    forged = hs_token("alice", secret="attacker-secret-attacker-secret-0000")
    unsigned = none_token(claims("alice"))
    confused = signed_hmac(claims("alice"), b"wrong-key")
    tokens = [valid, expired, forged, unsigned, confused]
    async with running_gateway(settings, linger=0.1) as gw, aiohttp.ClientSession() as http:
        for token in tokens:
            async with Client.connect(f"{gw.ws_url}?token={token}") as client:
                await client.subscribe("price:BTCUSDT", "orders:alice", "orders:bob")
                await client.send({"type": "auth", "token": token, "id": 1})
                await client.recv_until(lambda m: m.get("id") == 1)
                await client.send(f'{{"type":"auth","token":"{token}","bogus":1}}')  # malformed, maybe
                await client.send({"type": "ping", "id": 2})
                await client.recv_until(lambda m: m.get("id") == 2 and m["type"] == "pong")
        url = gw.url + "/api/v1/publish"
        for key in (API_KEY, "file-api-key-0123456789", "wrong-key-0000", valid):
            body = {"channel": "orders:alice", "data": {"k": key}}
            async with http.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as resp:
                assert resp.status in (200, 401)
        async with http.get(f"{gw.url}/metrics?api_key={API_KEY}"):
            pass
        logging.getLogger("tickwire.test").warning("careless line: %s %s %r", SECRET, API_KEY, settings)
        # aiohttp logs a request after its response is sent
        await eventually(lambda: "GET /metrics" in captured.getvalue(), what="the access line")
    text = captured.getvalue()
    assert "connect ws_" in text and "aiohttp.access" in text and "careless line" in text
    for secret in [SECRET, API_KEY, "file-api-key-0123456789", "wrong-key-0000", *tokens]:
        assert secret not in text
    for token in tokens:  # not even one part of a token
        for part in token.split("."):
            assert len(part) < 8 or part not in text
