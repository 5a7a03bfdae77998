"""The replay source: plays a capture written by ``tickwire record``.

A capture is gzip-compressed JSON lines (plain JSON lines are read too), one
upstream frame per line with its receive time in ms::

    {"t": 1723161255208, "ws": "<the WebSocket text frame, byte for byte>"}
    {"t": 1723161255301, "rest": "btcusdt@ticker", "body": "<REST snapshot body>"}

Frames go through the same parser and normalizer as live data
(:mod:`.binance.parse`), so clients see what they would have seen live; the
partial book, which carries no time of its own, is stamped with the recorded
receive time, so a replay is deterministic. Playback starts ``start_delay``
seconds after the first channel opens (so a client can subscribe first) and
keeps the recorded spacing divided by ``speed``; with ``loop`` it starts over.

``book:`` channels go through the Binance book engine (:mod:`.binance.books`),
the same as live: recorded ``@depth@100ms`` diffs feed it, and a recorded
REST depth snapshot answers its request for one (a snapshot recorded before
the request is held until it comes). Streams the parsers do not know (a
third-party capture's ``bookTicker``, ``aggTrade``) are skipped. A third-party
capture set (``*.ws.jsonl`` with its sidecars, :mod:`.replay_captures`) is
read as if ``tickwire record`` had written it.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import msgspec

from ..channels import Channel, Kind
from ..config import Settings
from ..errors import ConfigError, ErrorCode, ProtocolError, UpstreamError
from ..events import Event, Kline
from ..marketdata import SymbolInfo, last_candles, split_symbol
from .base import SourceHealth, SourceKind, SourceSink
from .binance.bookparse import book_stream, is_book_stream
from .binance.books import BookFeed
from .binance.parse import DataFrame, Normalizer, parse_frame, stream_kind, stream_of, symbol_of_stream
from .replay_captures import WS_SUFFIX, read_capture_set
from .replay_history import CaptureHistory


__all__ = ["Capture", "ReplaySource", "read_capture"]

logger = logging.getLogger("tickwire.upstream.replay")


class Capture(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of a capture."""

    t: int
    ws: str | None = None
    rest: str | None = None
    body: str | None = None


_line = msgspec.json.Decoder(Capture)


class _BadLine(UpstreamError):
    def __init__(self, path: str | Path, number: int, exc: Exception) -> None:
        super().__init__(f"{path}:{number}: not a capture line: {exc}")
        self.number = number
        self.why = str(exc)


