"""``/metrics`` over real sockets: each metric moves when it should."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from tickwire.bus import BusHealth
from tickwire.publications import Publication
from tickwire.server import Gateway
from tickwire.sources import SourceHealth
from tickwire.sources.simulated import SimulatedSource

from .helpers import Client, Running, eventually, running_gateway


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

SIGNAL = "signals:BTCUSDT"  # fed by nobody but this test: counts are exact


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


async def scrape(running: Running) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(running.url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(await resp.text())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def publication(seq: int, *, final: bool = True, event_time: int | None = None) -> Publication:
    payload = b'{"type":"signal","channel":"%s","seq":%d,"data":{"x":1}}' % (SIGNAL.encode(), seq)
    stamp = event_time if event_time is not None else time.time_ns() // 1_000_000
    return Publication(SIGNAL, seq, payload, final, stamp)


def outboxes_empty(gateway: Gateway) -> bool:
    return all(session.queued == 0 for session in gateway.sessions)


async def test_connections_opened_current_and_closed_by_code(running: Running) -> None:
    before = await scrape(running)
    assert value(before, "tickwire_connections") == 0
    async with Client.connect(running.ws_url) as client:
        during = await scrape(running)
        assert value(during, "tickwire_connections") == 1
        assert value(during, "tickwire_connections_opened_total") == 1
        await client.ws.close(code=1000)
    await eventually(lambda: running.gateway.stats.connections_current == 0, what="no connection left")
    after = await scrape(running)
    assert value(after, "tickwire_connections") == 0
    assert value(after, "tickwire_connections_closed_total", code="1000") == 1
    assert value(after, "tickwire_connections_closed_total", code="4008") == 0
    assert value(after, "tickwire_connections_limit") == running.gateway.settings.max_connections
    assert value(after, "tickwire_info", version="0.1.0", source="simulated", bus="memory", role="all") == 1


async def test_subscriptions_messages_bytes_and_latency_by_kind(running: Running) -> None:
    async with Client.connect(running.ws_url) as a, Client.connect(running.ws_url) as b:
        await a.subscribe(SIGNAL, "price:BTCUSDT")
        await b.subscribe(SIGNAL)
        before = await scrape(running)
        assert value(before, "tickwire_subscriptions", kind="signals") == 2
        assert value(before, "tickwire_subscriptions", kind="price") == 1
        assert value(before, "tickwire_channels", kind="signals") == 1
        now = time.time_ns() // 1_000_000
        for seq in range(1, 11):  # upstream event 300 ms old: lands in the 0.5 s bucket
            running.gateway.bus.publish(publication(seq, event_time=now - 300))
        received = 0
        for client in (a, b):
            for _ in range(10):
                msg = await client.recv_until(lambda m: m.get("channel") == SIGNAL)
                received += len(
                    f'{{"type":"signal","channel":"{SIGNAL}","seq":{msg["seq"]},"data":{{"x":1}}}}'
                )
        after = await scrape(running)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("tickwire_messages_in_total", kind="signals") == 10
    assert delta("tickwire_messages_out_total", kind="signals") == 20  # one per subscriber
    # latency is observed once per publication, never per subscriber
    assert delta("tickwire_delivery_latency_seconds_count", kind="signals") == 10
    assert delta("tickwire_delivery_latency_seconds_bucket", kind="signals", le="0.25") == 0
    assert delta("tickwire_delivery_latency_seconds_bucket", kind="signals", le="0.5") == 10
    assert 3.0 <= delta("tickwire_delivery_latency_seconds_sum", kind="signals") < 5.0
    # every payload byte went out, plus a WebSocket header of 2-4 bytes per frame (and other traffic)
    assert delta("tickwire_bytes_out_total") >= received + 2 * 20
    assert value(after, "tickwire_client_frames_in_total") >= 2


async def test_conflation_counts_replaced_latest_values(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        await client.subscribe(SIGNAL)
        before = await scrape(running)
        for seq in range(1, 11):  # no await between them: the writer cannot run
            running.gateway.bus.publish(publication(seq, final=False))
        msg = await client.recv_until(lambda m: m.get("channel") == SIGNAL)
        assert msg["seq"] == 10  # the client got the newest value only
        after = await scrape(running)
    conflated = "tickwire_conflated_messages_total"
    assert value(after, conflated) - value(before, conflated) == 9


async def test_slow_consumer_disconnect_and_dropped_frames() -> None:
    async with running_gateway(linger=0.2, max_queue=8) as gw:
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(SIGNAL)
            await eventually(lambda: outboxes_empty(gw.gateway), what="the ack written")
            for seq in range(1, 21):
                gw.gateway.bus.publish(publication(seq))
            code, _ = await client.closed()
            assert code == 4008
        await eventually(lambda: gw.gateway.stats.connections_current == 0, what="no connection left")
        samples = await scrape(gw)
    assert value(samples, "tickwire_slow_consumer_disconnects_total") == 1
    assert value(samples, "tickwire_connections_closed_total", code="4008") == 1
    assert value(samples, "tickwire_dropped_messages_total") == 9  # 8 queued + the one that did not fit


async def test_outbox_depth_histogram_samples_every_client(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        await client.subscribe(SIGNAL)
        await eventually(lambda: outboxes_empty(running.gateway), what="the ack written")
        for seq in range(1, 6):
            running.gateway.bus.publish(publication(seq))
        stuck = parse(running.gateway.metrics.render().decode())  # rendered before the writer runs
        assert value(stuck, "tickwire_client_outbox_depth_bucket", le="4") == 0
        assert value(stuck, "tickwire_client_outbox_depth_bucket", le="8") == 1
        assert value(stuck, "tickwire_client_outbox_depth_gsum") == 5
        for _ in range(5):
            await client.recv_until(lambda m: m.get("channel") == SIGNAL)
        drained = await scrape(running)
    assert value(drained, "tickwire_client_outbox_depth_bucket", le="0") == 1
    assert value(drained, "tickwire_client_outbox_depth_gcount") == 1


async def test_error_frames_by_code(running: Running) -> None:
    async with Client.connect(running.ws_url) as client:
        await client.send("not json")
        assert (await client.recv())["code"] == "INVALID_MESSAGE"
        [answer] = await client.subscribe("nope:X")
        assert answer["code"] == "INVALID_CHANNEL"
        samples = await scrape(running)
    assert value(samples, "tickwire_errors_total", code="INVALID_MESSAGE") == 1
    assert value(samples, "tickwire_errors_total", code="INVALID_CHANNEL") == 1
    assert value(samples, "tickwire_errors_total", code="RATE_LIMITED") == 0


class _CountingSource(SimulatedSource):
    """The simulated market, reporting the upstream counters a networked source fills."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.counters: dict[str, object] = {
            "connections": 2,
            "reconnects": 5,
            "stale_streams": ["a@trade"],
            "rest_calls": 7,
            "rest_limited": 3,
        }

    def health(self) -> SourceHealth:
        return msgspec.structs.replace(super().health(), **self.counters)


