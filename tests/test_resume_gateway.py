"""Resume over real sockets on one node: a client cut off while trades flow comes back with
every missed trade, or is told plainly why not (docs/resume.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from tickwire.events import Ticker, Trade

from .helpers import Client, FakeSource, eventually, running_gateway


TRADES = "trades:BTCUSDT"


class Tape:
    """Trades of BTCUSDT through a FakeSource: ids from 1, so on one node ``id == seq``."""

    def __init__(self, source: FakeSource, symbol: str = "BTCUSDT") -> None:
        self.source = source
        self.symbol = symbol
        self.next_id = 1

    def trade(self, n: int = 1) -> None:
        assert self.source.sink is not None
        for _ in range(n):
            self.source.sink.on_event(
                Trade(
                    symbol=self.symbol, id=self.next_id, price=Decimal("97000.5"), quantity=Decimal("0.01"),
                    buyer_taker=self.next_id % 2 == 0, event_time=1_700_000_000_000 + self.next_id,
                )
            )  # fmt: skip
            self.next_id += 1

    async def flow(self, every: float = 0.002) -> None:
        """A trade every ``every`` seconds (the pace of a busy symbol), until cancelled."""
        while True:
            self.trade()
            await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def flowing(tape: Tape) -> AsyncIterator[Tape]:
    task = asyncio.get_running_loop().create_task(tape.flow())
    try:
        yield tape
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def ticker(price: str, n: int) -> Ticker:
    p = Decimal(price)
    return Ticker(
        symbol="BTCUSDT", price=p, open=p, high=p, low=p, change=Decimal(0), change_percent=Decimal(0),
        volume=Decimal(1), quote_volume=p, trades=n, bid=p, bid_qty=Decimal(1), ask=p, ask_qty=Decimal(1),
        event_time=1_700_000_000_000 + n,
    )  # fmt: skip


def kill(client: Client) -> None:
    """Cut the client's TCP connection without a close frame (Wi-Fi gone)."""
    transport = client.ws._writer.transport
    assert transport is not None
    transport.abort()


async def trades_until(client: Client, seq: int) -> list[dict[str, Any]]:
    """Trade frames (and status frames) of TRADES until the trade with ``seq``."""
    got: list[dict[str, Any]] = []
    while not got or got[-1].get("seq") != seq or got[-1]["type"] != "trade":
        got.append(
            await client.recv_until(lambda m: m.get("channel") == TRADES and m["type"] != "subscribed")
        )
    return got


async def test_a_client_cut_off_resumes_with_every_missed_trade() -> None:
    source = FakeSource()
    tape = Tape(source)
    async with running_gateway(source=source) as gw:
        async with Client.connect(gw.ws_url) as first:
            [ack] = await first.subscribe(TRADES)
            assert (ack["seq"], ack["recoverable"]) == (0, True)
            epoch = ack["epoch"]
            async with flowing(tape):
                seen = await trades_until(first, 30)
                kill(first)
                # while it is away, trades go on (and nobody on this node listens to them)
                await eventually(lambda: not gw.gateway.sessions, what="the gateway saw the cut")
                await eventually(lambda: tape.next_id > 130, what="trades while the client is away")
                async with Client.connect(gw.ws_url) as again:
                    [ack] = await again.subscribe(TRADES, since={TRADES: {"epoch": epoch, "seq": 30}}, id=7)
                    assert ack["recovered"] is True and ack["wasRecovering"] is True and ack["id"] == 7
                    assert ack["epoch"] == epoch and ack["replayed"] == ack["seq"] - 30 >= 100
                    after = await trades_until(again, ack["seq"] + 50)  # the replay, then live trades
    stream = [m for m in seen + after if m["type"] == "trade"]
    assert [m["seq"] for m in stream] == list(range(1, ack["seq"] + 51))  # contiguous, none twice
    assert [m["data"]["id"] for m in stream] == [m["seq"] for m in stream]
    assert not any(m.get("snapshot") for m in after)  # no snapshot after recovered: true


