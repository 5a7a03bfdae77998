"""`tickwire serve` as a real process: settings, start-up errors, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.metadata
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

import tickwire
from tickwire.cli import main
from tickwire.config import OPTIONS, Settings, settings_from

from .helpers import FACTOR, Client, eventually, free_port


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--port", "abc"], {}, "--port='abc': must be a port number, 0 to 65535"),
        (["--linger", "abc"], {}, "--linger='abc': must be a number, 0 or more"),
        (["--port", "70000"], {}, "--port='70000': must be a port number"),
        ([], {"TICKWIRE_PORT": "-1"}, "TICKWIRE_PORT='-1'"),
        (["--source", "kraken"], {}, "--source='kraken': must be one of simulated, binance, replay"),
        (["--rate", "0"], {}, "--rate='0': must be a number greater than 0"),
        (["--source", "replay"], {}, "needs --replay-file"),
        (["--binance-ws-url", "http://x"], {}, "must start with ws://"),
        (["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "nope"], {}, "must be IP addresses or CIDR"),
    ],
)
def test_bad_settings_fail_with_one_line(
    argv: list[str],
    env: dict[str, str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("tickwire: bad setting: ")
    assert fragment in err


def test_version_is_the_one_in_init(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"tickwire {tickwire.__version__}"
    # pyproject reads the same string (hatch dynamic version): the installed metadata agrees
    assert importlib.metadata.version("tickwire") == tickwire.__version__


def test_serve_help_shows_choices_and_no_empty_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    with_choices = [(o.cli, o.choices) for o in OPTIONS if o.choices]
    assert with_choices
    for cli, choices in with_choices:
        assert f"{cli} {{{','.join(choices)}}}" in out
    for empty in ("default None", "default ()", "default False", "default ;", "default )"):
        assert empty not in out
    assert "(env TICKWIRE_PORT; default 3000)" in out
    assert "(env TICKWIRE_REDIS_URL)" in out


def test_env_twins_and_flag_precedence() -> None:
    import argparse

    from tickwire.config import add_options

    parser = argparse.ArgumentParser()
    add_options(parser)
    env = {"TICKWIRE_PORT": "4000", "TICKWIRE_LINGER": "2.5", "TICKWIRE_REPLAY_LOOP": "yes"}
    s = settings_from(parser.parse_args([]), env)
    assert (s.port, s.linger, s.replay_loop) == (4000, 2.5, True)
    s = settings_from(parser.parse_args(["--port", "4001"]), env)
    assert s.port == 4001
    assert settings_from(parser.parse_args([]), {}) == Settings()


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:

        async def healthy() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/health") as resp:
                    return resp.status == 200
            return False

        await eventually(healthy, timeout=10, what="the gateway to start", interval=0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_graceful_shutdown_closes_clients_with_1001(sig: signal.Signals) -> None:
    port = free_port()
    env = {**os.environ, "TICKWIRE_PORT": str(port), "TICKWIRE_SHUTDOWN_TIMEOUT": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickwire", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_healthy(url, proc)
        async with Client.connect(f"ws://127.0.0.1:{port}/ws") as client:
            await client.subscribe("price:BTCUSDT")
            start = time.monotonic()
            proc.send_signal(sig)
            code, _ = await client.closed()
            assert code == 1001
        rc = await asyncio.to_thread(proc.wait, 10)
        assert rc == 0
        assert time.monotonic() - start < 5
        # the port is free again: stopped accepting for good
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# -- one line for every start-up failure --------------------------------------------------


def test_an_unknown_flag_shows_the_usage_of_serve_not_the_top_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--bogus"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tickwire serve [-h]")
    assert "{serve,record,watch,probe}" not in err
    assert err.splitlines()[-1] == "tickwire serve: error: unrecognized arguments: --bogus"


@pytest.fixture
def root_logger() -> Iterator[None]:
    """``main`` installs its log handler on the root logger; put the test's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


NOT_A_CAPTURE = "not a capture of tickwire record"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"garbage\n", f"{NOT_A_CAPTURE} (line 1: JSON is malformed: invalid character (byte 0))"),
        (b'{"t": 1, "ws": "x"}\n{"x": 1}\n', f"{NOT_A_CAPTURE} (line 2: Object missing required field `t`)"),
        (
            gzip.compress(b'{"t": 1}\n' * 50)[:30],
            "cannot read it (Compressed file ended before the end-of-stream marker was reached)",
        ),
    ],
)
def test_a_replay_file_that_is_not_a_capture_fails_with_one_line(
    content: bytes, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], root_logger: None
) -> None:
    path = tmp_path / "not-a-capture"
    path.write_bytes(content)
    argv = [
        "serve",
        "--source",
        "replay",
        "--replay-file",
        str(path),
        "--port",
        "0",
        "--log-level",
        "warning",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"tickwire: bad setting: --replay-file={str(path)!r}: {why}"]


def _serve(*argv: str) -> list[str]:
    return [sys.executable, "-m", "tickwire", "serve", "--host", "127.0.0.1", *argv]


def _clean_env() -> dict[str, str]:
    # PYTHONASYNCIODEBUG's slow-callback warnings would be lines of stderr the tests do not expect
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


async def _line_matching(proc: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> re.Match[str]:
    """The first stderr line of ``proc`` that matches ``pattern``, within a deadline."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 20 * FACTOR
    while (left := deadline - time.monotonic()) > 0:
        raw = await asyncio.wait_for(proc.stderr.readline(), left)
        if not raw:
            break
        seen.append(raw.decode().rstrip("\n"))
        if found := re.search(pattern, seen[-1]):
            return found
    raise AssertionError(f"no line matching {pattern!r} in {seen}")


@contextlib.asynccontextmanager
async def _process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *args, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_port_in_use_fails_with_one_line_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with _process(*_serve("--port", str(port), "--log-level", "warning")) as proc:
            _, err = await asyncio.wait_for(proc.communicate(), 30 * FACTOR)
            assert proc.returncode == 2
    line = f"tickwire: cannot listen on 127.0.0.1:{port}: address already in use (--port / TICKWIRE_PORT)"
    assert err.decode().splitlines() == [line]


async def test_port_0_logs_the_port_actually_bound() -> None:
    async with _process(*_serve("--port", "0")) as proc:
        seen: list[str] = []
        found = await _line_matching(proc, r"tickwire listening on http://127\.0\.0\.1:(\d+)/", seen)
        port = int(found.group(1))
        assert port != 0
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10 * FACTOR) == 0


async def test_an_unreachable_redis_is_a_warning_with_the_url_and_no_password() -> None:
    redis_port = free_port()  # nothing listens there
    url = f"redis://:sekret-password@127.0.0.1:{redis_port}/0"
    async with _process(*_serve("--port", "0", "--redis-url", url)) as proc:
        seen: list[str] = []
        pattern = r"WARNING tickwire\.bus\.redis redis bus cannot reach (\S+) \(.+\); retrying$"
        found = await _line_matching(proc, pattern, seen)
        assert found.group(1) == f"redis://:[redacted]@127.0.0.1:{redis_port}/0"
        # the gateway itself runs (it may say so before or after the warning), and says its bus is down
        listening = r"tickwire listening on http://127\.0\.0\.1:(\d+)/"
        before = [m for line in seen if (m := re.search(listening, line))]
        port = int((before[0] if before else await _line_matching(proc, listening, seen)).group(1))
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/health") as resp:
            assert resp.status == 503
    assert not any("sekret-password" in line or "Traceback" in line for line in seen)
