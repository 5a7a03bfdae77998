"""The dashboard in real headless Chromium (Debian's), served by a real gateway.

Screenshots go to test-artifacts/ (desktop and phone); look at them when the
page changes.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from tickwire.channels import parse_channel
from tickwire.server import Gateway

from .helpers import publish_now


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


async def test_dashboard_desktop(gateway: Gateway, browser: Any) -> None:
    base = gateway.url  # type: ignore[attr-defined]
    ctx, page, errors = await open_page(
        browser, base + "/?channels=", viewport={"width": 1440, "height": 960}
    )
    # upstream status from /health is visible
    await page.wait_for_function("document.getElementById('upstream').textContent.includes('SIMULATED')")

    # subscribe through the form
    await page.fill("#channel", "price:btcusdt ticker:ETHUSDT klines:BTCUSDT:1s depth:BTCUSDT trades:BTCUSDT")
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

    # candles: the live one is updated, final ones appended
    await page.wait_for_function("+document.getElementById('candles').dataset.candles >= 3", timeout=WAIT_MS)
    assert await page.evaluate(CANDLE_PIXELS) > 50

    # depth ladder, trade tape, stats panel, log
    assert await page.locator("#depth .level.bid").count() >= 5
    assert await page.locator("#depth .level.ask").count() >= 5
    await page.wait_for_function("document.querySelectorAll('#tape li').length >= 3", timeout=WAIT_MS)
    await page.wait_for_function("document.getElementById('stats').textContent.includes('clients')")
    await page.wait_for_function("+document.getElementById('log').dataset.count > 20", timeout=WAIT_MS)
    assert "UNKNOWN_SYMBOL" in (await page.text_content("#log") or "")
    assert await page.locator("#subscriptions li[data-channel='price:NOPEUSDT']").count() == 0

    # feed data is text, never markup
    channel = parse_channel("signals:BTCUSDT")
    evil = b'{"note":"<img src=x onerror=\\"window.__pwned=1\\"><b>bold</b>"}'
    publish_now(gateway, channel, msgspec.Raw(evil))
    await page.wait_for_function(
        "document.getElementById('log').textContent.includes('<img src=x')", timeout=WAIT_MS
    )
    assert await page.locator("#log img, #log b").count() == 0
    assert await page.evaluate("window.__pwned === undefined")

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-desktop.png"), full_page=True)

    # a subscription can be removed: its chip and row go, and stay gone
    await page.click(f"{chip} button.remove")
    await page.wait_for_selector(chip, state="detached", timeout=WAIT_MS)
    await page.wait_for_selector("#prices tr[data-channel='price:BTCUSDT']", state="detached")
    await page.wait_for_timeout(700)
    assert await page.locator("#prices tr[data-channel='price:BTCUSDT']").count() == 0
    assert await page.locator("#prices tr[data-channel='ticker:ETHUSDT']").count() == 1

    # disconnect and connect again from the page
    await page.click("#connect")
    await page.wait_for_function("document.getElementById('conn').textContent === 'disconnected'")
    await page.click("#connect")
    await page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=WAIT_MS)
    await page.wait_for_selector("#subscriptions li[data-channel='ticker:ETHUSDT']", timeout=WAIT_MS)
    assert await page.locator(chip).count() == 0

    assert errors == [], errors
    await ctx.close()


async def test_dashboard_phone(gateway: Gateway, browser: Any) -> None:
    base = gateway.url  # type: ignore[attr-defined]
    query = "?channels=price:BTCUSDT,price:ETHUSDT,klines:BTCUSDT:1s,depth:BTCUSDT,trades:BTCUSDT"
    phone = {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    }
    ctx, page, errors = await open_page(browser, base + "/" + query, **phone)
    await page.wait_for_function("+document.getElementById('candles').dataset.candles >= 2", timeout=WAIT_MS)
    await page.wait_for_function("document.querySelectorAll('#tape li').length >= 2", timeout=WAIT_MS)
    # nothing wider than the screen
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    assert errors == [], errors
    await ctx.close()
