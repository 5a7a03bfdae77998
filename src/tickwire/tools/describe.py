"""One-line descriptions of feed messages, shared by ``watch`` and ``probe``.

Feed text (symbols, signal payloads, reasons) is put into :class:`rich.text.Text`
as plain text, never parsed as rich markup.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

from .. import client
from ..clock import wall_ms


if TYPE_CHECKING:
    from rich.text import Text


__all__ = ["UP", "DOWN", "describe", "event_time", "fmt_num", "latency_ms"]

UP = "green"
DOWN = "red"


def fmt_num(value: Decimal | int | float | None) -> str:
    """A number as the gateway sent it, thousands grouped (``97,523.45``)."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return f"{value:,.{places}f}"
    return f"{value:,}"


def event_time(msg: client.Message) -> int | None:
    """The message's own timestamp in ms epoch, when it has one."""
    if isinstance(msg, client.Price | client.Ticker | client.Trade | client.Depth):
        return msg.data.timestamp
    if isinstance(msg, client.Signal | client.Order | client.Portfolio | client.Account):
        data = msg.data
        stamp = data.get("timestamp") if isinstance(data, dict) else None
        return stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None
    return None


def latency_ms(msg: client.Message, now_ms: int | None = None) -> int | None:
    """Milliseconds from the message's timestamp to now (snapshots repeat old values: None)."""
    stamp = event_time(msg)
    if stamp is None or getattr(msg, "snapshot", False):
        return None
    now = now_ms if now_ms is not None else wall_ms()
    return now - stamp


def _payload(data: object, limit: int = 80) -> str:
    text = json.dumps(data, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(msg: client.Message, previous: Decimal | None = None) -> Text:
    """A short colored line for ``msg``; ``previous`` price colors a rise or a fall."""
    from rich.text import Text

    line = Text()
    match msg:
        case client.Price() | client.Ticker():
            d = msg.data
            style = "" if previous is None or d.price == previous else UP if d.price > previous else DOWN
            arrow = "" if not style else " ▲" if style == UP else " ▼"
            line.append(fmt_num(d.price) + arrow, style=style or "bold")
            pct_style = UP if d.changePercent24h > 0 else DOWN if d.changePercent24h < 0 else ""
            line.append(f"  {d.changePercent24h:+}%", style=pct_style)
            if isinstance(msg, client.Ticker):
                line.append(f"  bid {fmt_num(msg.data.bid)} ask {fmt_num(msg.data.ask)}", style="dim")
        case client.Kline():
            k = msg.data
            line.append(f"O {fmt_num(k.open)} H {fmt_num(k.high)} L {fmt_num(k.low)} C ")
            line.append(fmt_num(k.close), style=UP if k.close >= k.open else DOWN)
            line.append(f"  V {fmt_num(k.volume)}", style="dim")
            line.append("  final" if k.isFinal else "  live", style="bold" if k.isFinal else "dim")
        case client.Trade():
            t = msg.data
            line.append(f"{t.side:4}", style=UP if t.side == "buy" else DOWN)
            line.append(f" {fmt_num(t.quantity)} @ {fmt_num(t.price)}")
        case client.Depth():
            bid = msg.data.bids[0] if msg.data.bids else None
            ask = msg.data.asks[0] if msg.data.asks else None
            line.append(f"{fmt_num(bid[1]) if bid else '-'} @ ", style="dim")
            line.append(fmt_num(bid[0]) if bid else "-", style=UP)
            line.append(" | ")
            line.append(fmt_num(ask[0]) if ask else "-", style=DOWN)
            line.append(f" @ {fmt_num(ask[1]) if ask else '-'}", style="dim")
        case client.Signal() | client.Order() | client.Portfolio() | client.Account():
            line.append(_payload(msg.data), style="magenta")
        case client.Status():
            line.append(msg.status, style=UP if msg.live else "bold yellow")
            if msg.reason:
                line.append(f" ({msg.reason})", style="yellow")
        case client.Gap():
            line.append(f"gap: {msg.missed} missed (seq {msg.after} -> {msg.seq})", style="yellow")
        case client.Recovered():
            line.append(f"resumed {msg.replayed}", style="green")
        case client.NotRecovered():
            line.append(f"not recovered: {msg.reason}", style="bold yellow")
        case client.Error():
            line.append(f"{msg.code}: {msg.message}", style="bold red")
        case client.Disconnected():
            when = "waiting for a new token" if msg.retry_in is None else f"retry in {msg.retry_in:.1f}s"
            line.append(f"disconnected (code {msg.code}) {msg.reason}; {when}", style="bold yellow")
        case client.Connected():
            line.append("reconnected" if msg.resumed else "connected", style="bold green")
            line.append(f" as {msg.clientId}", style="dim")
        case _:
            line.append(type(msg).__name__.lower(), style="dim")
    return line
