"""Channel epochs of one process: the names of unbroken histories of ``seq`` (docs/resume.md).

An epoch is a crypto-random token made when the process starts, plus a
generation: a node-wide counter, taken when a channel is opened and dropped
when the channel is fully released (the hub let it go with its history, or
the ingest forgot it). So a restart always changes every epoch, and a
channel reopened after a release gets a new one, while a channel held
without a break keeps its epoch however long it lives.

This is the single-node rule of the memory bus. The Redis bus keeps epochs in
Redis instead, cluster-wide (:mod:`.redis`).
"""

from __future__ import annotations

import secrets


__all__ = ["LocalEpochs"]


class LocalEpochs:
    """Epochs of the channels one process holds.

    Args:
        token: the process's random part (tests pass one; by default 6 random bytes, 8 characters).
    """

    __slots__ = ("_epochs", "_generation", "token")

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(6)
        self._generation = 0
        self._epochs: dict[str, str] = {}  # only channels open now: bounded by them

    def epoch(self, channel: str) -> str:
        """The epoch of ``channel``; opening it takes the next generation."""
        epoch = self._epochs.get(channel)
        if epoch is None:
            self._generation += 1
            epoch = self._epochs[channel] = f"{self.token}.{self._generation}"
        return epoch

    def release(self, channel: str) -> None:
        """``channel`` was fully released: its history is gone, the next open is a new epoch."""
        self._epochs.pop(channel, None)
