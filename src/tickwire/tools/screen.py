"""The screen of ``tickwire watch``: a pure function of a :class:`~.board.Board`.

Sections appear for the channel kinds being watched: prices and tickers
(rises green, falls red), the current candle of each klines channel with a
sparkline of recent closes, the top of each depth channel, the ladder of
each ``book:`` channel (:mod:`.ladder`), a trade tape, and recent events
(signals, private events, status changes, gaps, errors, and after a
reconnect how each channel resumed: "resumed N" or "not recovered:
reason"). The header shows
the connection, the upstream (live, stale, simulated) and message counts.
rich is imported inside the functions: ``tickwire serve`` never loads it.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING

from .. import client
from .describe import DOWN, UP, fmt_num
from .ladder import ladder


if TYPE_CHECKING:
    from rich.console import RenderableType

    from .board import Board


__all__ = ["render", "sparkline"]

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
