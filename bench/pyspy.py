"""``python -m bench --profile``: where a server's CPU goes at W1 50k, sampled by py-spy.

The server under test gets W1's 1,000 clients on one hot channel at 50
messages/s (50k deliveries/s), then ``py-spy record --format raw --native``
samples it for a few seconds. Idle samples (the loop waiting in epoll) are
left out by py-spy, so the percentages are of the time the process was busy.
``PROFILE.md`` ranks frames by self time twice: all frames (the ``send``
system call shows as ``write (libc.so.6)``), and Python frames only, where a
frame's self time includes the C code it calls. py-spy needs ptrace: run as root, or with
``kernel.yama.ptrace_scope`` at 0.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .loadgen import Workers


__all__ = ["Profile", "Summary", "profile_servers", "profile_w1", "summarise", "write_profile"]

TOP = 15


@dataclass
class Summary:
    samples: int  # busy samples (py-spy leaves idle ones out)
    self_counts: list[tuple[str, int]]  # the TOP frames by self samples
    total_counts: dict[str, int]  # inclusive samples of those frames


@dataclass
class Profile:
    server: str
    seconds: float
    rate: int  # samples per second asked for
    native: bool  # C frames recorded too (``--native``)
    frames: Summary  # every frame, C ones included when native
    python: Summary  # Python frames only: C time goes to the Python frame that called it


def _is_python(frame: str) -> bool:
    where = frame.rpartition("(")[2]
    return ".py" in where or where.startswith("<frozen")


def summarise(raw: str, top: int = TOP, *, python_only: bool = False) -> Summary:
    """Self and inclusive sample counts from py-spy's raw (collapsed stacks) output.

    Each line is ``frame;frame;...;leaf count``, outermost first; the leaf
    gets the self time. With ``python_only``, native frames (``write
    (libc.so.6)``, ``task_step_impl (_asynciomodule.c:2704)``) are dropped
    first, so their time lands on the innermost Python frame above them.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if python_only:
            frames = [f for f in frames if _is_python(f)] or frames[:1]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):  # a recursive frame counts once per sample
            inclusive[frame] += n
    best = own.most_common(top)
    return Summary(total, best, {frame: inclusive[frame] for frame, _ in best})


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _record(spy: str, pid: int, seconds: float, rate: int, native: bool) -> str | None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        cmd = [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate), "--format", "raw"]
        cmd += ["--function", "-o", str(raw), *(["--native"] if native else [])]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        if done.returncode != 0 or not raw.exists():
            print(f"py-spy{' --native' if native else ''} failed: {done.stderr.strip()[-300:]}", flush=True)
            return None
        return raw.read_text()


def profile_w1(
    server_kind: str, workers: Workers, clients: int, *, seconds: float = 5.0, rate: int = 200
) -> Profile:
    """Sample ``server_kind`` under W1 at 50 messages/s to ``clients`` clients."""
    from .run import Server  # the harness imports this module lazily: no cycle at import time

    spy = _py_spy()
    if spy is None:
        raise RuntimeError("py-spy not found (pip install --group bench)")
    server = Server(server_kind)
    try:
        workers.connect(server.url, [["trades:S000USDT"]] * clients, sample_every=0)
        server.cmd(cmd="feed", rate=50, channels=1, kind="trade")
        time.sleep(1.0)  # past the first ramp-up of the writers and the clients
        # native frames show the system calls inside uvloop; not every kernel lets py-spy unwind them
        native = True
        raw = _record(spy, server.proc.pid, seconds, rate, native=True)
        if raw is None:
            native = False
            raw = _record(spy, server.proc.pid, seconds, rate, native=False)
        if raw is None:
            raise RuntimeError("py-spy could not sample the server (ptrace allowed?)")
    finally:
        workers.close()
        server.stop()
    return Profile(server_kind, seconds, rate, native, summarise(raw), summarise(raw, python_only=True))


def _table(title: str, summary: Summary) -> list[str]:
    lines = [f"### {title}", "", "| # | frame | self % | total % |", "|---:|---|---:|---:|"]
    n = max(1, summary.samples)
    for k, (frame, own) in enumerate(summary.self_counts, 1):
        total = summary.total_counts.get(frame, own)
        lines.append(f"| {k} | `{frame}` | {100 * own / n:.1f} | {100 * total / n:.1f} |")
    return [*lines, ""]


def write_profile(out: Path, profiles: list[Profile], context: list[str]) -> Path:
    """``PROFILE.md``: per server, the top frames by self time, with and without C frames."""
    lines = [
        "# Where the CPU goes at W1 50k (py-spy)",
        "",
        "Written by `python -m bench --profile`: W1's clients on one hot channel at 50 messages/s (50k",
        "deliveries/s at full scale, one frame per write at this rate), sampled with `py-spy record",
        "--format raw --function --native`. Idle samples (the loop waiting in `epoll`) are left out, so",
        "percentages are of the samples in which the process was busy. Two views of the same samples:",
        "all frames (C ones included: `write (libc.so.6)` is the `send` system call), and Python frames",
        "only, where C time counts in the Python frame that called it. Frames are `function (file:first",
        "line)`; self = samples with the frame innermost, total = samples with it anywhere on the stack.",
        "",
        *context,
        "",
    ]
    for p in profiles:
        busy = p.frames.samples / (p.rate * p.seconds)
        lines += [
            f"## {p.server}",
            "",
            f"{p.frames.samples:,} busy samples in {p.seconds:.0f} s at {p.rate}/s (busy ~{busy:.0%} of the time)"
            + ("" if p.native else "; native frames unavailable, Python frames only")
            + ".",
            "",
        ]
        if p.native:
            lines += _table("All frames, by self time", p.frames)
        lines += _table("Python frames, by self time (C callees included)", p.python)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "PROFILE.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def profile_servers(workers: Workers, out: Path, kinds: list[str], clients: int, *, quick: bool) -> Path:
    """Profile each of ``kinds`` in turn and write ``PROFILE.md`` in ``out``."""
    print("profile: py-spy at W1 50 msgs/s", flush=True)
    profiles = []
    for kind in kinds:
        p = profile_w1(kind, workers, clients, seconds=2.0 if quick else 5.0)
        top = p.python.self_counts[0][0] if p.python.self_counts else "-"
        print(f"    {kind:10s} {p.frames.samples} busy samples; top Python frame: {top}", flush=True)
        profiles.append(p)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    scale = "QUICK scale" if quick else "full scale"
    path = write_profile(
        out, profiles, [f"- date: {when}; load average {load}; {scale}, {clients:,} clients"]
    )
    print(f"wrote {path}", flush=True)
    return path
