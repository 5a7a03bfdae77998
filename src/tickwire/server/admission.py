"""Connection admission: allowed Origins, a total cap and a cap per client address.

Checked when a WebSocket arrives, before a session exists (docs/security.md):

* ``Origin`` not allowed (only browsers send one; a list must be configured)
  -> the upgrade completes and the socket is closed with 1008.
* more than ``max_per_ip`` connections from one address -> closed with 4029.
* more than ``max_connections`` in total -> HTTP 503 before the upgrade: a
  full node should spend nothing on a new client, and a load balancer reads
  a 503 as "try another node".

Every refusal is counted in ``Stats.rejected_connections`` by reason (the
``tickwire_connections_rejected`` metric). Pure bookkeeping: no I/O here.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import CloseCode
from ..stats import Stats


__all__ = ["ConnectionGuard", "Network", "Rejection", "client_address", "normalize_origin"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a connection is refused.

    ``close_code`` is set when the refusal is a WebSocket close after the
    upgrade; ``http_status`` when the upgrade is refused outright.
    """

    reason: str  # the metric label: origin, total, per_ip
    message: str
    close_code: int | None = None
    http_status: int | None = None


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: ``peer``, unless ``peer`` is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read from the right (each
    proxy appends the address it saw) and the first hop that is not itself a
    trusted proxy is the client. A client can put anything at the left of the
    header, which is why only hops appended by trusted proxies count, and a
    hop that is not an IP address ends the walk at the last trusted one.
    """
    if not trusted or not forwarded_for or not _trusted(peer, trusted):
        return peer
    client = peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client
        client = hop
        if not _trusted(hop, trusted):
            return hop
    return client


def normalize_origin(origin: str) -> str:
    """``Origin`` as compared: lower case, no trailing slash (RFC 6454 serializes hosts in lower case)."""
    return origin.strip().rstrip("/").lower()


class ConnectionGuard:
    """Counts open connections and admits or refuses new ones.

    Args:
        max_connections: total WebSocket connections; 0 means no cap.
        max_per_ip: connections per client address; 0 means no cap.
        allowed_origins: exact Origins (``https://app.example.com``) browsers
            may connect from; empty or ``*`` allows any. A request without an
            ``Origin`` header (not a browser) is not affected.
        stats: where refusals are counted.
    """

    def __init__(
        self,
        *,
        max_connections: int = 0,
        max_per_ip: int = 0,
        allowed_origins: Iterable[str] = (),
        stats: Stats,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        origins = {normalize_origin(o) for o in allowed_origins}
        self._origins: frozenset[str] | None = None if not origins or "*" in origins else frozenset(origins)
        self._stats = stats
        self._per_ip: Counter[str] = Counter()
        self.total = 0

    def origin_allowed(self, origin: str | None) -> bool:
        return origin is None or self._origins is None or normalize_origin(origin) in self._origins

    def admit(self, address: str, origin: str | None) -> Rejection | None:
        """Admit a connection (count it) or say why not. Admitted ones must be :meth:`release`\\ d."""
        rejection = self._check(address, origin)
        if rejection is not None:
            self._stats.count_rejected(rejection.reason)
            return rejection
        self._per_ip[address] += 1
        self.total += 1
        return None

    def _check(self, address: str, origin: str | None) -> Rejection | None:
        if not self.origin_allowed(origin):
            return Rejection("origin", "origin not allowed", close_code=CloseCode.POLICY_VIOLATION)
        if self.max_connections and self.total >= self.max_connections:
            return Rejection("total", "server at its connection limit", http_status=503)
        if self.max_per_ip and self._per_ip[address] >= self.max_per_ip:
            return Rejection(
                "per_ip",
                f"too many connections from this address (limit {self.max_per_ip})",
                close_code=CloseCode.TOO_MANY_CONNECTIONS,
            )
        return None

    def release(self, address: str) -> None:
        """Forget one admitted connection of ``address``."""
        self.total -= 1
        left = self._per_ip[address] - 1
        if left > 0:
            self._per_ip[address] = left
        else:
            del self._per_ip[address]

    def connections_from(self, address: str) -> int:
        return self._per_ip.get(address, 0)
