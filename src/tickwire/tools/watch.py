"""``tickwire watch``: a live terminal view of channels.

The screen is a pure function of a :class:`~.board.Board` (the latest state
of every channel; :mod:`.board`), drawn by :func:`~.screen.render`
(:mod:`.screen`) four times a second from the event loop, so the feed never
waits for the terminal. This module subscribes (a ``book:`` channel through
:meth:`~tickwire.client.Feed.book`, whose verified book the ladder draws),
feeds the board and paints; ``--json`` prints every message as one JSON
line instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp

from .. import client
from ..errors import ProtocolError
from .board import Board
from .screen import render, sparkline


if TYPE_CHECKING:
    from rich.console import Console


__all__ = ["Board", "main", "render", "sparkline"]


async def _health(board: Board, url: str) -> None:
    """Fill the upstream line from ``GET /health`` (best effort: the view works without it)."""
    base = client.ws_url(url).replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    base = base.rsplit("/ws", 1)[0]
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(3):
                async with http.get(base + "/health") as response:
                    board.health(await response.json())


async def _subscribe(
    feed: client.Feed, channels: list[str], err: Console, ladders: dict[str, client.Book]
) -> list[str]:
    """Subscribe; a ``book:`` channel through :meth:`Feed.book`, whose book goes in ``ladders``."""
    books = [c for c in channels if c.partition(":")[0].lower() == "book"]
    others = [c for c in channels if c not in books]

    async def keep(name: str) -> None:
        book = await feed.book(name)
        ladders[book.channel] = book

    requests: list[Callable[[], Awaitable[object]]] = [functools.partial(keep, name) for name in books]
    if others:
        requests.append(functools.partial(feed.subscribe, *others))
    for request in requests:  # one refusal does not stop the others
        try:
            await request()
        except client.SubscriptionError as exc:
            for error in exc.errors:
                err.print(f"refused {error.channel or '*'}: {error.code} {error.message}", markup=False)
    return list(feed.channels)


async def run(
    url: str,
    channels: list[str],
    *,
    duration: float | None,
    json_lines: bool,
    console: Console,
    err: Console,
    token: str | None = None,
) -> int:
    """Watch ``channels`` until ``duration`` seconds pass (or forever); returns the exit code."""
    async with client.connect(url, token) as feed:
        ladders: dict[str, client.Book] = {}
        subscribed = await _subscribe(feed, channels, err, ladders)
        if not subscribed:
            return 2
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                if json_lines:
                    out = sys.stdout
                    async for msg in feed:
                        out.write(client.encode(msg).decode() + "\n")
                        out.flush()
                else:
                    await _live(feed, Board(feed.url, subscribed, ladders=ladders), console)
    return 0


async def _live(feed: client.Feed, board: Board, console: Console) -> None:
    from rich.live import Live

    board.connection = "live"
    await _health(board, feed.url)
    with Live(render(board, console.width), console=console, auto_refresh=False, screen=False) as live:

        async def redraw() -> None:
            while True:
                live.update(render(board, console.width), refresh=True)
                await asyncio.sleep(0.25)

        painter = asyncio.get_running_loop().create_task(redraw())
        try:
            async for msg in feed:
                board.add(msg)
        finally:
            painter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await painter
            live.update(render(board, console.width), refresh=True)


def main(args: argparse.Namespace) -> int:
    """``tickwire watch``: the exit code."""
    from rich.console import Console  # imported here: `tickwire serve` never loads rich

    logging.getLogger("tickwire.client").setLevel(logging.WARNING)
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False, style="red")
    try:
        return asyncio.run(
            run(
                args.url,
                list(args.channels),
                duration=args.duration,
                json_lines=args.json,
                console=console,
                err=err,
                token=args.token,
            )
        )
    except BrokenPipeError:  # `tickwire watch --json ... | head`: the reader has enough
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ProtocolError as exc:
        err.print(f"tickwire watch: {exc.channel}: {exc.message}", markup=False)
        return 2
    except (OSError, aiohttp.ClientError, client.ClientError, TimeoutError) as exc:
        err.print(f"tickwire watch: cannot reach {args.url}: {exc}", markup=False)
        return 1
    except KeyboardInterrupt:
        return 130
