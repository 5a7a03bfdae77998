"""The source role: one upstream that turns venue data into :mod:`events`.

The ingest tells a source which channels are wanted (``open``/``close``);
the source opens and closes upstream streams to match, and reports events
and per-channel liveness to its sink. A source never invents data: when its
upstream is down it reports the channels stale and sends nothing.
"""

from __future__ import annotations

from typing import Protocol

from ..channels import Channel
from ..events import Event


__all__ = ["Source", "SourceSink"]


class SourceSink(Protocol):
    def on_event(self, event: Event) -> None: ...

    def on_status(self, channel: str, live: bool, reason: str | None) -> None: ...


class Source(Protocol):
    name: str
    """``simulated``, ``binance`` or ``replay``: shown in ``/health``."""

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

    def health(self) -> dict[str, object]:
        """``{"source": name, "live": bool, ...}`` for ``/health``."""