async def test_resume_counts_show_in_metrics_and_a_restart_changes_the_epoch() -> None:
    tape = Tape(FakeSource())
    async with running_gateway(source=tape.source) as gw:
        async with Client.connect(gw.ws_url) as first:
            [ack] = await first.subscribe(TRADES)
            tape.trade(5)
            await trades_until(first, 5)
        port, epoch = gw.port, ack["epoch"]
        async with Client.connect(gw.ws_url) as again:
            [ack] = await again.subscribe(TRADES, since={TRADES: {"epoch": epoch, "seq": 3}})
            assert (ack["recovered"], ack["replayed"]) == (True, 2)
            async with again._session.get(gw.url + "/metrics") as resp:
                text = await resp.text()
        assert 'tickwire_resumes_total{result="recovered"} 1.0' in text
        assert 'tickwire_resumes_total{result="epoch_changed"} 0.0' in text
        assert "tickwire_history_entries 5.0" in text
    tape = Tape(FakeSource())
    async with running_gateway(source=tape.source, port=port) as gw:
        async with Client.connect(gw.ws_url) as client:
            [ack] = await client.subscribe(TRADES, since={TRADES: {"epoch": epoch, "seq": 5}})
            assert ack["epoch"] != epoch and ack["seq"] == 0
            assert (ack["recovered"], ack["reason"], "replayed" in ack) == (False, "epoch_changed", False)
            tape.trade()
            trade = await client.recv_until(lambda m: m["type"] == "trade")
            assert trade["seq"] == 1 and not trade.get("snapshot")


async def test_history_expired_too_many_ahead_and_not_recoverable() -> None:
    tape = Tape(FakeSource())
    other = Tape(tape.source, "ETHUSDT")
    eth = "trades:ETHUSDT"
    async with running_gateway(source=tape.source, history="trades=30", max_queue=40) as gw:
        async with Client.connect(gw.ws_url) as first:
            acks = await first.subscribe(TRADES, eth)
            epoch = acks[0]["epoch"]
            for n in range(10, 61, 10):  # in steps a max_queue of 40 takes
                tape.trade(10)
                await trades_until(first, n)
            other.trade(25)
            await first.recv_until(lambda m: m.get("seq") == 25 and m.get("channel") == eth)

            def since(seq: int, eth_seq: int | None = None) -> dict[str, Any]:
                found = {TRADES: {"epoch": epoch, "seq": seq}}
                if eth_seq is not None:
                    found[eth] = {"epoch": acks[1]["epoch"], "seq": eth_seq}
                return found

            async with Client.connect(gw.ws_url) as c:
                [ack] = await c.subscribe(TRADES, since=since(20))  # 21-30 were evicted (30 kept)
                assert (ack["recovered"], ack["reason"], ack["seq"]) == (False, "history_expired", 60)
                snapshot = await c.recv()
                assert snapshot["seq"] == 60 and snapshot["snapshot"] is True
            async with Client.connect(gw.ws_url) as c:
                # half of max_queue (20) per request: 15 fit, then 15 more do not
                ack_btc, ack_eth = await c.subscribe(TRADES, eth, since=since(45, 10))
                assert (ack_btc["recovered"], ack_btc["replayed"]) == (True, 15)
                assert (ack_eth["recovered"], ack_eth["reason"]) == (False, "too_many")
            async with Client.connect(gw.ws_url) as c:
                [ack] = await c.subscribe(TRADES, since={TRADES: {"epoch": epoch, "seq": 61}})
                assert (ack["recovered"], ack["reason"]) == (False, "ahead")
    async with running_gateway(source=FakeSource(), history="trades=0") as gw:
        async with Client.connect(gw.ws_url) as c:
            [ack] = await c.subscribe(TRADES)
            assert ack["recoverable"] is False
            [ack] = await c.subscribe(TRADES, since={TRADES: {"epoch": ack["epoch"], "seq": 0}})
            assert (ack["recovered"], ack["reason"]) == (False, "not_recoverable")