def read_capture(path: str | Path) -> list[Capture]:
    """All lines of a capture file (gzip or plain).

    Raises:
        UpstreamError: a line is not a capture record.
    """
    if str(path).endswith(WS_SUFFIX):
        return read_capture_set(path)
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    out: list[Capture] = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(_line.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _BadLine(path, number, exc) from exc
    return out


def _load(path: str) -> list[Capture]:
    """The capture at ``--replay-file``, or one line saying why it cannot be played.

    Raises:
        ConfigError: unreadable, a damaged gzip stream, or a line that is not a capture record.
    """
    try:
        return read_capture(path)
    except _BadLine as exc:
        raise ConfigError(
            f"--replay-file={path!r}: not a capture of tickwire record (line {exc.number}: {exc.why})"
        ) from None
    except (UpstreamError, ValueError) as exc:  # a capture set whose sidecars do not line up
        raise ConfigError(f"--replay-file={path!r}: {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a damaged gzip stream
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise ConfigError(f"--replay-file={path!r}: cannot read it ({why})") from None


def _stream_of_record(record: Capture) -> str | None:
    if record.rest is not None:
        return record.rest
    if record.ws is not None:
        try:
            frame = parse_frame(record.ws)
        except UpstreamError:
            return None
        if isinstance(frame, DataFrame):
            return frame.stream
    return None


class ReplayHealth(SourceHealth, kw_only=True):
    replay: str  # the capture's label
    frames: int
    position: int
    passes: int
    finished: bool
    bad_frames: int


class ReplaySource:
    """Plays a capture through the live parsers.

    Args:
        records: the capture's lines, in order.
        speed: 2 plays twice as fast as recorded.
        loop: start over at the end.
        start_delay: seconds between the first channel opening and the first frame.
    """

    name = "replay"
    kind = SourceKind.REPLAY

    def __init__(
        self,
        records: list[Capture],
        *,
        speed: float = 1.0,
        loop: bool = False,
        start_delay: float = 0.5,
        label: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = records
        self._speed = speed
        self._loop = loop
        self._start_delay = start_delay
        self._label = label
        self._clock = clock
        self._norm = Normalizer()
        self._sink: SourceSink | None = None
        self._open: dict[str, set[str]] = {}
        self._wanted = asyncio.Event()
        self._symbols = sorted(
            {symbol_of_stream(s) for r in records if (s := _stream_of_record(r)) is not None}
        )
        self.position = 0
        self.passes = 0
        self.finished = False
        self.bad_frames = 0
        self.skipped_frames = 0  # frames of streams no parser knows (a capture's bookTicker, aggTrade)
        self.books = BookFeed(
            emit=self._emit, status=self._status, on_request=self._snapshot_wanted, precision=self._precision
        )
        self._held: dict[str, tuple[str, int]] = {}  # symbol -> a recorded snapshot nobody asked for yet

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplaySource:
        if not settings.replay_file:
            raise ConfigError("--source replay needs --replay-file")
        records = _load(settings.replay_file)
        logger.info("replay of %s: %d frames", settings.replay_file, len(records))
        return cls(
            records,
            speed=settings.replay_speed,
            loop=settings.replay_loop,
            label=Path(settings.replay_file).name,
        )

    # -- Source protocol -----------------------------------------------------------------

    def attach(self, sink: SourceSink) -> None:
        self._sink = sink

    async def validate(self, channel: Channel) -> None:
        if channel.symbol not in self._symbols:
            raise ProtocolError(
                ErrorCode.UNKNOWN_SYMBOL,
                f"the replay holds no {channel.symbol}; it holds {', '.join(self._symbols) or 'nothing'}",
                channel=channel.name,
            )

    def open(self, channel: Channel) -> None:
        self._open.setdefault(self._stream(channel), set()).add(channel.name)
        if channel.kind is Kind.BOOK:
            self.books.open(channel)
        self._wanted.set()

    @staticmethod
    def _stream(channel: Channel) -> str:
        return book_stream(channel.symbol or "") if channel.kind is Kind.BOOK else stream_of(channel)

    def close(self, channel: Channel) -> None:
        if channel.kind is Kind.BOOK:
            self.books.close(channel)
        stream = self._stream(channel)
        names = self._open.get(stream)
        if names is not None:
            names.discard(channel.name)
            if not names:
                del self._open[stream]

    def streams(self) -> list[str]:
        return sorted(self._open)

    def known_symbols(self) -> list[str] | None:
        return list(self._symbols)

    def health(self) -> ReplayHealth:
        return ReplayHealth(
            source=self.name,
            live=True,  # nothing upstream can be down: the capture is the upstream
            replay=self._label,
            frames=len(self._records),
            position=self.position,
            passes=self.passes,
            finished=self.finished,
            bad_frames=self.bad_frames,
            streams=len(self._open),
        )

    async def run(self) -> None:
        await self._wanted.wait()
        await asyncio.sleep(self._start_delay)
        while True:
            await self._play_once()
            self.passes += 1
            if not self._loop or not self._records:
                self.finished = True
                logger.info("replay finished after %d frames", self.position)
                await asyncio.Event().wait()  # stay up: clients keep their last values
            self._norm.reset()
            for symbol in list(self.books.syncs):  # update ids go back: every book is rebuilt
                self.books.stream_down(symbol, "replay starts over")

    async def _play_once(self) -> None:
        if not self._records:
            return
        t0 = self._records[0].t
        start = self._clock()
        for index, record in enumerate(self._records):
            due = start + (record.t - t0) / 1000 / self._speed
            delay = due - self._clock()
            if delay > 0.001:
                await asyncio.sleep(delay)
            self.position = index + 1
            event = self._event(record)
            if event is not None and self._sink is not None:
                self._sink.on_event(event)

    def _event(self, record: Capture) -> Event | None:
        try:
            if record.rest is not None and record.body is not None:
                if is_book_stream(record.rest):
                    self._book_snapshot(symbol_of_stream(record.rest), record.body, record.t)
                    return None
                return self._norm.accept_rest(record.rest, record.body.encode(), record.t)
            if record.ws is not None:
                frame = parse_frame(record.ws)
                if isinstance(frame, DataFrame):
                    return self._frame(frame, record.t)
        except UpstreamError as exc:
            self.bad_frames += 1
            logger.warning("replay frame %d skipped: %s", self.position, exc)
        return None

    def _frame(self, frame: DataFrame, t: int) -> Event | None:
        if is_book_stream(frame.stream):
            self.books.deliver(frame.data)
            return None
        try:
            stream_kind(frame.stream)
        except UpstreamError:
            self.skipped_frames += 1
            return None
        return self._norm.accept(frame.stream, frame.data, t)

    # -- books: recorded snapshots answer the engine's requests -------------------------------

    def _emit(self, event: Event) -> None:
        if self._sink is not None:
            self._sink.on_event(event)

    def _status(self, channel: str, live: bool, reason: str | None) -> None:
        if self._sink is not None:
            self._sink.on_status(channel, live, reason)

    def _book_snapshot(self, symbol: str, body: str, t: int) -> None:
        if not self.books.snapshot(symbol, body.encode(), t):
            self._held[symbol] = (body, t)

    def _precision(self, symbol: str) -> tuple[int, int]:
        """The most decimals the capture has for ``symbol`` (no ``exchangeInfo`` in a capture):
        never fewer than a later diff carries, so no quantity is rounded (replay_history.py)."""
        precision = self._capture_history().precision(symbol)
        return precision.price, precision.qty

    def _snapshot_wanted(self, symbol: str) -> None:
        # not from inside the engine's own call: it answers on the next loop turn
        asyncio.get_running_loop().call_soon(self._serve_held, symbol)

    def _serve_held(self, symbol: str) -> None:
        held = self._held.pop(symbol, None)
        if held is not None and symbol in self.books.pending:
            self.books.snapshot(symbol, held[0].encode(), held[1])

    # -- market data over HTTP (replay_history.py) -------------------------------------------

    _history: CaptureHistory | None = None  # scanned on the first request

    def _capture_history(self) -> CaptureHistory:
        if self._history is None:
            self._history = CaptureHistory.scan(self._records)
        return self._history

    async def klines(
        self, symbol: str, interval: str, *, limit: int, end_time: int | None = None
    ) -> list[Kline]:
        """Candles of the capture's kline frames played so far, as the venue would have answered then."""
        if symbol not in self._symbols:
            raise ProtocolError(ErrorCode.UNKNOWN_SYMBOL, f"the replay holds no {symbol}")
        played = self._capture_history().played(symbol, interval, self.position)
        return last_candles(played, limit=limit, end_time=end_time)

    async def symbols(self) -> list[SymbolInfo]:
        """The symbols seen in the capture; precision is estimated from the numbers seen."""
        history = self._capture_history()
        return [SymbolInfo(s, *split_symbol(s), "TRADING", history.precision(s)) for s in self._symbols]
