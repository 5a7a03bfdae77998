"""Upstream backfill through the real Binance connector against the fake Binance.

The fake runs with ``market_runs``: its market trades on while no connection
carries a stream, so a drop really loses data, and a burst published while
the connection is down makes the gap as large as a test needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from tickwire.events import Trade
from tickwire.sources.binance import BinanceSource
from tickwire.sources.binance.backfill import Backfill

from .fake_binance import FakeBinance, Recorder, fast_source
from .helpers import Client, Running, eventually, running_gateway


TRADES = "trades:BTCUSDT"
KLINES = "klines:BTCUSDT:1m"
TRADE_STREAM = "btcusdt@trade"
KLINE_STREAM = "btcusdt@kline_1m"


@contextlib.asynccontextmanager
async def gateway(fake: FakeBinance, **changes: Any) -> AsyncIterator[tuple[Running, BinanceSource]]:
    source = fast_source(fake, **changes)
    async with running_gateway(source=source, linger=0.2) as gw:
        yield gw, source


def trade_ids(rec: Recorder) -> list[int]:
    return [m["data"]["id"] for m in rec.data(TRADES)]


def rest_calls(fake: FakeBinance, path: str) -> list[dict[str, str]]:
    return [query for _, p, query, _ in fake.rest_log if p == path]


async def flowing(rec: Recorder, channel: str, more: int = 5) -> None:
    have = len(rec.data(channel))
    await eventually(lambda: len(rec.data(channel)) >= have + more)


async def drop_during(fake: FakeBinance, stream: str, missed: int) -> None:
    """Drop every connection and let the market publish ``missed`` more items of ``stream``
    before any reconnect (nothing awaits between the drop and the burst: no socket carries it)."""
    fake.drop_all()
    for _ in range(missed):
        await fake.publish(stream, fake.next_payload(stream))


async def through_a_drop(
    fake: FakeBinance, rec: Recorder, channel: str, stream: str, missed: int, *, drops: int = 1
) -> None:
    """:func:`drop_during`, then wait until ``channel`` said stale and live again (``drops``
    times in all since ``rec`` began)."""
    await drop_during(fake, stream, missed)
    await eventually(lambda: rec.statuses(channel) == ["stale", "live"] * drops, timeout=8)


def assert_dense(rec: Recorder, channel: str) -> None:
    seqs = [m["seq"] for m in rec.data(channel)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


def live_status(rec: Recorder, channel: str) -> dict[str, Any]:
    (live,) = [m for m in rec.of(channel, "status") if m["status"] == "live"]
    return live


async def test_a_drop_while_trades_flow_loses_no_trade_and_repeats_none() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, source):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing(rec, TRADES)
            await through_a_drop(fake, rec, TRADES, TRADE_STREAM, 40)
            await flowing(rec, TRADES)
            await rec.stop()
        ids = trade_ids(rec)
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # none lost, none twice, in order
        assert_dense(rec, TRADES)
        assert source.backfill.counters.filled >= 40 and source.backfill.counters.lost == 0
        assert rest_calls(fake, "/api/v3/trades") == [{"symbol": "BTCUSDT", "limit": "1000"}]
        # stale at the drop, the backfilled trades, live (no gap), then the live stream
        kinds = [m["type"] if m["type"] != "status" else m["status"] for m in rec.of(TRADES)]
        stale, live = kinds.index("stale"), kinds.index("live")
        assert kinds[stale + 1 : live] == ["trade"] * (live - stale - 1) and live - stale - 1 >= 40
        assert "gap" not in live_status(rec, TRADES)


async def test_a_gap_over_a_thousand_trades_is_reported_on_the_live_status() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, _):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing(rec, TRADES)
            await through_a_drop(fake, rec, TRADES, TRADE_STREAM, 1200)
            await flowing(rec, TRADES)
            await rec.stop()
        frames = rec.of(TRADES)
        stale = next(i for i, m in enumerate(frames) if m["type"] == "status")
        live = next(i for i, m in enumerate(frames) if m.get("status") == "live")
        assert frames[stale]["status"] == "stale"
        last_seen = frames[stale - 1]["data"]["id"]
        backfilled = [m["data"]["id"] for m in frames[stale + 1 : live]]
        gap = frames[live]["gap"]
        assert gap["from"] == last_seen + 1  # everything after the last trade seen ...
        assert backfilled and gap["to"] == backfilled[0] - 1  # ... up to the oldest REST still had
        assert 200 <= gap["to"] - gap["from"] + 1 <= 1200  # 1200 missed, REST gives the newest 1000
        ids = trade_ids(rec)
        lost = set(range(gap["from"], gap["to"] + 1))
        assert not lost & set(ids)  # nothing invented inside the gap
        assert sorted(set(ids) | lost) == list(range(ids[0], ids[-1] + 1))  # and nothing else missing
        assert len(ids) == len(set(ids)) and ids == sorted(ids)
        assert_dense(rec, TRADES)


async def test_a_final_candle_that_closed_during_the_drop_is_delivered() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, source):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(KLINES)
            rec = Recorder(client)
            await eventually(lambda: any(m["data"]["isFinal"] for m in rec.data(KLINES)), timeout=5)
            await through_a_drop(fake, rec, KLINES, KLINE_STREAM, 25)  # two or three candles close meanwhile
            await flowing(rec, KLINES, 12)  # one more final candle live
            await rec.stop()
        finals = [m["data"]["time"] for m in rec.data(KLINES) if m["data"]["isFinal"]]
        assert finals == list(range(finals[0], finals[0] + 60 * len(finals), 60))  # every minute once
        sent = {p["k"]["t"] // 1000 for p in fake.sent[KLINE_STREAM] if p["k"]["x"]}
        assert set(finals) <= sent and len(finals) >= 4
        assert source.backfill.counters.filled >= 2
        assert rest_calls(fake, "/api/v3/klines")[-1] == {
            "symbol": "BTCUSDT",
            "interval": "1m",
            "limit": "1000",
        }
        assert "gap" not in live_status(rec, KLINES)
        assert_dense(rec, KLINES)


async def test_a_planned_rotation_does_not_backfill() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, source):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing(rec, TRADES)
            await fake.server_shutdown(close_after=1.0)
            await eventually(lambda: len(fake.conns) == 2 and fake.conns[0].closed, timeout=5)
            await flowing(rec, TRADES)
            await rec.stop()
        ids = trade_ids(rec)
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert rec.statuses(TRADES) == [] and source.backfill.counters.runs == 0
        assert rest_calls(fake, "/api/v3/trades") == []


async def test_a_stall_replaced_by_the_watchdog_is_backfilled_too() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, source):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing(rec, TRADES)
            fake.stall_all()  # the socket stays up, the trades go on without us
            await eventually(lambda: rec.statuses(TRADES) == ["stale", "live"], timeout=8)
            await flowing(rec, TRADES)
            await rec.stop()
        ids = trade_ids(rec)
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert source.backfill.counters.runs == 1 and source.backfill.counters.filled > 0
        assert "stalled" in rec.of(TRADES, "status")[0]["reason"]


async def test_a_drop_during_a_backfill_fills_both_gaps_before_live() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, source):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing(rec, TRADES)
            fake.trades_delay = 1.0  # the reconnect comes well before the answer
            await drop_during(fake, TRADE_STREAM, 20)
            await eventually(lambda: source.backfill.running(TRADE_STREAM), timeout=5)
            await through_a_drop(fake, rec, TRADES, TRADE_STREAM, 20)  # the REST answer is still on its way
            await flowing(rec, TRADES)
            await rec.stop()
        ids = trade_ids(rec)
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # both gaps filled, nothing twice
        assert_dense(rec, TRADES)
        assert source.backfill.counters.runs == 2 and source.backfill.counters.lost == 0


async def test_a_rest_failure_reports_the_whole_gap_and_invents_nothing() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, source):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing(rec, TRADES)
            fake.rest_down = "500"
            await drop_during(fake, TRADE_STREAM, 30)
            burst = [p["t"] for p in fake.sent[TRADE_STREAM][-30:]]
            await eventually(lambda: rec.statuses(TRADES) == ["stale", "live"], timeout=8)
            await flowing(rec, TRADES)
            await rec.stop()
        gap = live_status(rec, TRADES)["gap"]
        assert gap["from"] <= burst[0] and gap["to"] >= burst[-1]  # the burst, and what the reconnect missed
        ids = trade_ids(rec)
        assert not set(range(gap["from"], gap["to"] + 1)) & set(ids)
        assert sorted(set(ids) | set(range(gap["from"], gap["to"] + 1))) == list(range(ids[0], ids[-1] + 1))
        assert_dense(rec, TRADES)
        assert source.backfill.counters.filled == 0 and source.backfill.counters.lost == 1
        assert rest_calls(fake, "/api/v3/trades")  # it was asked, and said no


# -- the Backfill alone, with a scripted REST ------------------------------------------------


class Script:
    """A REST ``fetch`` answering from a list, and recording what the backfill did."""

    def __init__(self, *answers: tuple[bytes | None, int, float | None], hang: bool = False) -> None:
        self.answers = list(answers)
        self.hang = hang
        self.asked = 0
        self.out: list[Any] = []  # published events, ("done", lost), ("live", event)

    async def fetch(self, path: str, query: dict[str, str]) -> tuple[bytes | None, int, float | None]:
        self.asked += 1
        if self.hang:
            await asyncio.Event().wait()
        return self.answers.pop(0)

    def backfill(self, **options: Any) -> Backfill:
        return Backfill(
            self.fetch,
            publish=self.out.append,
            release=lambda stream, event, text, ms: self.out.append(("live", getattr(event, "id", None))),
            done=lambda stream, lost: self.out.append(("done", lost)),
            stale=lambda stream: self.out.append(("stale", stream)),
            **options,
        )


def rest_trades(*ids: int) -> bytes:
    rows = [{"id": i, "price": "1.0", "qty": "2.0", "time": i, "isBuyerMaker": False} for i in ids]
    return json.dumps(rows).encode()


def trade(tid: int) -> Trade:
    return Trade(
        symbol="BTCUSDT", id=tid, price=Decimal(1), quantity=Decimal(1), buyer_taker=True, event_time=0
    )


async def test_recovered_trades_then_live_then_the_buffered_ones_in_order() -> None:
    script = Script((rest_trades(*range(5, 15)), 1, None))
    backfill = script.backfill()
    backfill.mark(TRADE_STREAM, (7,))
    assert backfill.intercept(TRADE_STREAM, trade(11), "", 0)  # 8 to 10 missed
    assert backfill.intercept(TRADE_STREAM, trade(12), "", 0)  # buffered meanwhile
    await eventually(lambda: not backfill.running(TRADE_STREAM))
    ids = [e.id if isinstance(e, Trade) else e for e in script.out]
    assert ids == [8, 9, 10, ("done", None), ("live", 11), ("live", 12)]
    assert not backfill.intercept(TRADE_STREAM, trade(13), "", 0)  # no mark any more: plain live


async def test_no_gap_means_no_rest_and_a_stream_never_seen_is_not_backfilled() -> None:
    script = Script()
    backfill = script.backfill()
    backfill.mark(TRADE_STREAM, (7,))
    assert not backfill.intercept(TRADE_STREAM, trade(8), "", 0)
    backfill.mark(TRADE_STREAM, None)  # opened while the upstream was down: nothing to fill
    backfill.mark("btcusdt@ticker", (5,))  # latest-value: a snapshot does
    assert not backfill.intercept(TRADE_STREAM, trade(20), "", 0)
    assert script.asked == 0 and backfill.counters.runs == 0


async def test_a_gap_among_the_buffered_events_is_backfilled_next() -> None:
    """The connection dropped again during a backfill that lost something: live with that
    gap, the live events up to the new gap, stale again, and the next backfill."""
    script = Script((None, 0, None), (rest_trades(*range(20, 31)), 1, None))
    backfill = script.backfill()
    backfill.mark(TRADE_STREAM, (7,))
    for tid in (20, 21, 30):  # 22 to 29 went by while the connection was down again
        backfill.intercept(TRADE_STREAM, trade(tid), "", 0)
    await eventually(lambda: backfill.counters.runs == 2 and not backfill.running(TRADE_STREAM))
    ids = [e.id if isinstance(e, Trade) else e for e in script.out]
    assert ids == [
        ("done", (8, 19)), ("live", 20), ("live", 21), ("stale", TRADE_STREAM),
        *range(22, 30), ("done", None), ("live", 30),
    ]  # fmt: skip


async def test_a_short_retry_after_is_waited_out_a_long_one_reports_the_gap() -> None:
    script = Script((None, 0, 0.01), (rest_trades(8), 1, None), (None, 0, 60.0))
    backfill = script.backfill(wait_max=1.0)
    backfill.mark(TRADE_STREAM, (7,))
    backfill.intercept(TRADE_STREAM, trade(9), "", 0)
    await eventually(lambda: ("done", None) in script.out)
    assert script.asked == 2
    backfill.mark(TRADE_STREAM, (9,))
    backfill.intercept(TRADE_STREAM, trade(12), "", 0)
    await eventually(lambda: ("done", (10, 11)) in script.out)
    assert script.asked == 3 and backfill.counters.lost == 1


async def test_a_backfill_over_its_deadline_reports_the_gap_and_releases_the_live_data() -> None:
    script = Script(hang=True)
    backfill = script.backfill(deadline=0.1)
    backfill.mark(TRADE_STREAM, (7,))
    backfill.intercept(TRADE_STREAM, trade(20), "", 0)
    await eventually(lambda: script.out == [("done", (8, 19)), ("live", 20)])


async def test_a_stream_closed_during_its_backfill_publishes_nothing() -> None:
    script = Script(hang=True)
    backfill = script.backfill()
    backfill.mark(TRADE_STREAM, (7,))
    backfill.intercept(TRADE_STREAM, trade(20), "", 0)
    await eventually(lambda: script.asked == 1)
    backfill.forget(TRADE_STREAM)
    await backfill.stop()
    assert script.out == [] and not backfill.running(TRADE_STREAM)
