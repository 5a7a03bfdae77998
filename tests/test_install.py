"""A plain install works: a fresh virtual env, ``pip install`` of this tree with no extras,
then ``tickwire --version``, ``tickwire watch --help`` and ``tickwire watch --json`` against a
live gateway. pip builds the wheel in its usual isolated build env and fetches the
dependencies from the package index; its cache keeps a repeated run to seconds."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

import tickwire

from .helpers import running_gateway


ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh env holding ``pip install <this tree>``, no extras."""
    env_dir = tmp_path_factory.mktemp("plain") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    environ = {k: v for k, v in os.environ.items() if k not in ("PIP_NO_CACHE_DIR", "VIRTUAL_ENV")}
    done = subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return bin_dir


def run(bin_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bin_dir / "tickwire", *argv], capture_output=True, text=True, timeout=30)


def test_plain_install_has_no_extras(plain_install: Path) -> None:
    probe = "import importlib.util as u; print(u.find_spec('redis') is None, u.find_spec('rich') is not None)"
    done = subprocess.run([plain_install / "python", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["True", "True"]  # rich is a dependency, redis an extra


def test_version(plain_install: Path) -> None:
    done = run(plain_install, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"tickwire {tickwire.__version__}"


def test_watch_help(plain_install: Path) -> None:
    done = run(plain_install, "watch", "--help")
    assert done.returncode == 0, done.stderr
    assert "--json" in done.stdout and "--duration" in done.stdout


async def run_against(bin_dir: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Run ``tickwire *argv --url <a live gateway>`` to its end; its stdout and stderr."""
    async with running_gateway() as gw:
        proc = await asyncio.create_subprocess_exec(
            bin_dir / "tickwire",
            *argv,
            "--url",
            gw.ws_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def test_watch_json_against_a_live_gateway(plain_install: Path) -> None:
    out, _ = await run_against(plain_install, "watch", "--json", "--duration", "2", "price:BTCUSDT")
    messages = [json.loads(line) for line in out.splitlines()]
    assert messages and all(isinstance(m, dict) and "type" in m for m in messages)
    prices = [m for m in messages if m["type"] == "price"]
    assert prices and all(m["channel"] == "price:BTCUSDT" for m in prices)
    assert isinstance(prices[-1]["data"]["price"], int | float)  # prices are JSON numbers


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["watch", "--duration", "2", "price:BTCUSDT"], "price:BTCUSDT"),  # the rich live view
        (["probe", "--quiet", "--duration", "2", "price:BTCUSDT"], "price:BTCUSDT"),
    ],
)
async def test_terminal_tools_run(plain_install: Path, argv: list[str], expected: str) -> None:
    out, _ = await run_against(plain_install, *argv, env={**os.environ, "COLUMNS": "120"})
    assert expected in out
