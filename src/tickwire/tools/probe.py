"""``tickwire probe``: subscribe for a while, print updates, then summarize.

The summary has, per channel: messages and rate, snapshots, seq gaps (and
how many messages they hid), resumes after reconnects (recovered, and how
many messages they replayed; or not, and why), and latency from each message's own
``timestamp`` to its arrival here (the gateway's and this host's clocks
must agree for it to mean anything; on one host they do). Exit status 1
when a channel delivered nothing, so the probe works as a smoke check.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import aiohttp

from .. import client
from ..errors import ProtocolError
from .describe import describe, latency_ms


if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


__all__ = ["DEFAULT_CHANNELS", "ChannelCount", "Probe", "main"]

DEFAULT_CHANNELS = ("price:BTCUSDT", "ticker:BTCUSDT", "klines:BTCUSDT:1m", "trades:BTCUSDT", "depth:BTCUSDT")


@dataclass(slots=True)
class ChannelCount:
    """What one channel delivered during the probe."""

    messages: int = 0
    snapshots: int = 0
    gaps: int = 0
    missed: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    latencies: list[int] = field(default_factory=list)
    last_price: Decimal | None = None
    resumed: int = 0  # reconnects after which the channel was recovered
    replayed: int = 0  # messages those resumes replayed
    lost: list[str] = field(default_factory=list)  # reasons of resumes that were not recovered

    def percentile(self, q: float) -> int | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Probe:
    """Counts per channel; pure apart from the clock read in :func:`latency_ms`."""

    def __init__(self, channels: list[str]) -> None:
        self.channels = {name: ChannelCount() for name in channels}
        self.disconnects = 0
        self.errors: list[client.Error] = []

    def add(self, msg: client.Message) -> None:
        if isinstance(msg, client.Disconnected):
            self.disconnects += 1
        elif isinstance(msg, client.Error):
            self.errors.append(msg)
        elif isinstance(msg, client.Gap):
            count = self.channels.setdefault(msg.channel, ChannelCount())
            count.gaps += 1
            count.missed += msg.missed
        elif isinstance(msg, client.Recovered):
            count = self.channels.setdefault(msg.channel, ChannelCount())
            count.resumed += 1
            count.replayed += msg.replayed
        elif isinstance(msg, client.NotRecovered):
            self.channels.setdefault(msg.channel, ChannelCount()).lost.append(msg.reason)
        elif isinstance(msg, client.DataMessage):
            count = self.channels.setdefault(msg.channel, ChannelCount())
            count.messages += 1
            count.snapshots += msg.snapshot
            count.first_seq = msg.seq if count.first_seq is None else count.first_seq
            count.last_seq = msg.seq
            latency = latency_ms(msg)
            if latency is not None:
                count.latencies.append(latency)

    @property
    def silent(self) -> list[str]:
        return [name for name, count in self.channels.items() if count.messages == 0]

    def table(self, seconds: float) -> Table:
        from rich.table import Table

        title = f"probe summary: {seconds:.1f} s; latency in ms from each message's timestamp"
        table = Table(title=title, title_justify="left")
        headings = ("channel", "msgs", "msg/s", "snap", "gaps", "missed", "res", "p50", "p95", "max")
        for heading in headings:
            table.add_column(heading, justify="left" if heading == "channel" else "right", no_wrap=True)
        for name, c in self.channels.items():
            lat = [c.percentile(0.5), c.percentile(0.95), max(c.latencies) if c.latencies else None]
            table.add_row(
                name,
                str(c.messages),
                f"{c.messages / seconds:.1f}" if seconds > 0 else "-",
                str(c.snapshots),
                str(c.gaps),
                str(c.missed),
                f"{c.resumed}" + (f"/{c.resumed + len(c.lost)}" if c.lost else ""),
                *("-" if v is None else str(v) for v in lat),
                style="red" if c.messages == 0 else "yellow" if c.gaps or c.lost else "",
            )
        return table

    def resume_line(self) -> str:
        """``resumes: N recovered (M replayed), K not recovered (reasons)``."""
        counts = self.channels.values()
        lost = [reason for c in counts for reason in c.lost]
        recovered, replayed = sum(c.resumed for c in counts), sum(c.replayed for c in counts)
        text = f"resumes: {recovered} recovered ({replayed} replayed)"
        return text + f", {len(lost)} not recovered" + (f" ({', '.join(sorted(set(lost)))})" if lost else "")

    def all_latencies(self) -> list[int]:
        return [x for c in self.channels.values() for x in c.latencies]


def _line(msg: client.Message, probe: Probe) -> object:
    from rich.text import Text

    channel = getattr(msg, "channel", None)
    count = probe.channels.get(channel) if isinstance(channel, str) else None
    previous = count.last_price if count is not None else None
    if isinstance(msg, client.Price | client.Ticker) and count is not None:
        count.last_price = msg.data.price
    stamp = time.strftime("%H:%M:%S", time.localtime())
    head = Text(f"{stamp} ", style="dim")
    head.append(f"{channel or type(msg).__name__.lower():<22}", style="cyan")
    seq = getattr(msg, "seq", None)
    head.append(f" #{seq:<6}" if isinstance(seq, int) else " " * 8, style="dim")
    head.append_text(describe(msg, previous))
    latency = latency_ms(msg)
    if latency is not None:
        head.append(f"  {latency} ms", style="dim")
    return head


async def run(
    url: str, channels: list[str], duration: float, *, console: Console, quiet: bool, token: str | None
) -> int:
    probe = Probe(channels)
    start = time.monotonic()
    async with client.connect(url, token) as feed:
        try:
            await feed.subscribe(*channels)
        except client.SubscriptionError as exc:
            for error in exc.errors:
                console.print(
                    f"refused {error.channel}: {error.code} {error.message}", style="red", markup=False
                )
                probe.channels.pop(error.channel or "", None)
        if not probe.channels:
            return 2
        try:
            async with asyncio.timeout(duration):
                async for msg in feed:
                    if not quiet:
                        console.print(_line(msg, probe))
                    probe.add(msg)
        except TimeoutError:
            pass
    elapsed = time.monotonic() - start
    console.print(probe.table(elapsed))
    every = probe.all_latencies()
    if every:
        console.print(
            f"latency over {len(every)} messages: median {statistics.median(every):.0f} ms, "
            f"max {max(every)} ms; disconnects {probe.disconnects}; gaps "
            f"{sum(c.gaps for c in probe.channels.values())}"
        )
    if probe.disconnects:
        console.print(probe.resume_line(), markup=False)
    if probe.silent:
        console.print(f"no message on: {' '.join(probe.silent)}", style="bold red", markup=False)
        return 1
    return 0


def main(args: argparse.Namespace) -> int:
    """``tickwire probe``: the exit code (0 when every channel delivered)."""
    from rich.console import Console  # imported here: `tickwire serve` never loads rich

    logging.getLogger("tickwire.client").setLevel(logging.WARNING)
    console = Console(highlight=False)
    channels = list(args.channels or DEFAULT_CHANNELS)
    try:
        return asyncio.run(
            run(args.url, channels, args.duration, console=console, quiet=args.quiet, token=args.token)
        )
    except ProtocolError as exc:
        print(f"tickwire probe: {exc.channel}: {exc.message}", file=sys.stderr)
        return 2
    except (OSError, aiohttp.ClientError, client.ClientError, TimeoutError) as exc:
        print(f"tickwire probe: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
