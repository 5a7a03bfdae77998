"""The ladder of a ``book:`` channel for ``tickwire watch``: a pure function of a client Book.

Asks above, best nearest the spread, bids below; each level with its size,
the cumulative size from the best price, and a bar of that cumulative size.
A book that cannot be trusted right now (no snapshot yet, waiting for the
snapshot after a gap or a checksum mismatch, or its channel is stale) says so
in its title and is drawn dim, never patched up.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from ..client import Book
from .describe import DOWN, UP


if TYPE_CHECKING:
    from rich.console import RenderableType


__all__ = ["book_state", "ladder"]

_BAR = 16
"""Characters of the widest cumulative-size bar."""


def book_state(book: Book | None) -> tuple[str, str]:
    """(text, style) of a book: live and verified, stale, resyncing or waiting."""
    if book is None or book.seq is None:
        return "waiting for the snapshot", "dim"
    if book.stale:
        return f"stale: {book.stale}", "bold yellow"
    if not book.synced:
        return f"resyncing ({book.problem or 'disconnected'})", "bold yellow"
    return f"seq {book.seq} · checksum ok", "green"


def _fmt(value: Decimal, decimals: int) -> str:
    return format(value, f",.{decimals}f")


def ladder(channel: str, book: Book | None, *, rows: int = 10) -> RenderableType:
    """The ladder of ``book`` (the best ``rows`` levels of each side) as a rich table."""
    from rich.table import Table
    from rich.text import Text

    text, style = book_state(book)
    title = Text(channel + "  ", style="bold")
    title.append(text, style=style)
    table = Table(title=title, title_justify="left", expand=True)
    for name in ("price", "size", "total", ""):
        table.add_column(name, justify="left" if name == "" else "right", no_wrap=True)
    if book is None or book.precision is None:
        return table
    dim = "" if style == "green" else "dim"
    pd, qd = book.precision.price, book.precision.qty
    bids, asks = (Book.cumulative(side) for side in book.top(rows))
    most = max([t for *_, t in bids + asks] or [Decimal(1)])
    for levels, color in ((asks[::-1], DOWN), (bids, UP)):
        for n, (price, qty, total) in enumerate(levels, 1):
            bar = "█" * max(1, round(total / most * _BAR))
            table.add_row(
                Text(_fmt(price, pd), style=f"{color} {dim}".strip()),
                _fmt(qty, qd),
                Text(_fmt(total, qd), style="dim"),
                Text(bar, style=f"{color} {dim}".strip()),
                end_section=color == DOWN and n == len(levels),
            )
        if color == DOWN:
            spread = "-" if book.spread is None else _fmt(book.spread, pd)
            table.add_row(Text(f"spread {spread}", style="dim"), end_section=True)
    return table
