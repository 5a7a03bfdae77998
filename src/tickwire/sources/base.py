"""The source role: one upstream that turns venue data into :mod:`events`.

The ingest tells a source which channels are wanted (``open``/``close``);
the source opens and closes upstream streams to match, and reports events
and per-channel liveness to its sink. A source never invents data: when its
upstream is down it reports the channels stale and sends nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..channels import Channel
from ..events import Event, Kline
from ..health import SourceHealth
from ..marketdata import SymbolInfo


__all__ = ["RecordingSource", "Source", "SourceHealth", "SourceKind", "SourceSink"]


class SourceKind(enum.Enum):
    """What a source's data is: the operator's choice, shown in ``/health`` and metrics."""

    LIVE = "live"  # a real venue's streams (Binance)
    SIMULATED = "simulated"  # the seeded simulated market: invented, and said so
    REPLAY = "replay"  # a recorded capture played back


class SourceSink(Protocol):
    def on_event(self, event: Event) -> None: ...

    def on_status(
        self, channel: str, live: bool, reason: str | None, gap: tuple[int, int] | None = None
    ) -> None:
        """``gap``: on ``live``, what the outage lost for good (trade ids or candle open times)."""


class Source(Protocol):
    name: str
    """The registry name (``simulated``, ``binance``, ``replay``): shown in ``/health``."""

    kind: SourceKind

    def attach(self, sink: SourceSink) -> None: ...

    async def run(self) -> None:
        """Run until cancelled; reconnects are the source's own business."""

    async def validate(self, channel: Channel) -> None:
        """Raise ProtocolError(UNKNOWN_SYMBOL) if the venue does not trade the symbol."""

    def open(self, channel: Channel) -> None:
        """Start delivering ``channel``; emits its current value soon when known."""

    def close(self, channel: Channel) -> None: ...

    def streams(self) -> list[str]:
        """Upstream stream names open now (e.g. ``btcusdt@ticker``)."""

    def known_symbols(self) -> list[str] | None:
        """The symbols the upstream lists, or None while it is not known (no list yet)."""

    def health(self) -> SourceHealth: ...

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        """The newest ``limit`` candles opening at or before ``end_time`` (ms; None: now), oldest first.

        The last one may be in progress (``final`` false). Serves ``GET /api/v1/klines``.

        Raises:
            ProtocolError: ``UNKNOWN_SYMBOL`` when the source does not list ``symbol``.
            MarketDataUnavailable: the upstream cannot answer now (HTTP 503).
        """

    async def symbols(self) -> list[SymbolInfo]:
        """Every symbol the source lists, for ``GET /api/v1/symbols``.

        Raises:
            MarketDataUnavailable: the upstream cannot answer now (HTTP 503).
        """


@runtime_checkable
class RecordingSource(Source, Protocol):
    """A source whose raw upstream frames can be recorded (``tickwire record``)."""

    raw_hook: Callable[[str, int], None] | None
    """Called with (frame text, receive ms) for every data frame the source accepted."""

    rest_hook: Callable[[str, bytes, int], None] | None
    """Called with (stream, body, receive ms) for every REST snapshot the source used."""
