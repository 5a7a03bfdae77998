"""The HTTP side of a node: WebSocket and HTTP endpoints, admission, auth,
the publish API, metrics, access logs and the ``--workers`` supervisor."""

from __future__ import annotations

from .app import Gateway, run, serve


__all__ = ["Gateway", "run", "serve"]
