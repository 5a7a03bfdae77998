"""``tickwire watch book:...``: a live ladder from the client Book, against the fake book gateway."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from rich.console import Console

from tickwire import client
from tickwire.messages import Book as BookMessage, Status
from tickwire.tools.ladder import book_state, ladder
from tickwire.tools.watch import Board, render

from . import test_client_book as client_book
from .fake_book import BookState, FakeBook
from .helpers import eventually
from .test_watch import run_cli


CHANNEL = client_book.CHANNEL
served = client_book.served  # the same fixture: the fake book gateway with one book of CHANNEL


def text_of(renderable: Any, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def book_from(state: BookState) -> client.Book:
    book = client.Book(state.channel)
    raw = msgspec.json.encode(state.snapshot())
    assert book.apply(msgspec.json.decode(raw, type=BookMessage)) is client.Applied.SNAPSHOT
    return book


def test_the_ladder_shows_levels_with_cumulative_sizes() -> None:
    state = BookState(CHANNEL, precision=(2, 3))
    state.change({"100.5": "1", "100.4": "2.5", "100.1": "0.25"}, {"100.6": "1.125", "101": "3"})
    book = book_from(state)
    lines = [" ".join(line.split()) for line in text_of(ladder(CHANNEL, book, rows=2)).splitlines()]
    rows = [line for line in lines if "█" in line or "spread" in line]
    assert [r.strip("│ ").split(" │ ")[:3] for r in rows if "█" in r] == [
        ["101.00", "3.000", "4.125"],
        ["100.60", "1.125", "1.125"],
        ["100.50", "1.000", "1.000"],
        ["100.40", "2.500", "3.500"],  # rows=2: 100.10 is held, not shown
    ]
    assert any("spread 0.10" in r for r in rows)
    assert "seq 1 · checksum ok" in lines[0]
    # the widest bar is the largest cumulative size
    bars = {r.split()[1]: r.count("█") for r in rows if "█" in r}
    assert bars["101.00"] == max(bars.values()) == 16


def test_the_ladder_says_when_it_cannot_be_trusted() -> None:
    assert book_state(None) == ("waiting for the snapshot", "dim")
    state = BookState(CHANNEL)
    state.change({"1": "1"}, {"2": "1"})
    book = book_from(state)
    book.apply(Status(CHANNEL, "stale", "t", "book resync"))
    assert book_state(book)[0] == "stale: book resync"
    book.apply(Status(CHANNEL, "live", "t"))
    book.invalidate()
    assert book_state(book)[0] == "resyncing (disconnected)"
    assert "resyncing" in text_of(ladder(CHANNEL, book))


def test_render_places_book_ladders() -> None:
    state = BookState(CHANNEL)
    state.change({"97523.4": "1.5"}, {"97523.5": "0.7"})
    board = Board("ws://x/ws", [CHANNEL, "book:ETHUSDT:10"], ladders={CHANNEL: book_from(state)})
    out = text_of(render(board), width=160)
    assert "97,523.40" in out and "1.50000" in out and "book:ETHUSDT:10" in out
    assert "waiting for the snapshot" in out and "events" not in out


async def test_watch_book_shows_a_live_ladder_and_heals_a_gap(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake: FakeBook = served.fake

    async def market() -> None:
        await eventually(lambda: fake.subscribes(CHANNEL) == 1, what="watch subscribed")
        await fake.change(CHANNEL, {"100.45": "7"})
        fake.drop_next()
        await fake.change(CHANNEL, {"100.3": "1"})
        await fake.change(CHANNEL, {}, {"100.55": "2"})  # reveals the gap: watch asks again
        await eventually(lambda: fake.subscribes(CHANNEL) == 2, what="the resubscribe after the gap")

    task = asyncio.get_running_loop().create_task(market())
    code = await run_cli("watch", "book:btcusdt:20", "--url", served.ws_url, "--duration", "1.5")
    await task
    assert code == 0
    out = capsys.readouterr().out
    assert CHANNEL in out and "checksum ok" in out
    state = fake.books[CHANNEL]
    final = out[out.rindex("tickwire watch ") :]  # the last screen
    assert f"seq {state.seq} · checksum ok" in final
    for price in ("100.55", "100.45", "100.30", "100.50"):
        assert price in final, price
    assert Decimal("100.3") in state.bids


async def test_watch_book_json_and_refusal(served: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = served.ws_url
    assert await run_cli("watch", CHANNEL, "--url", url, "--duration", "0.5", "--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    books = [m for m in lines if m["type"] == "book"]
    assert books and books[0]["snapshot"] is True and books[0]["data"]["bids"][0] == [100.5, 1.0]
    assert await run_cli("watch", "book:ETHUSDT:20", "--url", url, "--duration", "0.5") == 2
    assert "refused book:ETHUSDT:20: UNKNOWN_SYMBOL" in capsys.readouterr().err
