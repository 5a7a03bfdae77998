"""The ``tickwire`` command: ``serve``, ``record``, and the client tools ``watch`` and ``probe``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, logs, tools
from .config import add_options, settings_from
from .errors import ConfigError


__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickwire", description="Real-time market-data WebSocket gateway.")
    parser.add_argument("--version", action="version", version=f"tickwire {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    add_options(serve)
    from .tools.record import add_arguments as add_record_arguments

    record = commands.add_parser("record", help="write raw upstream frames to a capture file (for replay)")
    add_options(record)
    add_record_arguments(record)
    tools.add_commands(commands)  # watch, probe
    for command in commands.choices.values():
        # so an unknown flag is answered with the usage of the command it was given to
        command.set_defaults(command_parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (tests call it without a subprocess)."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # exits 2, like parse_args, but with ``tickwire serve``'s usage rather than the top one
        command_parser: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    tool = getattr(args, "tool", None)
    if tool is not None:  # watch, probe: clients of a gateway, no server settings
        return int(tool(args))
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"tickwire: bad setting: {exc}", file=sys.stderr)
        return 2
    logs.setup(
        level=settings.log_level,
        fmt=settings.log_format,
        rate=settings.log_rate,
        secrets=logs.settings_secrets(settings),
    )
    if args.command == "record":
        from .tools.record import run_record

        try:
            return run_record(settings, args)
        except ConfigError as exc:
            print(f"tickwire: bad setting: {exc}", file=sys.stderr)
            return 2
    if args.command == "serve":
        from .server import run
        from .server.app import CannotListen

        try:
            run(settings)
        except CannotListen as exc:  # a setting to change, though none is malformed
            print(f"tickwire: {exc}", file=sys.stderr)
            return 2
        except ConfigError as exc:
            print(f"tickwire: bad setting: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0
    return 0
