"""A model-based test of resume: publish / status / disconnect / resume against the real hub.

A holder subscribes first and never leaves, so its stream is the channel's
published stream (publications and status changes, in order). Clients come
and go. A client that resumes from the last seq it saw must get, at once,
exactly the holder's events after that publication (status frames after it
included), then the live stream: its frames since the resume equal the
holder's from that point on, with nothing lost and nothing twice. When the
model says the ring no longer reaches back (``history_expired``) or the
replay is over the cap (``too_many``), the hub must say so and send no
replay at all.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tickwire.bus.memory import MemoryBus
from tickwire.frames import text_frame
from tickwire.history import History
from tickwire.hub import Hub
from tickwire.protocol import Position, encode_publication
from tickwire.publications import ChannelStatus, Publication

from .helpers import frame_payloads


CHANNEL = "trades:X1"
SIZE = 12  # entries a ring keeps
CAP = 5  # frames a replay may have
Event = tuple[str, Any]  # ("p", seq) or ("s", live)


def event_of(frame: bytes) -> Event:
    [payload] = frame_payloads(frame)
    msg = json.loads(payload)
    return ("s", msg["status"] == "live") if msg["type"] == "status" else ("p", msg["seq"])


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def push_latest(self, channel: str, frame: bytes) -> None:
        raise AssertionError("trades are final")

    def push_final(self, channel: str, frame: bytes) -> None:
        self.events.append(event_of(frame))

    def push_state(self, channel: str, frame: bytes, snapshot: bool, view: object) -> None:
        raise AssertionError("trades are not books")


class Client:
    def __init__(self) -> None:
        self.sub: Recorder | None = None
        self.base = 0  # index in the holder's stream where this connection's stream starts
        self.epoch = ""
        self.position = 0  # the last seq this client saw


class ResumeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.bus = MemoryBus()
        history = History(sizes={"trades": SIZE}, replay_cap=CAP)
        self.hub = Hub(self.bus, clock_ms=lambda: 0, history=history, resume_window=3600.0)
        self.holder = Recorder()
        self.epoch = self.run(self.hub.subscribe(self.holder, CHANNEL)).epoch
        self.seq = 0
        self.live = True
        self.clients = [Client() for _ in range(3)]
        self.outcomes: list[str] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.hub.close()
        self.loop.close()

    @property
    def stream(self) -> list[Event]:
        return self.holder.events

    def after(self, seq: int) -> int:
        """Index in the stream right after the publication ``seq`` (0: the start)."""
        return 0 if seq == 0 else self.stream.index(("p", seq)) + 1

    # -- the channel ------------------------------------------------------------------

    @rule(n=st.integers(min_value=1, max_value=4))
    def publish(self, n: int) -> None:
        for _ in range(n):
            self.seq += 1
            payload = encode_publication("trade", CHANNEL, self.seq, msgspec.Raw(b'{"id":%d}' % self.seq))
            self.bus.publish(Publication(CHANNEL, self.seq, payload, True, 0))

    @rule()
    def toggle_status(self) -> None:
        self.live = not self.live
        self.bus.publish_status(ChannelStatus(CHANNEL, self.live, None if self.live else "down", 0))

    # -- clients --------------------------------------------------------------------------

    @precondition(lambda self: any(c.sub is None and not c.epoch for c in self.clients))
    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        client = data.draw(st.sampled_from([c for c in self.clients if c.sub is None and not c.epoch]))
        client.sub = Recorder()
        greeting = self.run(self.hub.subscribe(client.sub, CHANNEL))
        client.epoch, client.position, client.base = greeting.epoch, greeting.seq, len(self.stream)
        assert greeting.seq == self.seq and greeting.epoch == self.epoch

    @precondition(lambda self: any(c.sub is not None for c in self.clients))
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        client = data.draw(st.sampled_from([c for c in self.clients if c.sub is not None]))
        assert client.sub is not None
        self.run(self._remove(client.sub))
        seen = [seq for kind, seq in client.sub.events if kind == "p"]
        client.position = seen[-1] if seen else client.position
        client.sub = None

    async def _remove(self, sub: Recorder) -> None:
        self.hub.remove(sub, [CHANNEL])

    @precondition(lambda self: any(c.sub is None and c.epoch for c in self.clients))
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        client = data.draw(st.sampled_from([c for c in self.clients if c.sub is None and c.epoch]))
        missed = self.stream[self.after(client.position) :]
        client.sub = Recorder()
        greeting = self.run(self.hub.subscribe(client.sub, CHANNEL, Position(client.epoch, client.position)))
        outcome = greeting.outcome
        assert outcome is not None
        self.outcomes.append(outcome.result)
        if len(missed) > SIZE:
            assert outcome.result == "history_expired"
        elif len(missed) > CAP:
            assert outcome.result == "too_many"
        else:
            assert outcome.recovered
            assert [event_of(f) for f in greeting] == missed  # exactly what it missed, in order
            assert greeting.replayed == len(missed)
            client.base = self.after(client.position)
            client.sub.events = [event_of(f) for f in greeting]
            return
        assert not outcome.recovered and all(b'"snapshot":true' in f or b'"status"' in f for f in greeting)
        client.base, client.position = len(self.stream), greeting.seq  # starts again from the snapshot

    @rule()
    def resume_ahead(self) -> None:
        sub = Recorder()
        greeting = self.run(self.hub.subscribe(sub, CHANNEL, Position(self.epoch, self.seq + 1)))
        assert greeting.outcome is not None and greeting.outcome.result == "ahead"
        self.run(self._remove(sub))

    @invariant()
    def every_connected_client_sees_the_stream(self) -> None:
        for client in self.clients:
            if client.sub is not None:
                assert client.sub.events == self.stream[client.base :]

    @invariant()
    def the_stream_is_the_published_one(self) -> None:
        seqs = [seq for kind, seq in self.stream if kind == "p"]
        assert seqs == list(range(1, self.seq + 1))


def test_frames_decode_as_events() -> None:
    frame = text_frame(b'{"type":"status","channel":"x","status":"live","timestamp":""}')
    assert event_of(frame) == ("s", True)


ResumeMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
test_resume_model = ResumeMachine.TestCase