async def test_upstream_metrics_read_source_health() -> None:
    source = _CountingSource(seed=1)
    async with running_gateway(source=source) as gw:
        samples = await scrape(gw)
        source.counters = {"reconnects": 6, "stale_streams": ["a@trade", "b@trade"], "rest_limited": 4}
        later = await scrape(gw)
    assert value(samples, "tickwire_upstream_up", source="simulated") == 1
    assert value(samples, "tickwire_upstream_connections", source="simulated") == 2
    assert value(samples, "tickwire_upstream_reconnects_total", source="simulated") == 5
    assert value(samples, "tickwire_upstream_stale_streams", source="simulated") == 1
    assert value(samples, "tickwire_upstream_rest_requests_total", source="simulated") == 7
    assert value(samples, "tickwire_upstream_rest_rate_limited_total", source="simulated") == 3
    assert value(later, "tickwire_upstream_reconnects_total", source="simulated") == 6
    assert value(later, "tickwire_upstream_connections", source="simulated") == 0  # not given: 0
    assert value(later, "tickwire_upstream_stale_streams", source="simulated") == 2
    assert value(later, "tickwire_upstream_rest_rate_limited_total", source="simulated") == 4
    assert value(later, "tickwire_upstream_rest_requests_total", source="simulated") == 0  # missing: 0


async def test_bus_state_follows_bus_health(running: Running) -> None:
    assert value(await scrape(running), "tickwire_bus_up", bus="memory") == 1
    running.gateway.bus.health = lambda: BusHealth(kind="memory", connected=False, reconnects=4)  # type: ignore[method-assign]
    samples = await scrape(running)
    assert value(samples, "tickwire_bus_up", bus="memory") == 0
    assert value(samples, "tickwire_bus_reconnects_total", bus="memory") == 4


async def test_publish_requests_by_status() -> None:
    key = "k" * 40
    async with running_gateway(api_keys=(key,)) as gw, aiohttp.ClientSession() as http:
        url = gw.url + "/api/v1/publish"
        body = {"channel": SIGNAL, "data": {"side": "buy"}}
        auth = {"Authorization": f"Bearer {key}"}
        for headers, payload, status in [
            (auth, body, 200),
            (auth, body, 200),
            ({}, body, 401),
            (auth, {"channel": "price:BTCUSDT", "data": {}}, 400),
        ]:
            async with http.post(url, json=payload, headers=headers) as resp:
                assert resp.status == status
        samples = await scrape(gw)
    assert value(samples, "tickwire_publish_requests_total", status="200") == 2
    assert value(samples, "tickwire_publish_requests_total", status="401") == 1
    assert value(samples, "tickwire_publish_requests_total", status="400") == 1
    assert value(samples, "tickwire_publish_messages_total") == 2


async def test_rejected_connections_by_reason() -> None:
    async with running_gateway(max_connections=1) as gw:
        async with Client.connect(gw.ws_url):
            try:
                async with Client.connect(gw.ws_url):
                    raise AssertionError("a second connection was accepted")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 503
            samples = await scrape(gw)
    assert value(samples, "tickwire_connections_rejected_total", reason="total") == 1
    assert value(samples, "tickwire_connections_rejected_total", reason="per_ip") == 0


async def test_process_metrics_are_exported(running: Running) -> None:
    samples = await scrape(running)
    assert value(samples, "process_open_fds") > 0
    assert value(samples, "process_max_fds") > 0


async def test_book_metrics_read_source_health() -> None:
    source = _CountingSource(seed=1)
    async with running_gateway(source=source) as gw:
        before = await scrape(gw)
        source.counters = {
            "book_resyncs": {"gap": 2, "crossed": 1},
            "rest_weight_used": 120,
            "snapshot_weight": 300,
        }
        after = await scrape(gw)
    for reason in ("gap", "crossed", "bridge", "disconnect"):  # there from the start, for rate()
        assert value(before, "tickwire_book_resyncs_total", source="simulated", reason=reason) == 0
    assert value(after, "tickwire_book_resyncs_total", source="simulated", reason="gap") == 2
    assert value(after, "tickwire_book_resyncs_total", source="simulated", reason="crossed") == 1
    assert value(after, "tickwire_upstream_rest_weight_used", source="simulated") == 120
    assert value(after, "tickwire_book_snapshot_weight_total", source="simulated") == 300
