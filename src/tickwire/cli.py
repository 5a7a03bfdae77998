"""The ``tickwire`` command: ``serve`` (and the tools later issues add)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .config import add_options, settings_from
from .errors import ConfigError


__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickwire", description="Real-time market-data WebSocket gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    add_options(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (tests call it without a subprocess)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"tickwire: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.command == "serve":
        from .server import run

        try:
            run(settings)
        except ConfigError as exc:
            print(f"tickwire: bad setting: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0
    return 0
