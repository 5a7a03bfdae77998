"""The Binance Spot source: WebSocket streams and REST, one module per concern.

``source`` (the :class:`~..base.Source`), ``connection`` (one combined-stream
connection), ``rest`` (REST calls and their weights), ``parse`` (frames to events).
"""

from __future__ import annotations

from .source import BinanceHealth, BinanceSource


__all__ = ["BinanceHealth", "BinanceSource"]
