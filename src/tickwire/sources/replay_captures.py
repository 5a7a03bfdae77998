"""Third-party Binance captures (tests/data/binance/captures/SOURCES.md) as replay records.

Such a capture is a set of files next to each other, named after one base:

* ``<base>.ws.jsonl``: one WebSocket text frame per line, byte for byte;
* ``<base>.ws.recv_ts.txt`` (float seconds) or ``<base>.ws.recv_ns.txt``
  (integer nanoseconds): line N is the receive time of frame N;
* ``<base>.rest_depth.jsonl``: REST depth snapshot bodies, one per line;
* ``<base>.rest_depth.meta.tsv``: a header line, then per snapshot its
  receive time, URL (the symbol is its ``symbol`` parameter) and how many
  frames were received before it.

:func:`read_capture_set` interleaves them into the records ``tickwire
record`` writes (:class:`~.replay.Capture`): each snapshot becomes a
``rest`` record of its symbol's ``@depth@100ms`` stream, placed after the
frames received before it, so the replay feeds the book engine exactly the
order the recorder saw.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ..errors import UpstreamError
from .binance.bookparse import book_stream


if TYPE_CHECKING:
    from .replay import Capture

__all__ = ["WS_SUFFIX", "read_capture_set"]

WS_SUFFIX = ".ws.jsonl"


def _times_ms(base: str) -> list[int]:
    seconds = Path(base + ".ws.recv_ts.txt")
    if seconds.exists():
        return [int(Decimal(line) * 1000) for line in seconds.read_text().split()]
    nanos = Path(base + ".ws.recv_ns.txt")
    if nanos.exists():
        return [int(line) // 1_000_000 for line in nanos.read_text().split()]
    raise UpstreamError(f"{base}: no .ws.recv_ts.txt or .ws.recv_ns.txt next to the frames")


def _snapshots(base: str) -> list[tuple[int, int, str, str]]:
    """(frames before, receive ms, stream, body) of every REST snapshot, in file order."""
    bodies_path = Path(base + ".rest_depth.jsonl")
    if not bodies_path.exists():
        return []
    bodies = bodies_path.read_text().splitlines()
    header, *rows = Path(base + ".rest_depth.meta.tsv").read_text().splitlines()
    nanos = header.split("\t")[1] == "recv_ns"
    out: list[tuple[int, int, str, str]] = []
    for row, body in zip(rows, bodies, strict=True):
        fields = row.split("\t")
        recv, url, before = fields[1], fields[2], int(fields[3])
        recv_ms = int(recv) // 1_000_000 if nanos else int(Decimal(recv) * 1000)
        symbol = parse_qs(urlsplit(url).query)["symbol"][0]
        out.append((before, recv_ms, book_stream(symbol), body))
    return out


def read_capture_set(path: str | Path) -> list[Capture]:
    """The records of the capture whose frames are at ``path`` (``<base>.ws.jsonl``).

    Raises:
        UpstreamError: a sidecar is missing or does not line up with the frames.
        OSError: a file cannot be read.
    """
    from .replay import Capture  # the replay module imports this one

    name = str(path)
    if not name.endswith(WS_SUFFIX):
        raise UpstreamError(f"{name}: not a {WS_SUFFIX} file")
    base = name[: -len(WS_SUFFIX)]
    frames = Path(name).read_text().splitlines()
    times = _times_ms(base)
    if len(times) != len(frames):
        raise UpstreamError(f"{base}: {len(frames)} frames but {len(times)} receive times")
    snapshots = _snapshots(base)
    records: list[Capture] = []
    s = 0
    for index, (frame, t) in enumerate(zip(frames, times, strict=True)):
        while s < len(snapshots) and snapshots[s][0] <= index:
            _, recv_ms, stream, body = snapshots[s]
            records.append(Capture(recv_ms, rest=stream, body=body))
            s += 1
        records.append(Capture(t, ws=frame))
    records.extend(Capture(recv_ms, rest=stream, body=body) for _, recv_ms, stream, body in snapshots[s:])
    return records
