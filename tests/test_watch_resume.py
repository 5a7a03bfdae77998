"""``tickwire watch`` shows how each channel resumed after a reconnect, as ``probe`` does:
one line per channel, "resumed N" or "not recovered: reason"."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rich.console import Console

from tickwire import cli, client
from tickwire.errors import CloseCode
from tickwire.tools.watch import Board, render

from .helpers import Running, eventually


def screen(board: Board) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(render(board))
    return console.export_text()


def test_the_board_lists_each_resume_as_an_event() -> None:
    board = Board("ws://x/ws", ["trades:BTCUSDT", "klines:BTCUSDT:1m"])
    board.add(client.Recovered("trades:BTCUSDT", 12))
    board.add(client.NotRecovered("klines:BTCUSDT:1m", "epoch_changed"))
    lines = screen(board).splitlines()
    assert any("trades:BTCUSDT" in line and "resumed 12" in line for line in lines)
    assert any("klines:BTCUSDT:1m" in line and "not recovered: epoch_changed" in line for line in lines)


async def test_watch_shows_the_resume_after_the_gateway_cut_its_connection(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = running.gateway
    trades = "trades:BTCUSDT"

    def the_session() -> Any:
        sessions = [s for s in gateway.sessions if trades in s.subscriptions]
        return sessions[0] if len(sessions) == 1 else None

    watch = asyncio.create_task(
        asyncio.to_thread(cli.main, ["watch", trades, "--url", running.ws_url, "--duration", "3"])
    )

    def acked() -> Any:  # the ack is queued with the subscription and gone once written
        session = the_session()
        return session if session is not None and session.queued == 0 else None

    # cut only once the ack was written: a close drops what is still queued, the ack with it,
    # and a client that never got its position has nothing to resume from
    first = await eventually(acked, what="watch subscribed and acked")
    first.close(CloseCode.GOING_AWAY, "cut by the test")
    await eventually(lambda: the_session() not in (None, first), what="watch back")
    assert await watch == 0
    out = capsys.readouterr().out
    assert any(trades in line and "resumed " in line for line in out.splitlines()), out
