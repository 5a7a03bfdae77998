"""The upstream backfill as operators and the REST budget see it, against the fake Binance:
its counters in ``/health`` and ``/metrics``, and its REST calls held back by a
``Retry-After`` like every other caller's (sources/binance/backfill.py, budget.py)."""

from __future__ import annotations

import aiohttp

from .fake_binance import FakeBinance, Recorder
from .helpers import Client, Running, eventually, health
from .test_binance_backfill import (
    TRADE_STREAM,
    TRADES,
    drop_during,
    flowing,
    gateway,
    rest_calls,
    through_a_drop,
    trade_ids,
)
from .test_metrics import parse, value


async def metrics(gw: Running) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(gw.url + "/metrics") as resp:
        samples = parse(await resp.text())
    return {
        "runs": value(samples, "tickwire_backfill_runs_total", source="binance"),
        "filled": value(samples, "tickwire_backfill_messages_total", source="binance", result="filled"),
        "duplicate": value(samples, "tickwire_backfill_messages_total", source="binance", result="duplicate"),
        "lost": value(samples, "tickwire_backfill_gaps_lost_total", source="binance"),
    }


async def test_backfill_counters_show_in_health_and_metrics() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, source):
        _, body = await health(gw)
        assert not {k for k in body["upstream"] if k.startswith("backfill")}  # left out while 0
        assert await metrics(gw) == {"runs": 0, "filled": 0, "duplicate": 0, "lost": 0}  # there for rate()
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing(rec, TRADES)
            await through_a_drop(fake, rec, TRADES, TRADE_STREAM, 30)
            fake.rest_down = "500"  # the next backfill fills nothing: its gap is lost
            await flowing(rec, TRADES)
            await through_a_drop(fake, rec, TRADES, TRADE_STREAM, 10, drops=2)
            await rec.stop()
        counters = source.backfill.counters
        assert counters.runs == 2 and counters.filled >= 30 and counters.lost == 1
        _, body = await health(gw)
        upstream = body["upstream"]
        assert (upstream["backfillRuns"], upstream["backfillFilled"], upstream["backfillLost"]) == (
            counters.runs, counters.filled, counters.lost,
        )  # fmt: skip
        assert upstream.get("backfillDuplicates", 0) == counters.duplicates
        assert await metrics(gw) == {
            "runs": counters.runs, "filled": counters.filled, "duplicate": counters.duplicates, "lost": 1,
        }  # fmt: skip


async def test_a_backfill_waits_behind_a_retry_after_like_every_caller() -> None:
    async with FakeBinance(market_runs=True) as fake, gateway(fake) as (gw, source):
        async with Client.connect(gw.ws_url) as client:
            await client.subscribe(TRADES)
            rec = Recorder(client)
            await flowing(rec, TRADES)
            # another caller (the HTTP klines of a chart) is answered 429: no REST for 1 s, for anyone
            fake.rest_fail = [(429, 1.0)]
            query = "?symbol=ETHUSDT&interval=5m&limit=10"
            async with client._session.get(gw.url + "/api/v1/klines" + query) as resp:
                assert resp.status == 503
            [refused] = [r for r in fake.rest_log if r[3] == 429]
            await drop_during(fake, TRADE_STREAM, 30)  # the reconnect comes well within that second
            await eventually(lambda: source.backfill.running(TRADE_STREAM), what="a backfill under way")
            await eventually(lambda: rec.statuses(TRADES) == ["stale", "live"], timeout=8)
            await flowing(rec, TRADES)
            await rec.stop()
        after = [r for r in fake.rest_log if r[0] > refused[0]]
        assert after and after[0][0] - refused[0] >= 1.0 - 0.02  # nothing went out before Retry-After
        assert [(path, status) for _, path, _, status in after] == [("/api/v3/trades", 200)]  # asked once
        assert rest_calls(fake, "/api/v3/trades") == [{"symbol": "BTCUSDT", "limit": "1000"}]
        ids = trade_ids(rec)
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # filled, not lost: it waited
        assert source.backfill.counters.filled >= 30 and source.backfill.counters.lost == 0
