"""The workloads W1..W7 (issues 6, 12, 13 and 14) against tickwire, the floor and two peers, and the measurements.

Every server under test runs in its own process, fed by the same fake
upstream schedule (:mod:`bench.feed`); the clients run in separate worker
processes (:mod:`bench.loadgen`). Per step we measure deliveries/s,
delivered vs offered, the server's CPU (user+sys from ``/proc``) per
delivered update, end-to-end latency from event time to client receipt, and
RSS. Everything listens on 127.0.0.1 and every step is bounded in time.
W6 (order books from a real capture, :mod:`bench.books`) and W7 (a reconnect
storm with resume, :mod:`bench.storm`) are tickwire's alone and start
``tickwire serve`` processes of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .books import w6
from .loadgen import Workers
from .paired import w1_paired
from .storm import w7


__all__ = ["main"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVERS = ("tickwire", "floor", "websockets", "node")
# the floor peer answers the fan-out questions (W1, W2, W4, W5); idle memory (W3) is aiohttp's alone
SKIP = {"floor": {"W3"}}
TICKWIRE_ONLY = {"W6", "W7"}  # features the peers do not have: books, resume
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Scale:
    quick: bool
    w1_clients: int = 1000
    w1_rates: tuple[int, ...] = (25, 50, 100, 200, 400, 800, 1600)  # msgs/s on the hot channel
    w2_clients: int = 10_000
    w2_channels: int = 200
    # msgs/s over all channels; fine steps below 400 where the one-frame-per-write servers
    # saturate, so some step lies near half of the floor's saturation (a W2 target)
    w2_rates: tuple[int, ...] = (50, 100, 150, 200, 300, 400, 800, 1600)
    w3_levels: tuple[int, ...] = (1000, 5000, 10_000, 19_000)
    w4_clients: int = 1000
    w4_rate: int = 400
    w4_seconds: float = 10.0
    w5_clients: int = 1000
    w6_clients: int = 1000  # on book:BTCUSDT:20 (and as many + w6_deep on depth: and book:10)
    w6_deep: int = 100  # on book:BTCUSDT:1000
    w6_seconds: float = 25.0  # of the capture's 90 s
    w7_clients: int = 1000
    w7_warm: float = 4.0  # live data before the storm; its second half measures the CPU at rest
    w7_outage: float = 1.0  # seconds between the sockets closing and the reconnects
    step: float = 2.0
    warmup: float = 0.5
    workers: int = 2

    @classmethod
    def make(cls, quick: bool) -> Scale:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True, w1_clients=100, w1_rates=(50, 100, 800), w2_clients=300, w2_channels=20,
            w2_rates=(200, 800), w3_levels=(100, 300), w4_clients=100, w4_rate=200, w4_seconds=1.5,
            w5_clients=100, w6_clients=40, w6_deep=5, w6_seconds=1.5, w7_clients=40, w7_warm=1.2,
            w7_outage=0.3, step=0.7, warmup=0.2, workers=1,
        )  # fmt: skip


# -- servers under test ------------------------------------------------------------


class Server:
    """One server process speaking the control protocol of :mod:`bench.servers`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "node":
            cmd = ["node", str(HERE / "peers" / "node" / "server.js")]
        else:
            cmd = [sys.executable, "-m", "bench.servers", kind]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        time.sleep(0.2)
        self.base_rss = self.rss()

    def cmd(self, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return reply

    def cpu(self) -> float:
        """User + system CPU seconds of the server process."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        try:
            self.cmd(cmd="quit")
        except (BrokenPipeError, ValueError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- measuring ---------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@dataclass
class Step:
    offered_rate: float  # deliveries/s offered
    delivered_rate: float
    ratio: float
    cpu_us: float | None  # per delivered update
    p50: float | None  # ms
    p99: float | None
    p999: float | None
    samples: int
    msg_rate: float
    rate: float = 0.0  # the feed's nominal messages/s: the same steps for every server
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return self.__dict__.copy()


Subs = float | list[int]
"""Subscribers per message: one figure (W1), or per channel index (W2: popularity is skewed)."""


def _per_msg(subs: Subs, first: int = 0, end: int = 0) -> float:
    """Mean subscribers of messages ``first`` to ``end`` (round-robin over the channels)."""
    if not isinstance(subs, list):
        return subs
    # a step of a few seconds covers only part of a rotation over 200 channels, and where it
    # starts decides whether it hits the popular ones: count the channels actually published to
    hit = [subs[i % len(subs)] for i in range(first, end)]
    return sum(hit) / len(hit) if hit else sum(subs) / len(subs)


def drain(workers: Workers, limit: float = 15.0) -> None:
    """Wait until the clients stop receiving (the server caught up)."""
    deadline = time.monotonic() + limit
    previous = -1
    while time.monotonic() < deadline:
        frames = workers.collect()["frames"]
        if frames == previous:
            return
        previous = frames
        time.sleep(0.4)


def measure(
    server: Server, workers: Workers, scale: Scale, *, rate: float, channels: int, subs_per_msg: Subs,
    kind: str = "trade", spread: bool = False, seconds: float | None = None,
) -> Step:  # fmt: skip
    server.cmd(cmd="feed", rate=rate, channels=channels, kind=kind, spread=spread)
    time.sleep(scale.warmup)
    workers.reset()
    cpu0, pub0, t0 = server.cpu(), server.cmd(cmd="stats")["published"], time.monotonic()
    time.sleep(seconds if seconds is not None else scale.step)
    res = workers.collect()
    cpu1, pub1, t1 = server.cpu(), server.cmd(cmd="stats")["published"], time.monotonic()
    server.cmd(cmd="feed", rate=0, channels=channels, kind=kind)
    elapsed = t1 - t0
    delivered = res["frames"]
    # offered at the nominal rate: a feed that cannot keep its rate (tickwire-1f) is saturated
    offered = rate * elapsed * _per_msg(subs_per_msg, pub0, pub1)
    lat = [v / 1000 for v in res["lat"]]
    return Step(
        offered_rate=offered / elapsed,
        delivered_rate=delivered / elapsed,
        ratio=delivered / offered if offered else 0.0,
        cpu_us=(cpu1 - cpu0) * 1e6 / delivered if delivered else None,
        p50=pct(lat, 0.5), p99=pct(lat, 0.99), p999=pct(lat, 0.999), samples=len(lat),
        msg_rate=(pub1 - pub0) / elapsed, rate=rate,
    )  # fmt: skip


def ramp(
    server: Server, workers: Workers, scale: Scale, rates: tuple[int, ...], *, channels: int,
    subs_per_msg: Subs, reconnect: Callable[[], object], spread: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Steps up the rate until the server falls behind; then one step at half of saturation."""
    steps: list[Step] = []
    for rate in rates:
        step = measure(
            server, workers, scale, rate=rate, channels=channels, subs_per_msg=subs_per_msg, spread=spread
        )
        steps.append(step)
        log(f"    {server.kind:10s} rate {rate:6d} msg/s  {fmt_step(step)}")
        drain(workers)
        if step.ratio < 0.9 or (step.p99 or 0) > 1000:
            break
    best = max(steps, key=lambda s: s.delivered_rate)
    # past saturation tickwire closes clients whose every-message queue overflowed (4008)
    # and the peers hold seconds of backlog: the half-saturation step gets fresh connections
    workers.close()
    reconnect()
    half_rate = 0.5 * best.delivered_rate / _per_msg(subs_per_msg)
    half = measure(
        server, workers, scale, rate=half_rate, channels=channels, subs_per_msg=subs_per_msg, spread=spread
    )
    log(f"    {server.kind:10s} half-saturation {half_rate:7.0f} msg/s  {fmt_step(half)}")
    drain(workers)
    saturated = any(s.ratio < 0.9 for s in steps)
    return {
        "steps": [s.row() for s in steps],
        "max_delivered": best.delivered_rate,
        "saturated": saturated,
        "cpu_us_at_max": best.cpu_us,
        "half": half.row(),
    }


def fmt_step(s: Step) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    cpu = "-" if s.cpu_us is None else f"{s.cpu_us:.2f}"
    return (
        f"delivered {s.delivered_rate:9.0f}/s of {s.offered_rate:9.0f}/s ({s.ratio:4.0%}) "
        f"cpu {cpu} us/upd  p50/p99/p99.9 {ms(s.p50)}/{ms(s.p99)}/{ms(s.p999)} ms"
    )


def log(text: str) -> None:
    print(text, flush=True)


# -- workloads ---------------------------------------------------------------------


def _ramp_workload(
    server: Server,
    workers: Workers,
    scale: Scale,
    specs: list[list[str]],
    rates: tuple[int, ...],
    *,
    channels: int,
    subs_per_msg: Subs,
    sample_every: int,
    spread: bool = False,
) -> dict[str, Any]:
    """Connect ``specs``, ramp the feed over ``rates``, stop everything: W1 and W2."""
    try:
        t0 = time.monotonic()
        n = workers.connect(server.url, specs, sample_every=sample_every)
        log(f"    {server.kind:10s} {n} clients connected in {time.monotonic() - t0:.1f} s")
        out = ramp(
            server, workers, scale, rates, channels=channels, subs_per_msg=subs_per_msg or n, spread=spread,
            reconnect=lambda: workers.connect(server.url, specs, sample_every=sample_every),
        )  # fmt: skip
        out["clients"] = n
        return out
    finally:
        workers.close()
        server.stop()


def w1(kind: str, workers: Workers, scale: Scale) -> dict[str, Any]:
    """1,000 clients on one hot channel, ~200-byte messages, rate ramp to saturation."""
    specs = [["trades:S000USDT"]] * scale.w1_clients
    server = Server(kind.removesuffix("-1f"))
    server.kind = kind  # the label in the log; the process is tickwire's
    # subs_per_msg=0: every connected client gets every message
    return _ramp_workload(
        server, workers, scale, specs, scale.w1_rates, channels=1, subs_per_msg=0, sample_every=10,
        spread=kind.endswith("-1f"),
    )  # fmt: skip


def w2_specs(scale: Scale) -> list[list[str]]:
    rng = random.Random(7)
    names = [f"trades:S{c:03d}USDT" for c in range(scale.w2_channels)]
    weights = [1 / (c + 1) for c in range(scale.w2_channels)]  # Zipf popularity
    specs = []
    for _ in range(scale.w2_clients):
        want = rng.randint(5, min(20, scale.w2_channels))
        chosen: set[str] = set()
        while len(chosen) < want:
            chosen.update(rng.choices(names, weights, k=want - len(chosen)))
        specs.append(sorted(chosen))
    return specs


def w2(kind: str, workers: Workers, scale: Scale) -> dict[str, Any]:
    """10,000 clients over 200 channels with skewed popularity, 5-20 channels each."""
    specs = w2_specs(scale)
    per_channel = Counter(channel for spec in specs for channel in spec)
    subs_per_msg = [per_channel[f"trades:S{c:03d}USDT"] for c in range(scale.w2_channels)]
    return _ramp_workload(
        Server(kind), workers, scale, specs, scale.w2_rates, channels=scale.w2_channels,
        subs_per_msg=subs_per_msg, sample_every=20,
    )  # fmt: skip


def w3(kind: str, workers: Workers, scale: Scale) -> dict[str, Any]:
    """Idle connections, 1k/5k/10k/19k: RSS per connection."""
    server = Server(kind)
    levels = []
    try:
        have = 0
        for level in scale.w3_levels:
            specs = [[f"price:S{(have + k) % 200:03d}USDT"] for k in range(level - have)]
            have += workers.connect(server.url, specs, sample_every=0)
            time.sleep(1.0)
            rss = server.rss()
            per = (rss - server.base_rss) / have
            levels.append({"connections": have, "rss": rss, "per_conn": per})
            log(
                f"    {kind:10s} {have:6d} idle connections  RSS {rss / 2**20:7.1f} MiB  {per / 1024:6.1f} KiB/conn"
            )
        return {"levels": levels, "base_rss": server.base_rss}
    finally:
        workers.close()
        server.stop()


def w4(kind: str, workers: Workers, scale: Scale) -> dict[str, Any]:
    """5% of clients stop reading: fast clients' p99 against a run without, and RSS over time."""
    out: dict[str, Any] = {}
    n = scale.w4_clients
    for label, stall in (("clean", frozenset()), ("stalled", frozenset(range(0, n, 20)))):
        server = Server(kind)
        try:
            specs = [["trades:S000USDT"]] * n
            workers.connect(server.url, specs, sample_every=5, stall=stall)
            fast = n - len(stall)
            server.cmd(cmd="feed", rate=scale.w4_rate, channels=1, kind="trade")
            time.sleep(scale.warmup)
            workers.reset()
            series = []
            t0 = time.monotonic()
            cpu0, pub0 = server.cpu(), server.cmd(cmd="stats")["published"]
            while (t := time.monotonic() - t0) < scale.w4_seconds:
                series.append((round(t, 2), server.rss()))
                time.sleep(0.25)
            res = workers.collect()
            elapsed = time.monotonic() - t0
            cpu1, stats = server.cpu(), server.cmd(cmd="stats")
            server.cmd(cmd="feed", rate=0, channels=1)
            lat = [v / 1000 for v in res["lat"]]
            third = series[len(series) // 3][1] if series else 0
            out[label] = {
                "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "p999": pct(lat, 0.999),
                "delivered_rate": res["frames"] / elapsed,
                "ratio": res["frames"] / max(1, (stats["published"] - pub0) * fast),
                "cpu_us": (cpu1 - cpu0) * 1e6 / max(1, res["frames"]),
                "rss_series": series, "rss_growth_after_warmup": series[-1][1] - third if series else 0,
                "closed": len(res["closed"]), "slow": stats.get("slow"),
            }  # fmt: skip
            r = out[label]
            log(
                f"    {kind:10s} {label:8s} fast p99 {r['p99'] or 0:.1f} ms  RSS +{r['rss_growth_after_warmup'] / 2**20:.1f}"
                f" MiB after warm-up  closed {r['closed']}"
            )
        finally:
            workers.close()
            server.stop()
    clean, stalled = out["clean"]["p99"], out["stalled"]["p99"]
    out["p99_ratio"] = stalled / clean if clean and stalled else None
    return out


def w5(kind: str, workers: Workers, scale: Scale) -> dict[str, Any]:
    """A burst of 1,000 updates in 10 ms to the clients of one latest-value channel."""
    server = Server(kind)
    try:
        n = workers.connect(server.url, [["price:S000USDT"]] * scale.w5_clients, sample_every=0)
        time.sleep(0.3)
        workers.reset()
        cpu0 = server.cpu()
        start = server.cmd(cmd="burst", n=1000, ms=10, kind="price")["start_us"] / 1e6
        drain(workers)
        res = workers.collect()
        cpu1 = server.cpu()
        drains = [(t - start) * 1000 for t in res["last"]]
        out = {
            "clients": n, "delivered": res["frames"], "offered": 1000 * n,
            "drain_max_ms": max(drains) if drains else None, "drain_p99_ms": pct(drains, 0.99),
            "drain_p50_ms": pct(drains, 0.5), "cpu_ms": (cpu1 - cpu0) * 1000,
        }  # fmt: skip
        log(
            f"    {kind:10s} burst: {res['frames']} deliveries of {1000 * n} offered, drained in "
            f"{out['drain_max_ms'] or 0:.1f} ms (p50 {out['drain_p50_ms'] or 0:.1f})"
        )
        return out
    finally:
        workers.close()
        server.stop()


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7}
"""Per workload, its function, run once per server."""
TOGETHER = {"W1P": w1_paired}
"""Workloads that run their servers side by side (:mod:`bench.paired`)."""
ORDER = ("W1", "W1P", "W2", "W3", "W4", "W5", "W6", "W7")


# -- main ----------------------------------------------------------------------------


def ensure_node_peer() -> bool:
    node_dir = HERE / "peers" / "node"
    if (node_dir / "node_modules" / "ws").is_dir():
        return True
    try:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=node_dir, check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"node peer unavailable: {exc}")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    parser.add_argument(
        "--only", default=os.environ.get("BENCH_ONLY", ",".join(ORDER)),
        help="workloads to run, e.g. W6,W7 (books and resume, tickwire only)",
    )  # fmt: skip
    parser.add_argument("--servers", default=os.environ.get("BENCH_SERVERS", ",".join(SERVERS)))
    parser.add_argument("--out", default=os.environ.get("BENCH_OUT", str(HERE)), help="where RESULTS.md goes")
    parser.add_argument("--note", default=os.environ.get("BENCH_NOTE", ""), help="a line for RESULTS.md")
    parser.add_argument(
        "--profile", action="store_true", default=os.environ.get("BENCH_PROFILE") == "1",
        help="also sample tickwire and the floor with py-spy at W1 50k (PROFILE.md)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # asyncio treats any non-empty PYTHONASYNCIODEBUG (the Makefile exports "0") as debug mode,
    # which slows every loop several-fold: the processes measured here run without it
    os.environ.pop("PYTHONASYNCIODEBUG", None)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # node inherits it
    scale = Scale.make(args.quick)
    servers = [s for s in args.servers.split(",") if s]
    if "node" in servers and not ensure_node_peer():
        servers.remove("node")
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    from .report import environment, write_results

    env = environment(scale, args.note)
    results: dict[str, Any] = {}
    workers = Workers(scale.workers)
    started = time.monotonic()
    try:
        for name in only:
            log(f"{name}: {(WORKLOADS.get(name) or TOGETHER[name]).__doc__}")
            kinds = [k for k in servers if name not in SKIP.get(k, ())]
            if name in TICKWIRE_ONLY:
                kinds = [k for k in kinds if k == "tickwire"]
            if name == "W1" and "tickwire" in kinds:
                kinds.insert(kinds.index("tickwire") + 1, "tickwire-1f")
            if name in TOGETHER:
                results[name] = TOGETHER[name](kinds, workers, scale)
            else:
                results[name] = {kind: WORKLOADS[name](kind, workers, scale) for kind in kinds}
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "results.partial.json").write_text(json.dumps(results))
        if args.profile:
            from .pyspy import profile_servers

            kinds = [k for k in ("tickwire", "floor") if k in servers]
            profile_servers(workers, Path(args.out), kinds, scale.w1_clients, quick=scale.quick)
    finally:
        workers.exit()
    env["duration_s"] = round(time.monotonic() - started, 1)
    env["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"env": env, "results": results}, indent=1))
    write_results(out, env, results)
    log(f"wrote {out / 'RESULTS.md'} in {env['duration_s']} s")
    return 0
