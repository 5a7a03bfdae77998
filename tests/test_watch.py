"""``tickwire watch`` and ``tickwire probe`` against a real gateway, through cli.main."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import msgspec
import pytest

from tickwire import cli, client
from tickwire.channels import parse_channel
from tickwire.tools.watch import Board, render, sparkline

from .helpers import Running, eventually, publish_now


async def run_cli(*argv: str) -> int:
    """cli.main in a thread: it runs its own event loop, the gateway runs on this one."""
    return await asyncio.to_thread(cli.main, list(argv))


async def test_watch_json_prints_one_message_per_line(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    url = running.ws_url
    code = await run_cli(
        "watch", "price:btcusdt", "trades:BTCUSDT", "--url", url, "--duration", "1.2", "--json"
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    messages = [json.loads(line) for line in lines]  # every line is one JSON object
    assert messages[0]["type"] == "connected"
    prices = [m for m in messages if m["type"] == "price"]
    assert len(prices) >= 2 and all(m["channel"] == "price:BTCUSDT" for m in prices)
    assert isinstance(prices[-1]["data"]["price"], float)  # a number, as on the wire
    assert any(m["type"] == "trade" for m in messages)


async def test_watch_view_renders_sections(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    url = running.url
    channels = ["price:BTCUSDT", "klines:BTCUSDT:1s", "depth:BTCUSDT", "trades:BTCUSDT", "signals:BTCUSDT"]
    code = await run_cli("watch", *channels, "--url", url, "--duration", "1.5")
    assert code == 0
    out = capsys.readouterr().out
    for text in ("prices", "candles", "depth:BTCUSDT", "trades", "events", "SIMULATED", "price:BTCUSDT"):
        assert text in out, text
    assert "live" in out


async def test_watch_bad_channel_and_unreachable(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    url = running.ws_url
    assert await run_cli("watch", "prices:BTCUSDT", "--url", url, "--duration", "1") == 2
    assert "unknown channel kind" in capsys.readouterr().err
    assert await run_cli("watch", "price:NOPEUSDT", "--url", url, "--duration", "1") == 2
    assert "UNKNOWN_SYMBOL" in capsys.readouterr().err
    assert await run_cli("watch", "price:BTCUSDT", "--url", "ws://127.0.0.1:9/ws", "--duration", "1") == 1
    assert "cannot reach" in capsys.readouterr().err


async def test_probe_summary(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    url = running.ws_url
    code = await run_cli("probe", "price:BTCUSDT", "depth:BTCUSDT", "--url", url, "--duration", "1.2")
    assert code == 0
    out = capsys.readouterr().out
    assert "probe summary" in out and "p95" in out
    row = next(line for line in out.splitlines() if "│ depth:BTCUSDT" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert int(cells[1]) >= 5  # the book updates every 100 ms
    assert "#" in out  # the per-message lines came first


async def test_probe_reports_silent_channel(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    url = running.ws_url
    code = await run_cli("probe", "signals:BTCUSDT", "--url", url, "--duration", "0.5", "--quiet")
    assert code == 1
    assert "no message on: signals:BTCUSDT" in capsys.readouterr().out


def test_board_keeps_direction_gaps_and_stale_state() -> None:
    now = [100.0]
    board = Board("ws://x/ws", ["price:BTCUSDT", "signals:BTCUSDT"], clock=lambda: now[0])

    def price(seq: int, value: str) -> client.Price:
        zero = Decimal(0)
        data = client.PriceData(Decimal(value), zero, zero, zero, zero, zero, 1)
        return client.Price("price:BTCUSDT", "BTCUSDT", seq, data)

    board.add(price(1, "10"))
    board.add(price(2, "11"))
    board.add(price(3, "11"))  # unchanged: still shows the last move (up)
    quote = board.quotes["price:BTCUSDT"]
    assert (quote.previous, quote.msg.data.price) == (Decimal(10), Decimal(11))
    board.add(client.Gap("price:BTCUSDT", 3, 6))
    board.add(client.Status("price:BTCUSDT", "stale", "t", "upstream disconnected"))
    assert board.gaps == 1 and board.state_of("price:BTCUSDT") == (
        "stale: upstream disconnected",
        "bold yellow",
    )
    board.add(client.Status("price:BTCUSDT", "live", "t"))
    now[0] += 10
    assert board.state_of("price:BTCUSDT")[0] == "quiet 10s"
    board.add(client.Signal("signals:BTCUSDT", 1, {"note": "[bold red]not markup[/]"}))
    from rich.console import Console

    console = Console(width=120, record=True, color_system=None)
    console.print(render(board))
    assert "[bold red]not markup[/]" in console.export_text()


def test_sparkline() -> None:
    assert sparkline([Decimal(1), Decimal(2), Decimal(3)]) == "▁▄█"
    assert sparkline([]) == ""
    assert sparkline([Decimal(5)] * 2) == "▄▄"


async def test_probe_counts_gaps(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    url = running.ws_url
    channel = parse_channel("signals:ETHUSDT")

    async def publish() -> None:
        await eventually(
            lambda: running.gateway.hub.subscriber_count(channel.name), what="the probe subscribed"
        )
        publish_now(running.gateway, channel, msgspec.Raw(b'{"a":1}'))
        running.gateway.ingest.next_seq(channel.name)
        publish_now(running.gateway, channel, msgspec.Raw(b'{"a":2}'))

    task = asyncio.get_running_loop().create_task(publish())
    code = await run_cli("probe", channel.name, "--url", url, "--duration", "1.2")
    await task
    assert code == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "│ signals:ETHUSDT" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert (cells[1], cells[4], cells[5]) == ("2", "1", "1")  # messages, gaps, missed
    assert "gap: 1 missed" in out
