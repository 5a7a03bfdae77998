"""``tickwire watch``: a live terminal view of channels.

The screen is a pure function of a :class:`Board` (the latest state of
every channel), redrawn four times a second from the event loop, so the
feed never waits for the terminal. Sections appear for the channel kinds
being watched: prices and tickers (rises green, falls red), the current
candle of each klines channel with a sparkline of recent closes, the top
of each depth channel, the ladder of each ``book:`` channel (a client
:class:`~tickwire.client.Book` the feed keeps verified; :mod:`.ladder`),
a trade tape, and recent events (signals, private events, status changes,
gaps, errors, and after a reconnect how each channel resumed: "resumed N"
or "not recovered: reason"). The header shows the connection, the upstream (live, stale,
simulated) and message counts. ``--json`` prints every message as one JSON
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
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp

from .. import client
from ..errors import ProtocolError
from .describe import DOWN, UP, describe, fmt_num
from .ladder import ladder


if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text


__all__ = ["Board", "main", "render", "sparkline"]

_QUIET_AFTER = 5.0
"""Seconds without a message before a latest-value channel is shown as quiet."""
_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[Decimal]) -> str:
    """Closes as block characters, lowest to highest."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if span == 0:
        return _SPARKS[3] * len(values)
    return "".join(_SPARKS[int((v - low) / span * (len(_SPARKS) - 1))] for v in values)


@dataclass(slots=True)
class Quote:
    """The latest price or ticker message of a channel, and the price before it."""

    msg: client.Price | client.Ticker
    previous: Decimal | None
    at: float


@dataclass(slots=True)
class Candle:
    msg: client.Kline
    closes: deque[Decimal] = field(default_factory=lambda: deque(maxlen=32))


@dataclass
class Board:
    """Everything the screen shows; updated by :meth:`add`, drawn by :func:`render`."""

    url: str
    channels: list[str]
    clock: Any = time.monotonic
    quotes: dict[str, Quote] = field(default_factory=dict)
    candles: dict[str, Candle] = field(default_factory=dict)
    books: dict[str, client.Depth] = field(default_factory=dict)
    ladders: dict[str, client.Book] = field(default_factory=dict)
    """The local books of the ``book:`` channels (kept in step by the feed)."""
    tape: deque[client.Trade] = field(default_factory=lambda: deque(maxlen=12))
    events: deque[tuple[str, str, Text]] = field(default_factory=lambda: deque(maxlen=8))
    stale: dict[str, str] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    connection: str = "connecting"
    upstream: str = ""
    messages: int = 0
    gaps: int = 0
    reconnects: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def add(self, msg: client.Message) -> None:
        now = self.clock()
        channel = getattr(msg, "channel", None)
        if isinstance(msg, client.DataMessage):
            self.messages += 1
            self.last_seen[msg.channel] = now
        match msg:
            case client.Price() | client.Ticker():
                old = self.quotes.get(msg.channel)
                previous = old.msg.data.price if old is not None else None
                if old is not None and old.msg.data.price == msg.data.price:
                    previous = old.previous  # keep showing the last move
                self.quotes[msg.channel] = Quote(msg, previous, now)
            case client.Kline():
                candle = self.candles.setdefault(msg.channel, Candle(msg))
                if candle.msg.data.time != msg.data.time and not candle.msg.data.isFinal:
                    candle.closes.append(candle.msg.data.close)  # the previous candle ended unseen
                if msg.data.isFinal:
                    candle.closes.append(msg.data.close)
                candle.msg = msg
            case client.Depth():
                self.books[msg.channel] = msg
            case client.Trade():
                self.tape.appendleft(msg)
            case client.Status():
                if msg.live:
                    self.stale.pop(msg.channel, None)
                else:
                    self.stale[msg.channel] = msg.reason or "stale"
                self._event(msg.channel, msg)
            case client.Connected():
                self.connection = "live"
                self.reconnects += msg.resumed
                if msg.resumed:
                    self._event("connection", msg)
            case client.Disconnected():
                self.connection = (
                    "waiting for a new token" if msg.retry_in is None else f"reconnecting ({msg.code})"
                )
                self._event("connection", msg)
            case client.Gap():
                self.gaps += 1
                self._event(msg.channel, msg)
            case client.Recovered() | client.NotRecovered():  # after a reconnect: one line per channel
                self._event(msg.channel, msg)
            case client.Signal() | client.Order() | client.Portfolio() | client.Account() | client.Error():
                self._event(channel or "error", msg)
            case _:
                pass

    def _event(self, where: str, msg: client.Message) -> None:
        self.events.appendleft((time.strftime("%H:%M:%S"), where, describe(msg)))

    def health(self, body: dict[str, Any]) -> None:
        """Take ``GET /health``: which upstream, and whether it is simulated."""
        upstream = body.get("upstream", {})
        source = str(upstream.get("source", "?"))
        if upstream.get("simulated"):
            source += " (SIMULATED market)"
        self.upstream = source

    def state_of(self, channel: str) -> tuple[str, str]:
        """(text, style) of a channel: stale (the gateway said so), quiet (no recent message) or live."""
        if channel in self.stale:
            return f"stale: {self.stale[channel]}", "bold yellow"
        seen = self.last_seen.get(channel)
        if seen is None:
            return "waiting", "dim"
        age = self.clock() - seen
        if age > _QUIET_AFTER and not channel.startswith(("trades:", "signals:")):
            return f"quiet {age:.0f}s", "yellow"
        return "live", "green"


