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
from ..events import Event
from ..health import SourceHealth


__all__ = ["RecordingSource", "Source", "SourceHealth", "SourceKind", "SourceSink"]


class SourceKind(enum.Enum):
    """What a source's data is: the operator's choice, shown in ``/health`` and metrics."""

    LIVE = "live"  # a real venue's streams (Binance)
    SIMULATED = "simulated"  # the seeded simulated market: invented, and said so
    REPLAY = "replay"  # a recorded capture played back


class SourceSink(Protocol):
    def on_event(self, event: Event) -> None: ...

    def on_status(self, channel: str, live: bool, reason: str | None) -> None: ...


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


@runtime_checkable
class RecordingSource(Source, Protocol):
    """A source whose raw upstream frames can be recorded (``tickwire record``)."""

    raw_hook: Callable[[str, int], None] | None
    """Called with (frame text, receive ms) for every data frame the source accepted."""

    rest_hook: Callable[[str, bytes, int], None] | None
    """Called with (stream, body, receive ms) for every REST snapshot the source used."""
