"""The venue's connection rules as pure code: no sockets, no clock reads, no sleeping.

The connect URL stays under the length the server accepts (streams beyond it
follow by ``SUBSCRIBE``); control messages are paced under 5 incoming messages
per second per connection, pongs counted, because the venue closes a connection
over it with 1008 and bans IPs that keep doing it; a failure is either worth a
retry (network, timeout, handshake) or a bug; a refused handshake's
``Retry-After`` is honoured. See the package docstring for the sources.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque

import aiohttp

from ...errors import UpstreamError


__all__ = ["Pacer", "connect_url", "process_exception", "retry_after"]


def process_exception(exc: BaseException) -> BaseException | None:
    """None when a failed connect or a dropped connection is worth retrying;
    the exception itself when it is a bug that retrying cannot fix."""
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError | UpstreamError):
        return None
    return exc


def retry_after(exc: BaseException) -> float:
    """``Retry-After`` of a refused handshake (429/418), else 0."""
    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status in (418, 429) and exc.headers:
        with contextlib.suppress(ValueError):
            return float(exc.headers.get("Retry-After", "0"))
    return 0.0


def connect_url(ws_url: str, streams: list[str], *, max_length: int) -> tuple[str, list[str]]:
    """The connect URL and the streams it carries (the rest go by SUBSCRIBE).

    Args:
        ws_url: the stream base URL, without a trailing slash.
        streams: stream names, in the order they should be put in the URL.
        max_length: the longest URL to build, in characters.
    """
    base = f"{ws_url}/stream?streams="
    included: list[str] = []
    length = len(base)
    for stream in streams:
        if length + len(stream) + 1 > max_length:
            break
        included.append(stream)
        length += len(stream) + 1
    return base + "/".join(included), included


class Pacer:
    """When the next control message may go out, from the times of the messages we sent.

    Messages are spaced ``interval`` apart, and at most ``per_second - 2`` of
    ours (pongs included) may be in the last second when one is sent: one
    slot stays free for a pong. A token bucket of ``per_second`` would let
    nearly twice that through in a rolling second (see the notes on 1008).
    """

    def __init__(self, *, interval: float, per_second: int) -> None:
        self.interval = interval
        self.budget = per_second - 2
        self._sends: deque[float] = deque()  # times of every message we sent (controls and pongs)
        self._last_control = -math.inf

    def sent(self, now: float, *, control: bool = False) -> None:
        """We sent a message (a pong, or a control message) at ``now``."""
        self._sends.append(now)
        if control:
            self._last_control = now

    def wait(self, now: float) -> float:
        """Seconds to wait before a control message may go (0 or less: now)."""
        while self._sends and self._sends[0] <= now - 1.0:
            self._sends.popleft()
        wait = self._last_control + self.interval - now
        if len(self._sends) >= self.budget:
            wait = max(wait, self._sends[0] + 1.0 - now)
        return wait
