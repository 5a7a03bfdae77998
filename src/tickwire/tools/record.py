"""``tickwire record``: write the raw upstream frames of some channels to a capture file.

The file is what :mod:`.sources.replay` plays (format in its docstring):
gzip JSON lines, each WebSocket data frame byte for byte with its receive
time, plus the REST snapshots the connector used. Only frames the connector
accepted are written (duplicates of a rotation overlap are not), so a replay
shows exactly what clients saw.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import msgspec

from ..channels import parse_channel
from ..config import Settings
from ..errors import ConfigError, ProtocolError
from ..events import Event
from ..sources import RecordingSource, make_source
from ..sources.replay import Capture


__all__ = ["add_arguments", "record", "run_record"]

logger = logging.getLogger("tickwire.record")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``record`` adds to the settings flags."""
    parser.add_argument(
        "--channels", action="append", required=True, metavar="CHANNELS",
        help="market channels to record, comma-separated (repeatable), e.g. trades:BTCUSDT,klines:BTCUSDT:1m",
    )  # fmt: skip
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="capture file to write (gzip JSON lines)"
    )
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )


class _Log:
    """The sink of a recording: events are not served, status changes are logged."""

    def on_event(self, event: Event) -> None:
        pass

    def on_status(
        self, channel: str, live: bool, reason: str | None, gap: tuple[int, int] | None = None
    ) -> None:
        logger.info("%s %s%s", channel, "live" if live else "stale", f": {reason}" if reason else "")


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._encoder = msgspec.json.Encoder()
        self.frames = 0

    def ws(self, text: str, recv_ms: int) -> None:
        self._write(Capture(recv_ms, ws=text))

    def rest(self, stream: str, body: bytes, recv_ms: int) -> None:
        self._write(Capture(recv_ms, rest=stream, body=body.decode()))

    def _write(self, line: Capture) -> None:
        self._out.write(self._encoder.encode(line) + b"\n")
        self.frames += 1


def _channels(raw: Sequence[str]) -> list[str]:
    names = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    out: list[str] = []
    for name in names:
        try:
            channel = parse_channel(name)
        except ProtocolError as exc:
            raise ConfigError(f"--channels: {exc.message}") from None
        if not channel.is_market:
            raise ConfigError(f"--channels: {channel.name} is not a market channel")
        out.append(channel.name)
    return out


def _recording_source(settings: Settings) -> RecordingSource:
    source = make_source(settings)
    if not isinstance(source, RecordingSource):
        raise ConfigError(f"--source {settings.source}: no venue streams to record (try --source binance)")
    return source


async def record(
    settings: Settings,
    channels: Sequence[str],
    out: str | Path,
    *,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    source: RecordingSource | None = None,
) -> int:
    """Record ``channels`` into ``out`` until ``duration`` passes or ``stop`` is set.

    Returns:
        the number of lines written.

    Raises:
        ConfigError: a channel is malformed or its symbol is not traded.
    """
    names = _channels(channels)
    src = source if source is not None else _recording_source(settings)
    src.attach(_Log())
    stop = stop if stop is not None else asyncio.Event()
    with gzip.open(out, "wb") as raw:
        writer = _Writer(raw)  # type: ignore[arg-type]  # gzip.GzipFile is a binary IO
        src.raw_hook = writer.ws
        src.rest_hook = writer.rest
        task = asyncio.get_running_loop().create_task(src.run(), name="record-source")
        try:
            for name in names:
                channel = parse_channel(name)
                try:
                    await src.validate(channel)
                except ProtocolError as exc:
                    raise ConfigError(f"--channels: {exc.message}") from None
                src.open(channel)
            logger.info("recording %s to %s", ", ".join(names), out)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    logger.info("wrote %d frames to %s", writer.frames, out)
    return writer.frames


def run_record(settings: Settings, args: argparse.Namespace) -> int:
    """``tickwire record``: the exit code."""
    _recording_source(settings)  # a source that cannot be recorded fails before anything connects
    _channels(args.channels)  # bad names fail before anything connects

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        return await record(settings, args.channels, args.out, duration=args.duration, stop=stop)

    frames = asyncio.run(main())
    print(f"tickwire: recorded {frames} frames to {args.out}")
    return 0
