"""Upstream sources: ``simulated`` (the embedded default), ``binance``, ``replay``."""

from __future__ import annotations

from .base import Source, SourceSink


__all__ = ["Source", "SourceSink"]
