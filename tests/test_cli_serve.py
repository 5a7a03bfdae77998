"""`tickwire serve` as a real process: settings, start-up errors, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

import tickwire
from tickwire.cli import main
from tickwire.config import OPTIONS, Settings, settings_from

from .helpers import Client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--port", "abc"], {}, "--port='abc': not a valid"),
        (["--port", "70000"], {}, "--port='70000': must be a port number"),
        ([], {"TICKWIRE_PORT": "-1"}, "TICKWIRE_PORT='-1'"),
        (["--source", "kraken"], {}, "--source='kraken': must be one of simulated, binance, replay"),
        (["--rate", "0"], {}, "--rate='0': must be greater than 0"),
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
    with_choices = [o for o in OPTIONS if o.choices]
    assert with_choices
    for opt in with_choices:
        assert f"{opt.cli} {{{','.join(opt.choices)}}}" in out
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
        for _ in range(200):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise AssertionError("gateway did not start")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_graceful_shutdown_closes_clients_with_1001(sig: signal.Signals) -> None:
    port = _free_port()
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
