"""Terminal tools over the client library: ``tickwire watch`` and ``tickwire probe``.

Both are clients of a running gateway; rich (a regular dependency) is
imported only when a command runs, so ``tickwire serve`` never loads it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .probe import DEFAULT_CHANNELS, main as probe_main
from .watch import main as watch_main


__all__ = ["DEFAULT_URL", "add_commands"]

DEFAULT_URL = "ws://127.0.0.1:3000/ws"


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("TICKWIRE_URL", DEFAULT_URL),
        help=f"gateway WebSocket URL, or its http:// base (env TICKWIRE_URL; default {DEFAULT_URL})",
    )
    parser.add_argument("--token", default=os.environ.get("TICKWIRE_TOKEN"), help="JWT for private channels")


def add_commands(commands: Any) -> None:
    """Add ``watch`` and ``probe`` to the ``tickwire`` sub-command parser."""
    w = commands.add_parser("watch", help="live terminal view of channels")
    w.add_argument("channels", nargs="+", metavar="CHANNEL", help="e.g. price:BTCUSDT klines:ETHUSDT:1m")
    _url_option(w)
    w.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    w.add_argument("--json", action="store_true", help="print each message as one JSON line (for pipes)")
    w.set_defaults(tool=watch_main)
    p = commands.add_parser("probe", help="subscribe for a while, then summarize rates, gaps and latency")
    p.add_argument("channels", nargs="*", metavar="CHANNEL", help=f"default: {' '.join(DEFAULT_CHANNELS)}")
    _url_option(p)
    p.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds to listen (default 10)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(tool=probe_main)
