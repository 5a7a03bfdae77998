"""A session's subscribe, unsubscribe and throttle handling (a mixin of :class:`~tickwire.session.Session`).

Theory of operation:

* ``subscribe`` answers each channel on its own (an ack, or an error with the
  channel named): authorize (:class:`~tickwire.identity.IdentityMixin`), check the
  client's subscription limit, validate a market symbol, then subscribe in the
  hub, which greets with the channel's position and, when the message's
  ``since`` names the channel, the replay (:mod:`tickwire.resume`). The ack and
  the snapshot (or replay) are queued before the next ``await``, so nothing of
  the channel slips between them.
* A throttled subscription (``options.throttleMs``) puts a
  :class:`~tickwire.throttle.Held` view in the hub's subscriber set instead of
  the session (:meth:`SubscriptionsMixin._subscriber`), and the session's one
  :class:`~tickwire.throttle.Throttle` holds its frames until the node's tick
  (:meth:`SubscriptionsMixin.tick`). An unthrottled subscription is the session
  itself: its deliveries never pass through here.
* A later subscribe of the same channel replaces the options in force
  (:meth:`SubscriptionsMixin._settle`): the hub then holds the new subscriber,
  and the one it replaces leaves.

The methods live here only to keep ``session.py`` readable; they run on the
session's own state (its slots), which the ``TYPE_CHECKING`` block names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .channels import Channel, Delivery, Kind, parse_channel
from .errors import ErrorCode, ProtocolError
from .hub import Subscriber
from .messages import SubscribeOptions
from .protocol import Position, Subscribe, Unsubscribe, encode_unsubscribed
from .resume import position_of
from .throttle import Throttle


if TYPE_CHECKING:
    from .bookview import BookView
    from .flusher import Flusher
    from .hub import Hub
    from .outbox import Outbox
    from .session import Limits, SessionStats


__all__ = ["SubscriptionsMixin", "Validate"]

Validate = Callable[[Channel], Awaitable[None]]
"""Check that a market channel's symbol exists; raises ProtocolError(UNKNOWN_SYMBOL)."""