def _header(board: Board) -> RenderableType:
    from rich.text import Text

    live = board.connection == "live"
    line = Text("tickwire watch ", style="bold")
    line.append(board.url, style="dim")
    line.append("  ● " if live else "  ○ ", style="green" if live else "yellow")
    line.append(board.connection, style="bold green" if live else "bold yellow")
    if board.upstream:
        line.append("  upstream ", style="dim")
        line.append(board.upstream, style="magenta" if "SIMULATED" in board.upstream else "")
    elapsed = max(board.clock() - board.started, 1e-9)
    line.append(f"  {board.messages} msgs ({board.messages / elapsed:.0f}/s)", style="dim")
    line.append(f"  gaps {board.gaps}", style="yellow" if board.gaps else "dim")
    if board.reconnects:
        line.append(f"  reconnects {board.reconnects}", style="yellow")
    if board.stale:
        line.append(f"  STALE: {', '.join(sorted(board.stale))}", style="bold yellow")
    return line


def _quotes(board: Board, wide: bool) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    names = ["channel", "price", "24h %"]
    names += ["24h high", "24h low", "24h volume", "bid", "ask", "seq"] if wide else []
    names.append("state")
    table = Table(title="prices", title_justify="left", expand=True)
    for name in names:
        table.add_column(name, justify="left" if name in ("channel", "state") else "right", no_wrap=True)
    for channel in (c for c in board.channels if c.startswith(("price:", "ticker:"))):
        quote = board.quotes.get(channel)
        text, style = board.state_of(channel)
        if quote is None:
            table.add_row(channel, *["-"] * (len(names) - 2), Text(text, style=style))
            continue
        d = quote.msg.data
        move = "" if quote.previous is None else UP if d.price > quote.previous else DOWN
        arrow = " ▲" if move == UP else " ▼" if move == DOWN else "  "
        pct = UP if d.changePercent24h > 0 else DOWN if d.changePercent24h < 0 else ""
        cells: list[RenderableType] = [
            channel,
            Text(fmt_num(d.price) + arrow, style=f"bold {move}".strip()),
            Text(f"{d.changePercent24h:+}", style=pct),
        ]
        if wide:
            bid, ask = ("-", "-")
            if isinstance(quote.msg, client.Ticker):
                bid, ask = fmt_num(quote.msg.data.bid), fmt_num(quote.msg.data.ask)
            cells += [
                fmt_num(d.high24h),
                fmt_num(d.low24h),
                fmt_num(d.volume24h),
                bid,
                ask,
                str(quote.msg.seq),
            ]
        table.add_row(*cells, Text(text, style=style))
    return table