async def test_latest_value_channels_recover_by_snapshot() -> None:
    source = FakeSource()
    price = "price:BTCUSDT"
    async with running_gateway(source=source) as gw, Client.connect(gw.ws_url) as holder:
        [ack] = await holder.subscribe(price)  # holds the channel, so its epoch lasts
        assert ack["recoverable"] is True
        assert source.sink is not None
        source.sink.on_event(ticker("100", 1))
        top = await holder.recv_until(lambda m: m["type"] == "price")
        epoch = ack["epoch"]
        async with Client.connect(gw.ws_url) as at_top:
            [ack] = await at_top.subscribe(price, since={price: {"epoch": epoch, "seq": top["seq"]}})
            assert (ack["recovered"], ack["seq"], ack["epoch"]) == (True, top["seq"], epoch)
            source.sink.on_event(ticker("101", 2))
            nxt = await at_top.recv()  # nothing more than the live stream: no snapshot first
            assert (nxt["type"], nxt["seq"], nxt.get("snapshot")) == ("price", top["seq"] + 1, None)
        for since in ({"epoch": epoch, "seq": 0}, {"epoch": "another", "seq": top["seq"] + 1}):
            async with Client.connect(gw.ws_url) as behind:
                [ack] = await behind.subscribe(price, since={price: since})
                assert ack["recovered"] is True and "reason" not in ack
                snap = await behind.recv()
                assert (snap["seq"], snap["snapshot"], snap["data"]["price"]) == (top["seq"] + 1, True, 101)


async def test_status_frames_are_replayed_in_order() -> None:
    tape = Tape(FakeSource())
    async with running_gateway(source=tape.source) as gw:
        async with Client.connect(gw.ws_url) as first:
            [ack] = await first.subscribe(TRADES)
            tape.trade(3)
            await trades_until(first, 3)
        sink = tape.source.sink
        assert sink is not None
        tape.trade()
        sink.on_status(TRADES, False, "upstream disconnected")
        sink.on_status(TRADES, True, None)
        tape.trade()
        async with Client.connect(gw.ws_url) as again:
            [ack] = await again.subscribe(TRADES, since={TRADES: {"epoch": ack["epoch"], "seq": 3}})
            assert (ack["recovered"], ack["replayed"], ack["seq"]) == (True, 4, 5)
            frames = [await again.recv() for _ in range(4)]
    assert [(m["type"], m.get("seq", m.get("status"))) for m in frames] == [
        ("trade", 4), ("status", "stale"), ("status", "live"), ("trade", 5),
    ]  # fmt: skip


async def test_the_resume_window_keeps_history_after_the_last_subscriber_and_then_drops_it() -> None:
    tape = Tape(FakeSource())
    async with running_gateway(source=tape.source, resume_window=0.4, linger=0.1) as gw:
        async with Client.connect(gw.ws_url) as first:
            [ack] = await first.subscribe(TRADES)
            tape.trade(2)
            await trades_until(first, 2)
        await eventually(lambda: gw.gateway.hub.idle_channels() == [TRADES], what="kept for resumes")
        assert gw.gateway.hub.channel_count == 0 and tape.source.open_now == [TRADES]  # still wanted
        tape.trade(3)  # published while nobody listens: kept
        async with Client.connect(gw.ws_url) as again:
            [back] = await again.subscribe(TRADES, since={TRADES: {"epoch": ack["epoch"], "seq": 2}})
            assert (back["recovered"], back["replayed"], back["epoch"]) == (True, 3, ack["epoch"])
        await eventually(lambda: tape.source.open_now == [], what="the window and the linger over")
        assert gw.gateway.hub.idle_channels() == [] and gw.gateway.hub.history.held_entries == 0
        async with Client.connect(gw.ws_url) as late:
            [ack2] = await late.subscribe(TRADES, since={TRADES: {"epoch": ack["epoch"], "seq": 5}})
            assert (ack2["recovered"], ack2["reason"]) == (False, "epoch_changed")


async def test_a_live_trade_never_slips_between_the_replay_and_the_stream() -> None:
    """Many resumes while trades flow fast: each stream is contiguous from the position on."""
    tape = Tape(FakeSource())
    async with running_gateway(source=tape.source) as gw:
        async with Client.connect(gw.ws_url) as holder:
            [ack] = await holder.subscribe(TRADES)  # keeps the channel open all along
            async with flowing(tape):
                for _ in range(8):
                    await eventually(lambda: tape.next_id > 40, what="some history")
                    position = tape.next_id - 20
                    async with Client.connect(gw.ws_url) as c:
                        since = {TRADES: {"epoch": ack["epoch"], "seq": position}}
                        [got] = await c.subscribe(TRADES, since=since)
                        assert got["recovered"] is True
                        frames = await trades_until(c, got["seq"] + 10)
                        assert [m["seq"] for m in frames] == list(range(position + 1, got["seq"] + 11))
