"""Who a session's client is: the ``auth`` message, private channels, token expiry.

A mixin of :class:`~tickwire.session.Session` (docs/security.md):

* a private channel is readable only by its own user (:meth:`IdentityMixin._authorize`,
  on every subscribe);
* ``auth`` switches the identity; switching to another user ends the previous
  user's private channels, and their frames not yet written are purged
  (:meth:`IdentityMixin.set_identity`);
* when the identity's token expires without a fresh ``auth``, the connection
  is closed with 4001, from one timer per session (none without an expiry).

The methods run on the session's own state (its slots), which the
``TYPE_CHECKING`` block names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from .channels import Channel
from .errors import CloseCode, ErrorCode, ProtocolError
from .protocol import Auth, encode_authenticated, encode_unsubscribed


if TYPE_CHECKING:
    from .bookview import BookView
    from .hub import Hub
    from .outbox import Outbox


__all__ = ["Authenticate", "Identity", "IdentityMixin"]

logger = logging.getLogger("tickwire.session")


class Identity(Protocol):
    """Who the client is (auth.Identity): the token's ``sub`` and its expiry in epoch ms."""

    @property
    def user(self) -> str: ...

    @property
    def expires_at_ms(self) -> int | None: ...


Authenticate = Callable[[str], Awaitable[Identity]]
"""Verify a token; raises ProtocolError(UNAUTHORIZED) when it is not valid."""


class IdentityMixin:
    """The session's identity: what it may subscribe, ``auth``, and the expiry timer."""

    # No slots of its own: the state is the session's (its __slots__). Hidden from mypy,
    # which would otherwise refuse the session's slots assigned here.
    if not TYPE_CHECKING:
        __slots__ = ()

    if TYPE_CHECKING:  # provided by Session
        client_id: str
        closed: bool
        identity: Identity | None
        subscriptions: dict[str, Channel]
        _hub: Hub
        _outbox: Outbox
        _authenticate: Authenticate | None
        _expiry: asyncio.TimerHandle | None
        _clock_ms: Callable[[], int]

        def push_latest(self, channel: str, frame: bytes) -> None: ...
        def push_final(self, channel: str, frame: bytes) -> None: ...
        def push_state(self, channel: str, frame: bytes, snapshot: bool, view: BookView) -> None: ...
        def send(self, payload: bytes) -> None: ...
        def close(self, code: int, reason: str) -> None: ...

    def _authorize(self, channel: Channel) -> None:
        if not channel.is_private:
            return
        if self.identity is None:
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED,
                "private channel needs a valid token (?token= or an 'auth' message)",
                channel=channel.name,
            )
        if self.identity.user != channel.user:
            raise ProtocolError(ErrorCode.FORBIDDEN, "private channel of another user", channel=channel.name)

    async def _auth(self, msg: Auth) -> None:
        if self._authenticate is None:
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, "authentication is not configured on this gateway", ref=msg.id
            )
        try:
            identity = await self._authenticate(msg.token)
        except ProtocolError as exc:
            exc.ref = msg.id
            raise
        self.set_identity(identity)
        self.send(encode_authenticated(identity.user, identity.expires_at_ms, msg.id))

    def set_identity(self, identity: Identity | None) -> None:
        """Switch user; private channels of the previous user end (docs/protocol.md "Control messages").

        The new identity's expiry replaces the previous one: when it passes
        without a fresh ``auth``, the connection is closed with 4001.
        """
        previous = self.identity
        self.identity = identity
        self._schedule_expiry()
        if previous is None or (identity is not None and identity.user == previous.user):
            return
        for name, channel in list(self.subscriptions.items()):
            if channel.is_private:
                del self.subscriptions[name]
                self._hub.unsubscribe(self, name)
                self._outbox.purge(name)  # the previous user's unwritten frames
                self.send(encode_unsubscribed(name, self._clock_ms(), reason="re-authenticated"))

    _MAX_TIMER = 86400.0  # far expiries are re-checked daily (event loops dislike huge delays)

    def _schedule_expiry(self) -> None:
        self._cancel_expiry()
        identity = self.identity
        if identity is None or identity.expires_at_ms is None or self.closed:
            return
        delay = (identity.expires_at_ms - self._clock_ms()) / 1000
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_at(loop.time() + min(max(delay, 0.0), self._MAX_TIMER), self._on_expiry)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _on_expiry(self) -> None:
        self._expiry = None
        identity = self.identity
        if identity is None or identity.expires_at_ms is None or self.closed:
            return
        if self._clock_ms() < identity.expires_at_ms:
            self._schedule_expiry()  # a far expiry, checked again after _MAX_TIMER
            return
        logger.info("client %s: token of %s expired", self.client_id, identity.user)
        self.close(CloseCode.TOKEN_EXPIRED, "token expired")
