"""``book:`` channels end to end: a real gateway with the simulated source, a client on
a real socket, a snapshot and then diffs whose seqs are dense and whose checksums
verify against the book the client builds from them alone."""

from __future__ import annotations

import asyncio
from typing import Any

from tickwire import client as tw_client
from tickwire.sources.simulated import SimulatedSource

from .bookcheck import ClientBook
from .helpers import Client, eventually, running_gateway
from .test_metrics import scrape, value


async def book_messages(client: Client, channel: str, n: int) -> list[dict[str, Any]]:
    """The next ``n`` book messages of ``channel``, skipping other frames."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        msg = await client.recv()
        if msg.get("type") == "book" and msg["channel"] == channel:
            out.append(msg)
    return out


async def test_a_book_subscriber_gets_a_snapshot_then_verified_diffs() -> None:
    channel = "book:BTCUSDT:20"
    async with running_gateway(source=SimulatedSource(seed=7)) as running:
        async with Client.connect(running.ws_url) as client:
            [ack] = await client.subscribe(channel)
            assert ack["type"] == "subscribed" and ack["channel"] == channel
            book = ClientBook()
            msgs = await book_messages(client, channel, 30)
            start = 0  # the first message after the ack is the snapshot
            first = msgs[start]
            assert first["snapshot"]
            assert first["depth"] == 20 and first["data"]["precision"] == {"price": 2, "qty": 5}
            assert len(first["data"]["bids"]) == 20 and len(first["data"]["asks"]) == 20
            book.verify(first)
            diffs = msgs[start + 1 :]
            assert len(diffs) >= 20
            for msg in diffs:
                # a diff bigger than the snapshot may go as the snapshot (the state class), never a reset
                assert not msg.get("reset") and msg["symbol"] == "BTCUSDT"
                book.verify(msg)  # dense seq, checksum of the client's own top 10
            assert sum(not m.get("snapshot") for m in diffs) >= 15
            assert len(book.bids) == 20 and len(book.asks) == 20  # the window stays full
            assert max(book.bids) < min(book.asks)
            held = running.gateway.ingest.books.book("BTCUSDT")
            assert held is not None and held.levels == 2000


async def test_a_bare_book_channel_is_depth_100() -> None:
    async with running_gateway(source=SimulatedSource(seed=7)) as running:
        async with Client.connect(running.ws_url) as client:
            [ack] = await client.subscribe("book:ethusdt")
            assert ack["channel"] == "book:ETHUSDT:100"
            [msg] = await book_messages(client, "book:ETHUSDT:100", 1)
            assert msg["snapshot"] and msg["depth"] == 100 and len(msg["data"]["bids"]) == 100
            ClientBook().verify(msg)


async def test_metrics_count_the_books_held_and_their_levels() -> None:
    async with running_gateway(source=SimulatedSource(seed=7)) as running:
        before = await scrape(running)
        assert value(before, "tickwire_books_held") == 0
        assert value(before, "tickwire_book_levels_gcount") == 0
        async with Client.connect(running.ws_url) as client:
            await client.subscribe("book:BTCUSDT:10", "book:BTCUSDT:50", "book:ETHUSDT:20")
            await eventually(lambda: len(running.gateway.ingest.book_levels()) == 2, what="two books held")
            samples = await scrape(running)
    assert value(samples, "tickwire_books_held") == 2  # one per symbol, whatever the depths
    assert value(samples, "tickwire_book_levels_bucket", le="1000") == 0
    assert value(samples, "tickwire_book_levels_bucket", le="2000") == 2  # 1,000 levels a side
    assert value(samples, "tickwire_book_levels_bucket", le="+Inf") == 2
    assert value(samples, "tickwire_book_levels_gsum") == 4000


async def test_the_client_book_stays_equal_to_the_gateways_book() -> None:
    """The client library's Book, fed by a real gateway, verifies every checksum (its own top
    10 against the gateway's) and stays synced without a resync."""
    channel = "book:BTCUSDT:20"
    async with running_gateway(source=SimulatedSource(seed=3)) as running:
        async with tw_client.connect(running.ws_url) as feed:
            book = await feed.book(channel)
            seen = 0
            async with asyncio.timeout(10):
                async for msg in feed:
                    if isinstance(msg, tw_client.BookMessage) and not msg.snapshot:
                        seen += 1
                        assert book.synced and book.resyncs == 0 and book.update_id == msg.data.updateId
                        if seen >= 30:
                            break
            assert book.synced and book.resyncs == 0 and len(book.bids) == 20 and len(book.asks) == 20


async def test_a_subscriber_during_the_linger_gets_a_snapshot_at_once() -> None:
    """The hub drops its view with its last subscriber; the ingest keeps the channel open
    (linger) and answers the next want with a fresh snapshot, not a wait for a reset."""
    channel = "book:BTCUSDT:50"
    async with running_gateway(source=SimulatedSource(seed=5)) as running:
        async with Client.connect(running.ws_url) as first:
            await first.subscribe(channel)
            [snap] = await book_messages(first, channel, 1)
            assert snap["snapshot"]
        await eventually(lambda: running.gateway.hub.channel_count == 0, what="the hub dropped the channel")
        assert channel in running.gateway.ingest.open_channels  # lingering upstream
        async with Client.connect(running.ws_url) as second:
            await second.subscribe(channel)
            async with asyncio.timeout(2):
                [again] = await book_messages(second, channel, 1)
            assert again["snapshot"] and again["seq"] > snap["seq"]
            book = ClientBook()
            book.verify(again)
            for msg in await book_messages(second, channel, 5):
                book.verify(msg)
