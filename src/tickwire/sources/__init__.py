"""Upstream sources, by name: ``simulated`` (the embedded default), ``binance``, ``replay``.

The registry is the one place a source is named: the ``--source`` choices,
:func:`make_source`, ``tickwire record`` and the health output all read it.
Classes are imported when asked for, since each has its own dependencies.
To add a source, write ``sources/<name>.py`` with a class that satisfies
:class:`~.base.Source` and has ``from_settings``, and add one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

from .base import RecordingSource, Source, SourceHealth, SourceKind, SourceSink


if TYPE_CHECKING:
    from ..config import Settings


__all__ = [
    "SOURCE_NAMES",
    "RecordingSource",
    "Source",
    "SourceClass",
    "SourceHealth",
    "SourceKind",
    "SourceSink",
    "make_source",
    "source_class",
]

_REGISTRY: dict[str, str] = {
    "simulated": "simulated:SimulatedSource",
    "binance": "binance:BinanceSource",
    "replay": "replay:ReplaySource",
}

SOURCE_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""The values ``--source`` takes."""


class SourceClass(Protocol):
    """What the registry holds: a source class that builds itself from the settings."""

    name: str
    kind: SourceKind

    def from_settings(self, settings: Settings) -> Source: ...


def source_class(name: str) -> SourceClass:
    """The class registered as ``name`` (imported now).

    Raises:
        KeyError: no source has that name.
    """
    module, _, attr = _REGISTRY[name].partition(":")
    cls: SourceClass = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    return cls


def make_source(settings: Settings) -> Source:
    """The source ``settings.source`` names."""
    return source_class(settings.source).from_settings(settings)
