"""Client messages waiting for their direct replies (matched by ``id``)."""

from __future__ import annotations

import asyncio

from .messages import Authenticated, Error, Pong, Subscribed, Subscriptions, Unsubscribed


__all__ = ["Reply", "Request"]

Reply = Subscribed | Unsubscribed | Error | Pong | Authenticated | Subscriptions
"""A direct reply of the gateway to a client message."""


class Request:
    """A client message waiting for ``expected`` direct replies (matched by ``id``)."""

    __slots__ = ("answers", "emit", "expected", "future")

    def __init__(self, expected: int, future: asyncio.Future[list[Reply]], *, emit: bool) -> None:
        self.expected = expected
        self.future = future
        self.answers: list[Reply] = []
        self.emit = emit  # also put replies in the stream (internal requests)

    def add(self, reply: Reply) -> bool:
        """Record a reply; True once the request is complete."""
        self.answers.append(reply)
        whole = isinstance(reply, Error) and reply.channel is None  # the message itself was refused
        if whole or len(self.answers) >= self.expected:
            self.finish()
            return True
        return False

    def finish(self) -> None:
        if not self.future.done():
            self.future.set_result(self.answers)
