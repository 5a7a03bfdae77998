"""Reconnect policy, pure: a delay generator and a close-code classifier.

The loop in :mod:`.feed` asks :func:`policy` what a close code means, then
takes its delay from the shared pure :func:`tickwire.backoff.backoff`
(capped, jittered; restarted after every connection that lasted). docs/protocol.md "Close codes":

======  ==================================  =====================================
code    meaning                             the client
======  ==================================  =====================================
1000    normal close                        reconnects with the normal back-off
1001    server restarting                   reconnects soon (a jittered short delay)
1006    connection lost                     reconnects with the normal back-off
1008    policy violation                    stops and raises
1009    frame too large                     stops and raises
4001    token expired or revoked            waits for ``set_token()``
4008    slow consumer                       backs off longer, then reconnects
4029    too many connections                backs off longer, then reconnects
======  ==================================  =====================================
"""

from __future__ import annotations

import enum

from ..backoff import backoff


__all__ = ["Action", "backoff", "policy"]


class Action(enum.Enum):
    """What to do after a connection ended."""

    SOON = "soon"  # 1001: the server restarts; come back after a short jittered delay
    RETRY = "retry"  # the normal capped exponential back-off
    LONG = "long"  # 4008/4029: the server asked us to slow down
    WAIT_TOKEN = "wait-token"  # 4001: nothing to do until a new token is given
    FATAL = "fatal"  # 1008/1009: retrying would fail the same way


_POLICY = {
    1001: Action.SOON,
    1008: Action.FATAL,
    1009: Action.FATAL,
    4001: Action.WAIT_TOKEN,
    4008: Action.LONG,
    4029: Action.LONG,
}


def policy(code: int | None) -> Action:
    """The action for a close code (``None``: no close frame, e.g. a refused connect)."""
    if code is None:
        return Action.RETRY
    return _POLICY.get(code, Action.RETRY)
