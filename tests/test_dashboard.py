"""The dashboard in real headless Chromium (Debian's), served by a real gateway.

Screenshots go to test-artifacts/ (desktop and phone); look at them when the
page changes.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from tickwire.channels import parse_channel

from .fake_binance import binance_gateway
from .helpers import Running, eventually, publish_now, running_gateway


pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api")

ARTIFACTS = pathlib.Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
WAIT_MS = 8000
HISTORY_MS = 3000  # history is one HTTP request: it is drawn well before 100 live candles could be

# counts candle-colored pixels on the chart: the background is #0d1117
CANDLE_PIXELS = """() => {
  const c = document.getElementById("candles");
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if ((g > 150 && r < 100) || (r > 200 && g < 120)) n++;  // up green or down red
  }
  return n;
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not pathlib.Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps`")
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_page(browser: Any, url: str, **context: Any) -> tuple[Any, Any, list[str]]:
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    await page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=WAIT_MS)
    return ctx, page, errors


async def chart_history(page: Any, channel: str) -> None:
    """The chart shows ``channel`` with more than 100 candles from /api/v1/klines."""
    await page.wait_for_function(
        "(ch) => { const c = document.getElementById('candles');"
        " return c.dataset.channel === ch && +c.dataset.history > 100 && +c.dataset.candles > 100; }",
        arg=channel,
        timeout=HISTORY_MS,
    )


async def test_dashboard_desktop(running: Running, browser: Any) -> None:
    base = running.url
    ctx, page, errors = await open_page(
        browser, base + "/?channels=", viewport={"width": 1440, "height": 960}
    )
    # the chart starts full: history first, on the default symbol and interval
    await chart_history(page, "klines:BTCUSDT:1m")
    # upstream status from /health is visible
    await page.wait_for_function("document.getElementById('upstream').textContent.includes('SIMULATED')")
    # symbols come from /api/v1/symbols
    await page.wait_for_function("document.querySelectorAll('#chart-symbol option').length === 8")
    options = await page.eval_on_selector_all("#chart-symbol option", "os => os.map(o => o.value)")
    assert "DOGEUSDT" in options and "LTCUSDT" in options

    # subscribe through the form
    await page.fill("#channel", "price:btcusdt ticker:ETHUSDT depth:BTCUSDT depth:ethusdt trades:BTCUSDT")
    await page.click("#subscribe-form button[type=submit]")
    await page.fill("#channel", "signals:BTCUSDT, price:NOPEUSDT")
    await page.press("#channel", "Enter")
    chip = "#subscriptions li[data-channel='price:BTCUSDT']"
    await page.wait_for_selector(chip, timeout=WAIT_MS)

    # prices change
    price = "#prices tr[data-channel='price:BTCUSDT'] .col-price"
    await page.wait_for_selector(price, timeout=WAIT_MS)
    first = await page.text_content(price)
    await page.wait_for_function(
        "([sel, t]) => document.querySelector(sel).textContent !== t", arg=[price, first], timeout=WAIT_MS
    )
    assert await page.locator(f"{price}.up, {price}.down").count() == 1  # colored by the move
    assert await page.evaluate(CANDLE_PIXELS) > 500

    # the interval picker switches the chart and fetches that interval's history
    async with page.expect_request(lambda r: "/api/v1/klines" in r.url and "interval=5m" in r.url):
        await page.select_option("#chart-interval", "5m")
    await chart_history(page, "klines:BTCUSDT:5m")
    await page.wait_for_selector("#subscriptions li[data-channel='klines:BTCUSDT:5m']", timeout=WAIT_MS)
    await page.wait_for_selector("#subscriptions li[data-channel='klines:BTCUSDT:1m']", state="detached")
    await page.select_option("#chart-symbol", "ETHUSDT")
    await chart_history(page, "klines:ETHUSDT:5m")

    # depth ladder and its selector, trade tape, stats panel, log
    assert await page.locator("#depth .level.bid").count() >= 5
    assert await page.locator("#depth .level.ask").count() >= 5
    await page.wait_for_function("document.querySelectorAll('#depth-channel option').length === 2")
    await page.select_option("#depth-channel", "depth:ETHUSDT")
    await page.wait_for_function("document.getElementById('depth-title').textContent === 'depth:ETHUSDT'")
    await page.wait_for_selector("#depth .level.bid", timeout=WAIT_MS)
    await page.wait_for_function("document.querySelectorAll('#tape li').length >= 3", timeout=WAIT_MS)
    await page.wait_for_function("document.getElementById('stats').textContent.includes('clients')")
    await page.wait_for_function("+document.getElementById('log').dataset.count > 20", timeout=WAIT_MS)
    assert "UNKNOWN_SYMBOL" in (await page.text_content("#log") or "")
    assert await page.locator("#subscriptions li[data-channel='price:NOPEUSDT']").count() == 0

    # round trip of the JSON ping, and per channel: message rate, seq, gaps, age of the last message
    await page.wait_for_function("/^rtt [0-9.]+ ms$/.test(document.getElementById('rtt').textContent)")
    row = "#channel-stats tr[data-channel='depth:BTCUSDT']"
    await page.wait_for_function(
        "(sel) => { const r = document.querySelector(sel);"
        " return r && +r.querySelector('.col-rate').textContent > 1"
        " && +r.querySelector('.col-seq').textContent > 5"
        " && r.querySelector('.col-state').textContent === 'live'; }",
        arg=row,
        timeout=WAIT_MS,
    )
    assert await page.text_content(f"{row} .col-gaps") == "0"

    # feed data is text, never markup
    channel = parse_channel("signals:BTCUSDT")
    evil = b'{"note":"<img src=x onerror=\\"window.__pwned=1\\"><b>bold</b>"}'
    publish_now(running.gateway, channel, msgspec.Raw(evil))
    await page.wait_for_function(
        "document.getElementById('log').textContent.includes('<img src=x')", timeout=WAIT_MS
    )
    assert await page.locator("#log img, #log b").count() == 0
    assert await page.evaluate("window.__pwned === undefined")

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-desktop.png"), full_page=True)

    # a subscription typed in lower case is stored canonically and can be removed for good
    await page.click(f"{chip} button.remove")
    await page.wait_for_selector(chip, state="detached", timeout=WAIT_MS)
    await page.wait_for_selector("#prices tr[data-channel='price:BTCUSDT']", state="detached")
    assert await page.locator("#prices tr[data-channel='ticker:ETHUSDT']").count() == 1
    saved = await page.evaluate("JSON.parse(localStorage.getItem('tickwire.channels'))")
    assert "ticker:ETHUSDT" in saved and not {"price:BTCUSDT", "price:btcusdt", "depth:ethusdt"} & set(saved)

    # disconnect and connect again from the page
    await page.click("#connect")
    await page.wait_for_function("document.getElementById('conn').textContent === 'disconnected'")
    await page.click("#connect")
    await page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=WAIT_MS)
    await page.wait_for_selector("#subscriptions li[data-channel='ticker:ETHUSDT']", timeout=WAIT_MS)
    assert await page.locator(chip).count() == 0

    assert errors == [], errors
    await ctx.close()


async def test_lowercase_subscriptions_stay_removed_after_reload(running: Running, browser: Any) -> None:
    base = running.url
    ctx, page, errors = await open_page(browser, base + "/?channels=price:btcusdt,klines:ethusdt:1m")
    await chart_history(page, "klines:ETHUSDT:1m")
    await page.fill("#channel", "ticker:solusdt")
    await page.press("#channel", "Enter")
    for channel in ("price:BTCUSDT", "ticker:SOLUSDT"):
        chip = f"#subscriptions li[data-channel='{channel}']"
        await page.wait_for_selector(chip, timeout=WAIT_MS)
        await page.click(f"{chip} button.remove")
        await page.wait_for_selector(chip, state="detached", timeout=WAIT_MS)
    await page.goto(base + "/")  # the saved set, no ?channels=
    await page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=WAIT_MS)
    await page.wait_for_selector("#subscriptions li[data-channel='klines:ETHUSDT:1m']", timeout=WAIT_MS)
    await chart_history(page, "klines:ETHUSDT:1m")
    chips = await page.eval_on_selector_all("#subscriptions li", "ls => ls.map(l => l.dataset.channel)")
    assert chips == ["klines:ETHUSDT:1m"]
    assert errors == [], errors
    await ctx.close()


def held(running: Running) -> set[str] | None:
    """The channels the page's WebSocket session holds on the gateway (None unless just one)."""
    sessions = list(running.gateway.sessions)
    return set(sessions[0].subscriptions) if len(sessions) == 1 else None


async def active_klines_are(running: Running, want: set[str]) -> bool:
    """Whether /api/v1/ws/stats lists exactly ``want`` as the active klines channels."""
    async with aiohttp.ClientSession() as http, http.get(running.url + "/api/v1/ws/stats") as resp:
        body = await resp.json()
    return {c for c in body["data"]["activeChannels"] if c.startswith("klines:")} == want


def chip(channel: str, reasons: str | None = None) -> str:
    """The selector of a subscription chip; ``reasons`` as in its data-reasons ("user chart")."""
    return f"#subscriptions li[data-channel='{channel}']" + (f"[data-reasons='{reasons}']" if reasons else "")


async def test_chart_switch_keeps_the_users_own_subscription(running: Running, browser: Any) -> None:
    ctx, page, errors = await open_page(browser, running.url + "/?channels=")
    one, three, five = (f"klines:BTCUSDT:{interval}" for interval in ("1m", "3m", "5m"))
    await chart_history(page, one)
    await page.wait_for_selector(chip(one, "chart"), timeout=WAIT_MS)
    assert (
        await page.locator(f"{chip(one)} button.remove").count() == 0
    )  # the chart's alone: no remove button
    assert held(running) == {one}

    # the user subscribes by hand to the channel the chart shows: now both want it
    await page.fill("#channel", one)
    await page.press("#channel", "Enter")
    await page.wait_for_selector(chip(one, "user chart"), timeout=WAIT_MS)

    # the chart moves on: the user's subscription stays, listed and held by the gateway...
    await page.select_option("#chart-interval", "5m")
    await chart_history(page, five)
    await page.wait_for_selector(chip(five, "chart"), timeout=WAIT_MS)
    await page.wait_for_selector(chip(one, "user"), timeout=WAIT_MS)
    await eventually(lambda: held(running) == {one, five}, what="1m (the user's) and 5m (the chart's) held")
    # ...and still receiving: its row in the channel panel moves on
    seq = "#channel-stats tr[data-channel='klines:BTCUSDT:1m'] .col-seq"
    await page.wait_for_selector(seq, timeout=WAIT_MS)
    first = await page.text_content(seq)
    await page.wait_for_function(
        "([sel, t]) => { const s = document.querySelector(sel); return s && +s.textContent > +t; }",
        arg=[seq, first if first != "-" else "0"],
        timeout=WAIT_MS,
    )

    # back and forth, as fast as the pickers go: nothing leaks, the user's channel is never let go
    for interval in ("3m", "1m", "5m", "1m", "3m", "5m", "3m"):
        await page.select_option("#chart-interval", interval)
    await page.select_option("#chart-symbol", "ETHUSDT")
    await page.select_option("#chart-symbol", "BTCUSDT")
    await chart_history(page, three)
    await eventually(lambda: held(running) == {one, three}, what="no chart channel left behind")
    await eventually(
        lambda: active_klines_are(running, {one, three}), what="/api/v1/ws/stats: 1m and 3m only"
    )
    chips = await page.eval_on_selector_all(
        "#subscriptions li", "ls => ls.map(l => [l.dataset.channel, l.dataset.reasons])"
    )
    assert sorted(chips) == [[one, "user"], [three, "chart"]]
    log = await page.text_content("#log") or ""
    assert f"unsubscribed {one}" not in log

    # the user lets go of the channel the chart shows again: the chart keeps it
    await page.select_option("#chart-interval", "1m")
    await chart_history(page, one)
    await page.click(f"{chip(one, 'user chart')} button.remove")
    await page.wait_for_selector(chip(one, "chart"), timeout=WAIT_MS)
    await eventually(lambda: held(running) == {one}, what="1m held for the chart alone")
    # and once the chart leaves it too, nobody wants it
    await page.select_option("#chart-interval", "5m")
    await chart_history(page, five)
    await page.wait_for_selector(chip(one), state="detached", timeout=WAIT_MS)
    await eventually(lambda: held(running) == {five}, what="1m let go")
    assert await page.evaluate("JSON.parse(localStorage.getItem('tickwire.channels'))") == []

    # the chart's pick is saved apart from the user's list
    await page.goto(running.url + "/")
    await page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=WAIT_MS)
    await chart_history(page, five)
    await page.wait_for_selector(chip(five, "chart"), timeout=WAIT_MS)
    await eventually(lambda: held(running) == {five}, what="the saved chart pick alone")
    assert errors == [], errors
    await ctx.close()


async def test_protected_stats_are_said_so(browser: Any) -> None:
    async with running_gateway(linger=0.2, api_keys=("k" * 32,), protect_stats=True) as gw:
        ctx, page, _ = await open_page(browser, gw.url + "/?channels=")
        await page.wait_for_function(
            "document.getElementById('stats').textContent === 'stats are protected (--protect-stats)'",
            timeout=WAIT_MS,
        )
        await ctx.close()


async def test_binance_mode_lists_the_venue_symbols(browser: Any) -> None:
    async with binance_gateway() as (gw, fake):
        ctx, page, errors = await open_page(browser, gw.url + "/?channels=")
        await chart_history(page, "klines:BTCUSDT:1m")
        trading = sorted(s for s, status in fake.symbols.items() if status == "TRADING")
        await page.wait_for_function(
            "(n) => document.querySelectorAll('#chart-symbol option').length === n", arg=len(trading)
        )
        options = await page.eval_on_selector_all("#chart-symbol option", "os => os.map(o => o.value)")
        assert sorted(options) == trading and "DOGEUSDT" not in options and "BNBBTC" in options
        assert errors == [], errors
        await ctx.close()


async def test_dashboard_phone(running: Running, browser: Any) -> None:
    base = running.url
    query = "?channels=price:BTCUSDT,price:ETHUSDT,klines:BTCUSDT:1m,depth:BTCUSDT,trades:BTCUSDT"
    phone = {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    }
    ctx, page, errors = await open_page(browser, base + "/" + query, **phone)
    await chart_history(page, "klines:BTCUSDT:1m")
    await page.wait_for_function("document.querySelectorAll('#tape li').length >= 2", timeout=WAIT_MS)
    await page.wait_for_function("/^rtt [0-9.]+ ms$/.test(document.getElementById('rtt').textContent)")
    await page.wait_for_selector("#channel-stats tr[data-channel='depth:BTCUSDT']", timeout=WAIT_MS)
    # nothing wider than the screen
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    assert errors == [], errors
    await ctx.close()
