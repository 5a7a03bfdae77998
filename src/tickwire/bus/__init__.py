"""Buses move publications and demand between nodes: ``memory`` (one node), ``redis``."""

from __future__ import annotations

from .base import Bus, BusListener, DemandListener
from .memory import MemoryBus


__all__ = ["Bus", "BusListener", "DemandListener", "MemoryBus"]