def _candles(board: Board) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="candles", title_justify="left", expand=True)
    for name in ("channel", "open time", "open", "high", "low", "close", "volume", "", "recent closes"):
        table.add_column(name, justify="left" if name in ("channel", "", "recent closes") else "right")
    for channel in (c for c in board.channels if c.startswith("klines:")):
        candle = board.candles.get(channel)
        if candle is None:
            table.add_row(channel, *["-"] * 6, Text(board.state_of(channel)[0], style="dim"), "")
            continue
        k = candle.msg.data
        closes = [*candle.closes] + ([] if k.isFinal else [k.close])
        table.add_row(
            channel,
            time.strftime("%H:%M:%S", time.localtime(k.time)),
            fmt_num(k.open),
            fmt_num(k.high),
            fmt_num(k.low),
            Text(fmt_num(k.close), style=UP if k.close >= k.open else DOWN),
            fmt_num(k.volume),
            Text("final", style="bold") if k.isFinal else Text("live", style="green"),
            Text(sparkline(closes), style=UP if k.close >= k.open else DOWN),
        )
    return table


def _book(channel: str, depth: client.Depth | None, levels: int = 5) -> RenderableType:
    from rich.table import Table

    table = Table(title=channel, title_justify="left", expand=True)
    for name, style in (("bid qty", "dim"), ("bid", UP), ("ask", DOWN), ("ask qty", "dim")):
        table.add_column(name, justify="right", style=style)
    if depth is None:
        return table
    bids, asks = depth.data.bids, depth.data.asks
    for i in range(levels):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        table.add_row(
            fmt_num(b[1]) if b else "",
            fmt_num(b[0]) if b else "",
            fmt_num(a[0]) if a else "",
            fmt_num(a[1]) if a else "",
        )
    return table


def _tape(board: Board) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="trades", title_justify="left")
    for name in ("time", "symbol", "side", "price", "quantity"):
        table.add_column(name, justify="right" if name in ("price", "quantity") else "left")
    for trade in board.tape:
        t = trade.data
        style = UP if t.side == "buy" else DOWN
        clock = time.strftime("%H:%M:%S", time.localtime(t.timestamp / 1000))
        table.add_row(
            f"{clock}.{t.timestamp % 1000:03d}",
            trade.symbol,
            Text(t.side, style=style),
            Text(fmt_num(t.price), style=style),
            fmt_num(t.quantity),
        )
    return table


def _events(board: Board) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="events", title_justify="left", expand=True, show_header=False)
    table.add_column("time", style="dim", no_wrap=True)
    table.add_column("where", style="cyan", no_wrap=True)
    table.add_column("what", overflow="fold")
    for clock, where, text in board.events:
        table.add_row(clock, Text(where), text)
    if not board.events:
        table.add_row("", "", Text("no events yet (signals, private events, status, gaps)", style="dim"))
    return table


def render(board: Board, width: int = 120) -> RenderableType:
    """The whole screen for ``board`` on a terminal ``width`` columns wide."""
    from rich.columns import Columns
    from rich.console import Group

    kinds = {c.split(":", 1)[0] for c in board.channels}
    parts: list[RenderableType] = [_header(board)]
    if kinds & {"price", "ticker"}:
        parts.append(_quotes(board, wide=width >= 110))
    if "klines" in kinds:
        parts.append(_candles(board))
    depth = [c for c in board.channels if c.startswith("depth:")]
    if depth:
        parts.append(Columns([_book(c, board.books.get(c)) for c in depth], equal=True, expand=True))
    books = [c for c in board.channels if c.startswith("book:")]
    if books:
        parts.append(Columns([ladder(c, board.ladders.get(c)) for c in books], equal=True, expand=True))
    if "trades" in kinds:
        parts.append(_tape(board))
    if board.events or kinds - {"price", "ticker", "klines", "depth", "book", "trades"}:
        parts.append(_events(board))
    return Group(*parts)


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
