"""The dashboard's order book (web/book.js, web/bookpanel.js) in real headless Chromium.

The JS book is checked against docs/protocol.md's test vectors and against
the Python client's Book on random message sequences (gaps and corrupted
checksums included); the panel is checked live, served by the fake book
gateway of tests/fake_book.py (the real gateway's book channels are built on
other branches: the end-to-end run against it comes with the merge).
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tickwire.client.book import Book
from tickwire.messages import Book as BookMessage

from .fake_book import BookState, FakeBook, doc_vectors, fake_book_server
from .test_dashboard import ARTIFACTS, WAIT_MS, browser, open_page


__all__ = ["browser"]  # the fixture, shared with test_dashboard

pytestmark = pytest.mark.browser

CHANNEL = "book:BTCUSDT:20"

APPLY_ALL = """async (messages) => {
  const { Book } = await import("/static/book.js");
  const book = new Book(messages[0].channel);
  return messages.map((m) => {
    const result = book.apply(m);
    return [result, book.synced, book.bids, book.asks, book.synced ? book.checksum() : null];
  });
}"""


async def test_js_book_matches_the_protocol_vectors(browser: Any) -> None:
    v = doc_vectors()
    async with fake_book_server() as served:
        page = await browser.new_page()
        await page.goto(served.url + "/health")  # any page of the origin: the module is imported from it
        out = await page.evaluate(
            """async ([snapshot, diff]) => {
              const { Book, checksumText, crc32 } = await import("/static/book.js");
              const book = new Book(snapshot.channel);
              const text = () => checksumText(book.asks, book.bids, book.precision);
              const first = [book.apply(snapshot), text(), book.checksum()];
              const second = [book.apply(diff), text(), book.checksum()];
              return [first, second, crc32("123456789"), book.bids, book.asks];
            }""",
            [v["snapshot"], v["diff"]],
        )
        await page.close()
    first, second, check, bids, asks = out
    assert first == ["snapshot", v["strings"][0], v["checksums"][0]]
    assert second == ["diff", v["strings"][1], v["checksums"][1]]
    assert check == 0xCBF43926  # the CRC-32 check value
    assert bids == [[97523.3, 0.2]] and asks == [[97523.5, 0.25], [97523.6, 1.25]]


def random_messages(seed: int, n: int = 120) -> list[dict[str, Any]]:
    """A snapshot, then diffs (some lost, some with a wrong checksum) and fresh snapshots."""
    rng = random.Random(seed)
    state = BookState(CHANNEL, precision=(1, 4))
    state.change({"100.0": "1"}, {"100.5": "1"})
    out = [state.snapshot()]

    def side(low: int) -> dict[str, str]:
        prices = (Decimal(low + rng.randrange(40)) / 10 for _ in range(rng.randrange(5)))
        return {str(p): rng.choice(["0", "0", "0.25", "1.5", "3.1416", "12"]) for p in prices}

    for _ in range(n):
        roll = rng.random()
        if roll < 0.06:
            out.append(state.snapshot())
            continue
        msg = state.change(side(960), side(1005))
        if roll < 0.1:
            continue  # lost on the way
        if roll < 0.14:
            msg["data"]["checksum"] ^= 0x10
        out.append(msg)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_js_book_agrees_with_the_python_book(browser: Any, seed: int) -> None:
    messages = random_messages(seed)
    python = Book(CHANNEL)
    expected = []
    for raw in messages:
        result = python.apply(msgspec.json.decode(msgspec.json.encode(raw), type=BookMessage))
        levels = [[[float(p), float(q)] for p, q in side] for side in (python.bids, python.asks)]
        expected.append([result.value, python.synced, *levels, python.checksum() if python.synced else None])
    assert {e[0] for e in expected} >= {"snapshot", "diff", "resync", "ignored"}, "the walk covers every case"
    async with fake_book_server() as served:
        page = await browser.new_page()
        await page.goto(served.url + "/health")
        got = await page.evaluate(APPLY_ALL, messages)
        await page.close()
    assert got == expected


async def test_the_panel_shows_a_live_verified_book(browser: Any) -> None:
    fake = FakeBook()
    bids = {"100.5": "1", "100.4": "2", "100.3": "0.5", "99.9": "4"}
    asks = {"100.6": "1.25", "100.7": "3", "101": "0.75"}
    fake.book(CHANNEL, bids=bids, asks=asks)
    fake.book("book:BTCUSDT:50", bids={"90": "1"}, asks={"91": "2"})
    fake.book("book:ETHUSDT:20", bids={"3000": "5"}, asks={"3001": "6"})
    panel = "#book-panel"
    async with fake_book_server(fake) as served:
        ctx, page, errors = await open_page(
            browser, served.url + f"/?channels={CHANNEL}", viewport={"width": 1440, "height": 1400}
        )
        state = fake.books[CHANNEL]

        async def synced_at(seq: int) -> None:
            await page.wait_for_function(
                "([sel, seq]) => { const p = document.querySelector(sel);"
                " return p.dataset.synced === 'true' && p.dataset.seq === String(seq); }",
                arg=[panel, seq],
                timeout=WAIT_MS,
            )

        await synced_at(state.seq)
        assert await page.get_attribute(panel, "data-checksum") == str(state.checksum())
        ladder = await page.eval_on_selector_all(
            "#book-ladder .level.bid, #book-ladder .level.ask",
            "rows => rows.map(r => [r.classList[1],"
            " ...[...r.querySelectorAll('span')].map(s => s.textContent)])",
        )
        # asks above (best nearest the spread), bids below; cumulative totals at the symbol's precision
        assert ladder == [
            ["ask", "101.00", "0.75000", "5.00000"],
            ["ask", "100.70", "3.00000", "4.25000"],
            ["ask", "100.60", "1.25000", "1.25000"],
            ["bid", "100.50", "1.00000", "1.00000"],
            ["bid", "100.40", "2.00000", "3.00000"],
            ["bid", "100.30", "0.50000", "3.50000"],
            ["bid", "99.90", "4.00000", "7.50000"],
        ]
        assert await page.text_content("#book-ladder .spread") == "spread 0.10"
        assert await page.get_attribute("#book-chart", "data-points") == "7"
        assert await page.evaluate(CHART_PIXELS) > 1000  # the depth chart is drawn
        assert await page.text_content("#book-title") == CHANNEL

        # a diff moves the ladder
        seq = await fake.change(CHANNEL, {"100.5": "0", "100.45": "2"}, {"100.6": "0.25"})
        await synced_at(seq)
        best = await page.text_content("#book-ladder .level.bid .price")
        assert best == "100.45"

        # a lost diff: the page subscribes again, and the snapshot makes it whole
        fake.drop_next()
        await fake.change(CHANNEL, {"100.2": "1"})
        seq = await fake.change(CHANNEL, {"100.1": "1"})
        await page.wait_for_function(
            f"document.querySelector('{panel}').dataset.resyncs === '1'", timeout=WAIT_MS
        )
        await synced_at(seq)
        assert await page.get_attribute(panel, "data-checksum") == str(state.checksum())
        # a wrong checksum: the same
        fake.corrupt_next()
        seq = await fake.change(CHANNEL, {}, {"100.65": "1"})
        await page.wait_for_function(
            f"document.querySelector('{panel}').dataset.resyncs === '2'", timeout=WAIT_MS
        )
        await synced_at(seq)
        assert fake.subscribes(CHANNEL) >= 3  # on load (user and panel), and one per resync
        assert "asking for its snapshot" in (await page.text_content("#log") or "")

        ARTIFACTS.mkdir(exist_ok=True)
        await page.locator(panel).screenshot(path=str(ARTIFACTS / "dashboard-book.png"))

        # a resync upstream: stale, reset snapshot, live
        await fake.reset(CHANNEL, {"95": "1"}, {"96": "1"})
        await synced_at(state.seq)
        await page.wait_for_function(
            "document.getElementById('book-status').textContent.includes('checksum ok')"
        )

        # the pickers choose another book: the panel's own channel, the user's stays
        await page.select_option("#book-depth", "50")
        await page.wait_for_function(
            "document.getElementById('book-title').textContent === 'book:BTCUSDT:50'", timeout=WAIT_MS
        )
        await synced_at(fake.books["book:BTCUSDT:50"].seq)
        assert await page.text_content("#book-ladder .level.bid .price") == "90.00"
        await page.wait_for_selector(
            "#subscriptions li[data-channel='book:BTCUSDT:50'][data-reasons='book']", timeout=WAIT_MS
        )
        await page.select_option("#book-symbol", "ETHUSDT")
        await page.select_option("#book-depth", "20")
        await page.wait_for_function(
            "document.getElementById('book-title').textContent === 'book:ETHUSDT:20'", timeout=WAIT_MS
        )
        await page.wait_for_selector("#subscriptions li[data-channel='book:BTCUSDT:50']", state="detached")
        await page.wait_for_selector(f"#subscriptions li[data-channel='{CHANNEL}'][data-reasons='user']")
        assert await page.evaluate("JSON.parse(localStorage.getItem('tickwire.book'))") == ["ETHUSDT", "20"]
        assert errors == [], errors
        await ctx.close()


CHART_PIXELS = """() => {
  const c = document.getElementById("book-chart");
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
  return n;
}"""
