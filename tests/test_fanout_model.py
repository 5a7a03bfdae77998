"""A model-based test of the hub.

Random subscribe / unsubscribe / publish / disconnect steps run against the
real :class:`Hub` (over a recording in-memory bus) and against a
``dict[str, set[int]]`` model. A publish step is a burst of messages within
one loop iteration, so the hub's conflation runs: the model expects only the
newest latest value of each channel in a burst, and every final message.
After every step the deliveries, the subscriber counts and the bus demand
must agree with the model; after every client has disconnected the hub
holds nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tickwire.bus.memory import MemoryBus
from tickwire.frames import text_frame
from tickwire.hub import Hub
from tickwire.publications import Publication


CLIENTS = st.integers(min_value=0, max_value=5)
CHANNELS = st.sampled_from(["price:BTCUSDT", "trades:BTCUSDT", "klines:ETHUSDT:1m", "depth:ETHUSDT"])
# (channel, final) publications sent in one loop iteration; few channels, so bursts repeat them
BURSTS = st.lists(st.tuples(CHANNELS, st.booleans()), min_size=1, max_size=6)


class RecordingBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__()
        self.wanted: set[str] = set()
        self.demand_events = 0

    def want(self, channel: str) -> None:
        assert channel not in self.wanted, "want twice"
        self.wanted.add(channel)
        self.demand_events += 1

    def unwant(self, channel: str) -> None:
        assert channel in self.wanted, "unwant without want"
        self.wanted.discard(channel)
        self.demand_events += 1


class Recorder:
    """A subscriber that records what the hub pushes."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.got: list[tuple[str, bytes, bool]] = []

    def push_latest(self, channel: str, frame: bytes) -> None:
        self.got.append((channel, frame, False))

    def push_final(self, channel: str, frame: bytes) -> None:
        self.got.append((channel, frame, True))

    def push_state(self, channel: str, frame: bytes, snapshot: bool, view: object) -> None:
        self.got.append((channel, frame, True))  # no book channel in this model


class HubMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.bus = RecordingBus()
        self.delivered: Counter[str] = Counter()
        self.hub = Hub(self.bus, clock_ms=lambda: 0, on_deliver=self._on_deliver)
        self.clients = {n: Recorder(n) for n in range(6)}
        self.model: dict[str, set[int]] = {}
        self.seq: Counter[str] = Counter()
        self.expected: dict[int, int] = dict.fromkeys(self.clients, 0)

    def _on_deliver(self, pub: Publication, subscribers: int) -> None:
        self.delivered[pub.channel] += subscribers

    def teardown(self) -> None:
        for n in self.clients:
            self.disconnect(n)
        assert self.hub.channel_count == 0
        assert self.hub.subscription_count == 0
        assert self.bus.wanted == set()
        self.loop.close()

    @rule(n=CLIENTS, channel=CHANNELS)
    def subscribe(self, n: int, channel: str) -> None:
        client = self.clients[n]
        before = len(client.got)
        greeting = self.loop.run_until_complete(self.hub.subscribe(client, channel))
        self.model.setdefault(channel, set()).add(n)
        assert len(client.got) == before  # greetings are returned, not pushed
        if self.seq[channel]:  # the bus has a last value: a snapshot
            assert len(greeting) == 1 and b'"snapshot":true' in greeting[0]

    @rule(n=CLIENTS, channel=CHANNELS)
    def unsubscribe(self, n: int, channel: str) -> None:
        self.hub.unsubscribe(self.clients[n], channel)
        members = self.model.get(channel)
        if members is not None:
            members.discard(n)
            if not members:
                del self.model[channel]

    @rule(burst=BURSTS)
    def publish(self, burst: list[tuple[str, bool]]) -> None:
        """Publish ``burst`` within one loop iteration (no yield between), as a busy feed does.

        The model of conflation: a final message reaches every subscriber, in
        order; a latest value reaches them only if it is the newest message of
        its channel in the burst (a later one, final or not, supersedes it).
        """
        pubs = []
        for channel, final in burst:
            self.seq[channel] += 1
            seq = self.seq[channel]
            pubs.append(
                Publication(channel, seq, b'{"channel":"%s","seq":%d}' % (channel.encode(), seq), final, 0)
            )
        newest = {pub.channel: pub.seq for pub in pubs}
        kept = [pub for pub in pubs if pub.final or pub.seq == newest[pub.channel]]
        before = {n: len(c.got) for n, c in self.clients.items()}
        self.loop.run_until_complete(self._publish(pubs))
        for n, client in self.clients.items():
            expected = [
                (pub.channel, text_frame(pub.payload), pub.final)
                for pub in kept
                if n in self.model.get(pub.channel, ())
            ]
            new = client.got[before[n] :]
            # finals go out at once, in burst order; the latest values at the end of the iteration
            finals = [m for m in expected if m[2]]
            assert new[: len(finals)] == finals
            for channel in newest:  # each channel in order
                assert [m for m in new if m[0] == channel] == [m for m in expected if m[0] == channel]
            assert len(new) == len(expected)
            self.expected[n] += len(expected)

    async def _publish(self, pubs: list[Publication]) -> None:
        for pub in pubs:
            self.bus.publish(pub)
        await asyncio.sleep(0)  # one yield: the hub fans the burst's latest values out now

    @precondition(lambda self: any(self.seq.values()))
    @rule(channel=CHANNELS)
    def duplicate_is_dropped(self, channel: str) -> None:
        seq = self.seq[channel]
        if not seq:
            return
        before = sum(len(c.got) for c in self.clients.values())
        self.hub.on_publication(Publication(channel, seq, b"{}", False, 0))  # a re-delivery
        assert sum(len(c.got) for c in self.clients.values()) == before

    @rule(n=CLIENTS)
    def disconnect(self, n: int) -> None:
        self.hub.remove(self.clients[n], list(self.model))
        for channel in list(self.model):
            self.model[channel].discard(n)
            if not self.model[channel]:
                del self.model[channel]

    @invariant()
    def counts_agree(self) -> None:
        assert self.hub.channels() == sorted(self.model)
        for channel, members in self.model.items():
            assert self.hub.subscriber_count(channel) == len(members)
        assert self.hub.subscription_count == sum(len(m) for m in self.model.values())
        assert self.bus.wanted == set(self.model)

    @invariant()
    def deliveries_agree(self) -> None:
        for n, client in self.clients.items():
            assert len(client.got) == self.expected[n]
        assert sum(self.delivered.values()) == sum(self.expected.values())


HubMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_hub_model = HubMachine.TestCase