class SubscriptionsMixin:
    """``subscribe``, ``unsubscribe`` and the throttle of one client's subscriptions."""

    # No slots of its own: the state is the session's (its __slots__). Hidden from mypy,
    # which would otherwise refuse the session's slots assigned here.
    if not TYPE_CHECKING:
        __slots__ = ()

    if TYPE_CHECKING:  # provided by Session
        closed: bool
        subscriptions: dict[str, Channel]
        _hub: Hub
        _limits: Limits
        _stats: SessionStats
        _validate: Validate
        _outbox: Outbox
        _flusher: Flusher
        _throttle: Throttle | None
        _clock_ms: Callable[[], int]

        def push_latest(self, channel: str, frame: bytes) -> None: ...
        def push_final(self, channel: str, frame: bytes) -> None: ...
        def push_state(self, channel: str, frame: bytes, snapshot: bool, view: BookView) -> None: ...
        def send(self, payload: bytes) -> None: ...
        def _mark(self) -> None: ...
        def _error(self, exc: ProtocolError) -> None: ...
        def _authorize(self, channel: Channel) -> None: ...

    @property
    def _max_list(self) -> int:
        return max(2 * self._limits.max_subscriptions, 100)

    async def _subscribe(self, msg: Subscribe) -> None:
        if not msg.channels:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'channels' must not be empty", ref=msg.id)
        # each channel gets its own answer; a list far over the limit is refused whole
        # so one frame cannot buy unbounded work
        limit = self._limits.max_subscriptions
        if len(msg.channels) > self._max_list:
            raise ProtocolError(
                ErrorCode.SUBSCRIPTION_LIMIT,
                f"at most {limit} channels per client; this message names {len(msg.channels)}",
                ref=msg.id,
            )
        budget = self._limits.max_queue // 2  # replays of one request: never a cause of 4008
        for name in msg.channels:
            if self.closed:
                return
            try:
                budget -= await self._subscribe_one(name, msg.id, msg.since, budget, msg.options)
            except ProtocolError as exc:
                exc.ref = msg.id
                self._error(exc)

    async def _subscribe_one(
        self,
        name: str,
        ref: str | int | None,
        since: dict[str, Position] | None,
        budget: int,
        options: SubscribeOptions | None = None,
    ) -> int:
        """Subscribe one channel (resuming it when ``since`` names it, throttled as ``options``
        say); returns the frames replayed."""
        channel = parse_channel(name)
        self._authorize(channel)
        if channel.name not in self.subscriptions:
            if len(self.subscriptions) >= self._limits.max_subscriptions:
                raise ProtocolError(
                    ErrorCode.SUBSCRIPTION_LIMIT,
                    f"at most {self._limits.max_subscriptions} channels per client",
                    channel=channel.name,
                )
            if channel.is_market:
                await self._validate(channel)
        window = self._window(channel, options, ref)
        key = self._subscriber(channel.name, window)
        position = position_of(since, name, channel.name)
        greeting = await self._hub.subscribe(key, channel.name, position, replay_cap=budget)
        if self.closed:
            self._hub.unsubscribe(key, channel.name)
            return 0
        self._settle(channel, key, window, greeted=bool(greeting))
        self.subscriptions[channel.name] = channel
        # ack and snapshot (or replay) are queued before the next await: nothing slips between
        in_force = SubscribeOptions(window) if options is not None or window else None
        self.send(greeting.ack(channel.name, self._clock_ms(), ref, options=in_force))
        for frame in greeting:
            self.push_final(channel.name, frame)
        if channel.kind is Kind.BOOK and (greeting.outcome is None or greeting.outcome.snapshot):
            self._hub.send_snapshot(key, channel.name)  # through the state class (or the throttle)
        return greeting.replayed

    # -- throttle per subscription (docs/protocol.md; tickwire.throttle) -------------

    def _window(self, channel: Channel, options: SubscribeOptions | None, ref: str | int | None) -> int:
        """The throttle (ms) to put in force: the message's; without options, the one in force."""
        if options is None:
            return self._throttle.window(channel.name) if self._throttle is not None else 0
        if options.throttleMs and channel.delivery is Delivery.EVERY:
            why = f"{channel.name}: every message matters on this channel, so it takes no throttle"
            self._error(ProtocolError(ErrorCode.INVALID_MESSAGE, why, channel=channel.name, ref=ref))
            return 0  # refused, and subscribed without one
        return options.throttleMs

    def _subscriber(self, name: str, window: int) -> Subscriber:
        """Who stands for this client in the hub's set of ``name``: a held view, or the session."""
        if not window:
            return self
        if self._throttle is None:
            self._throttle = Throttle(
                self._outbox,
                push_final=self.push_final,
                on_pending=lambda: self._flusher.ticker.add(self),
                on_superseded=self._stats.count_throttled,
            )
        return self._throttle.view_for(name)

    def _settle(self, channel: Channel, key: Subscriber, window: int, *, greeted: bool) -> None:
        """After the hub subscribed ``key``: put its throttle in force, drop the one it replaces."""
        previous: Subscriber | None = self if channel.name in self.subscriptions else None
        if self._throttle is not None:
            due = self._flusher.ticker.now_ms() + (window if greeted else 0)  # a snapshot is this window's
            state = channel.delivery is Delivery.STATE
            previous = self._throttle.settle(channel.name, key, window, state=state, due_ms=due) or previous
        if previous is not None and previous is not key:
            self._hub.unsubscribe(previous, channel.name)

    def tick(self, now_ms: int) -> bool:
        """For the node's tick: queue the throttled frames due at ``now_ms``; False once none is held."""
        throttle = self._throttle
        if throttle is None or self.closed:
            return False
        if throttle.release(now_ms, self._hub.snapshot_frame):
            self._mark()
        return throttle.pending

    def _unsubscribe(self, msg: Unsubscribe) -> None:
        if not msg.channels:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'channels' must not be empty", ref=msg.id)
        if len(msg.channels) > self._max_list:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"at most {self._max_list} channels per message", ref=msg.id
            )
        for name in msg.channels:
            try:
                channel = parse_channel(name)
            except ProtocolError as exc:
                exc.ref = msg.id
                self._error(exc)
                continue
            if self.subscriptions.pop(channel.name, None) is not None:
                view = self._throttle.remove(channel.name) if self._throttle is not None else None
                self._hub.unsubscribe(view or self, channel.name)
            self.send(encode_unsubscribed(channel.name, self._clock_ms(), msg.id))

    def _leave_all(self) -> None:
        """Leave every channel, throttled ones included (the session's cleanup)."""
        self._hub.remove(self, list(self.subscriptions))
        if self._throttle is not None:
            for name, view in self._throttle.clear():
                self._hub.unsubscribe(view, name)
        self.subscriptions.clear()
