"""The dashboard resumes after a reconnect (web/positions.js, web/feed.js), in real headless
Chromium against a real gateway: the trades it missed are replayed, so its tape has no
hole, and its log says "resumed N"; after a gateway restart it says "not recovered:
epoch_changed"; a book in step is resumed rather than fetched again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tickwire.errors import CloseCode
from tickwire.events import Kline, Trade
from tickwire.marketdata import SymbolInfo
from tickwire.sources.simulated import SimulatedSource

from .helpers import FakeSource, Running, eventually, running_gateway
from .test_dashboard import ARGS, CHROMIUM, WAIT_MS, open_page


pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api")

TRADES = "trades:BTCUSDT"
RESTART_MS = 15000  # the page backs off while the gateway is down: a few attempts
SYNCED_PAST = """([sel, seq]) => {
  const p = document.querySelector(sel);
  return p.dataset.synced === "true" && +p.dataset.seq > seq;
}"""


class TapeSource(FakeSource):
    """Trades only when the test makes them (ids from 1); candles and symbols of the simulated
    market, so the page's chart and pickers load as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.market = SimulatedSource()
        self.next_id = 1

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        return await self.market.klines(symbol, interval, limit=limit, end_time=end_time)

    async def symbols(self) -> list[SymbolInfo]:
        return await self.market.symbols()

    def trade(self, n: int = 1) -> None:
        assert self.sink is not None
        for _ in range(n):
            tid = self.next_id
            self.next_id += 1
            self.sink.on_event(
                Trade(
                    symbol="BTCUSDT", id=tid, price=Decimal("97000.5"), quantity=Decimal("0.01"),
                    buyer_taker=tid % 2 == 0, event_time=1_700_000_000_000 + tid,
                )
            )  # fmt: skip


@contextlib.asynccontextmanager
async def flowing(source: TapeSource, every: float) -> AsyncIterator[None]:
    """A trade every ``every`` seconds until the block ends."""

    async def flow() -> None:
        while True:
            source.trade()
            await asyncio.sleep(every)

    task = asyncio.get_running_loop().create_task(flow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def cut(running: Running) -> None:
    """Close the page's WebSocket from the gateway's side, as a restarting balancer would."""
    [session] = running.gateway.sessions
    session.close(CloseCode.GOING_AWAY, "cut by the test")


async def log_line(page: Any, text: str, timeout: int = WAIT_MS) -> str:
    """The first line of the page's log that contains ``text`` (waits for it)."""
    await page.wait_for_function(
        "(t) => [...document.querySelectorAll('#log li')].some((li) => li.textContent.includes(t))",
        arg=text,
        timeout=timeout,
    )
    lines: list[str] = await page.eval_on_selector_all("#log li", "ls => ls.map((l) => l.textContent)")
    return next(line for line in lines if text in line)


async def tape(page: Any) -> list[tuple[int, int]]:
    """(seq, trade id) of every row of the trade tape, oldest first."""
    rows = await page.eval_on_selector_all("#tape li", "ls => ls.map((l) => [+l.dataset.seq, +l.dataset.id])")
    return [tuple(row) for row in reversed(rows)]


async def test_a_cut_connection_resumes_with_every_missed_trade(browser: Any) -> None:
    source = TapeSource()
    async with running_gateway(source=source, linger=0.2) as gw:
        ctx, page, errors = await open_page(browser, gw.url + f"/?channels={TRADES}")
        await page.wait_for_selector(f"#subscriptions li[data-channel='{TRADES}']", timeout=WAIT_MS)
        source.trade(10)
        await page.wait_for_function("document.querySelector('#tape li')?.dataset.seq === '10'")
        async with flowing(source, every=0.05):  # trades go on across the cut: at most ~20 meanwhile
            cut(gw)
            source.trade(5)  # published before the page can be back: it must get them from history
            line = await log_line(page, f"{TRADES}: resumed")
        source.trade(3)
        last = source.next_id - 1
        await page.wait_for_function(
            "(n) => document.querySelector('#tape li').dataset.seq === String(n)", arg=last
        )
        assert last < 40, "the tape keeps 40 rows: the test must fit in it"
        # every trade once, in order: no hole where the connection was cut
        assert await tape(page) == [(n, n) for n in range(1, last + 1)]
        assert int(line.rsplit("resumed ", 1)[1]) >= 5
        row = f"#channel-stats tr[data-channel='{TRADES}']"
        await page.wait_for_selector(row, timeout=WAIT_MS)
        assert await page.text_content(f"{row} .col-gaps") == "0", await page.text_content("#log")
        assert not await page.locator("#log li.log-lost").count()
        port = gw.port
    # the gateway restarts on the same port: its history is gone, and the page is told so
    async with running_gateway(source=TapeSource(), linger=0.2, port=port) as gw:
        line = await log_line(page, f"{TRADES}: not recovered: epoch_changed", timeout=RESTART_MS)
        assert line
        await eventually(lambda: len(gw.gateway.sessions) == 1, what="the page back")
        # while the gateway was down, its requests failed (reconnects, /health polls): nothing else
        assert [e for e in errors if "net::ERR_" not in e] == [], errors
        await ctx.close()


async def test_a_book_in_step_is_resumed_and_stays_verified(browser: Any) -> None:
    book = "book:BTCUSDT:10"
    async with running_gateway(linger=0.2) as gw:
        ctx, page, errors = await open_page(browser, gw.url + f"/?channels={book}")
        panel = "#book-panel"
        await page.wait_for_function(SYNCED_PAST, arg=[panel, 3], timeout=WAIT_MS)
        cut(gw)
        line = await log_line(page, f"{book}: resumed")
        assert int(line.rsplit("resumed ", 1)[1]) >= 0
        seq = int(await page.get_attribute(panel, "data-seq") or 0)
        await page.wait_for_function(SYNCED_PAST, arg=[panel, seq + 3], timeout=WAIT_MS)
        assert await page.get_attribute(panel, "data-resyncs") == "0"  # never out of step
        assert errors == [], errors
        await ctx.close()
