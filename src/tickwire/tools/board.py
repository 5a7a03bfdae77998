"""The state behind ``tickwire watch``: a :class:`Board` of the latest message of every channel.

:meth:`Board.add` takes each message the feed yields; the screen
(:mod:`.screen`) is drawn from the board alone, so the feed never waits for
the terminal. No I/O here: the clock is injected.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import client
from .describe import describe


if TYPE_CHECKING:
    from rich.text import Text


__all__ = ["Board", "Candle", "Quote"]

_QUIET_AFTER = 5.0
"""Seconds without a message before a latest-value channel is shown as quiet."""


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
