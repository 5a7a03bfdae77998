from __future__ import annotations

import asyncio
import pathlib
import re
import shlex
import sys

from tickwire.config import settings_table

from .helpers import running_gateway


ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_settings_table_matches_the_options() -> None:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- settings-table -->\n(.*?)\n<!-- /settings-table -->", text, re.S)
    assert match, "README.md lost its settings-table markers"
    assert match.group(1) == settings_table(), "README settings table is stale: run `make readme`"


def test_readme_shows_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _readme_commands() -> list[str]:
    """Every ``tickwire ...`` command of the README: in shell blocks and in inline code."""
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"`((?:\.venv/bin/)?tickwire [^`]+)`", text)
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            line = re.sub(r"^(?:[A-Z_]+=\S+ )+", "", line)  # TICKWIRE_PORT=8080 make run
            if line.startswith(("tickwire ", ".venv/bin/tickwire ")):
                commands.append(line)
    return commands


def test_readme_commands_parse_with_the_real_parser() -> None:
    from tickwire.cli import _parser

    commands = _readme_commands()
    assert any(" record " in f" {c} " for c in commands) and any(" watch " in f" {c} " for c in commands)
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv == ["--version"] or argv in (["record"], ["watch"]):  # a flag, or a command named in prose
            continue
        try:
            args = _parser().parse_args(argv)
        except SystemExit:
            raise AssertionError(f"README command does not parse: {command}") from None
        if args.command == "record":
            assert all("," in c or ":" in c for c in args.channels)


def test_readme_env_twins_for_make_run_are_real_settings() -> None:
    from tickwire.config import OPTIONS

    text = (ROOT / "README.md").read_text()
    used = set(re.findall(r"\b(TICKWIRE_[A-Z_]+)=\S+ make run", text))
    assert used and used <= {o.env for o in OPTIONS}


def _python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "the README has one Python example"
    block: str = blocks[0]
    return block


async def test_readme_python_example_runs_as_pasted() -> None:
    """The example, unchanged but for the gateway's address, prints live messages."""
    code = _python_example()
    url = "ws://127.0.0.1:3000/ws"
    assert url in code and "asyncio.run(" in code
    async with running_gateway() as gw:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code.replace(url, gw.ws_url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        seen: set[str] = set()
        try:
            async with asyncio.timeout(30):
                while not {"Price", "Kline"} <= seen:
                    line = await proc.stdout.readline()
                    assert line, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
                    seen.add(line.decode().split("(", 1)[0])
        finally:
            proc.kill()
            await proc.wait()
    assert {"Price", "Kline"} <= seen
