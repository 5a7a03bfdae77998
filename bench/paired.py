"""W1P: W1 at 50k deliveries/s, tickwire and the floor in alternating steps (the issue 12 targets).

One W1 ramp step per server measures CPU per delivery over 2 s, and two
such steps of the same code land 0.1-0.3x apart on this 2-core machine
(a step can meet a busier second than its neighbour: the clients share
the cores). The targets at moderate load compare two servers, so W1P
measures them side by side: both servers up, 1,000 clients connected to
each, and the feed runs on one server at a time, alternating (ABBA) for
several rounds. Each round gives one CPU ratio and one p99 difference
against the floor's step next to it; the targets read their medians, and
the spread says how far one step can be trusted.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from .loadgen import Workers
    from .run import Scale

__all__ = ["paired_section", "w1_paired"]

RATE = 50  # messages/s on the hot channel: 50k deliveries/s with 1,000 clients
ROUNDS = 6
SECONDS = 3.0


def w1_paired(kinds: list[str], workers: Workers, scale: Scale) -> dict[str, Any]:
    """W1 at 50 msg/s: tickwire and the floor, both connected, fed in alternating steps."""
    from .run import Server, drain, fmt_step, log, measure  # run imports this module

    pair = [k for k in ("floor", "tickwire") if k in kinds]
    if len(pair) < 2:
        return {}
    rounds = 2 if scale.quick else ROUNDS
    servers = {kind: Server(kind) for kind in pair}
    steps: dict[str, list[dict[str, Any]]] = {kind: [] for kind in pair}
    try:
        for server in servers.values():
            workers.connect(server.url, [["trades:S000USDT"]] * scale.w1_clients, sample_every=10)
        time.sleep(0.5)
        for r in range(rounds):
            for kind in pair if r % 2 == 0 else pair[::-1]:  # ABBA: neither always goes first
                step = measure(
                    servers[kind], workers, scale, rate=RATE, channels=1, subs_per_msg=scale.w1_clients,
                    seconds=SECONDS,
                )  # fmt: skip
                log(f"    round {r + 1} {kind:10s} {fmt_step(step)}")
                steps[kind].append(step.row())
                drain(workers)
    finally:
        workers.close()
        for server in servers.values():
            server.stop()
    return {"rate": RATE, "clients": scale.w1_clients, "seconds": SECONDS, "steps": steps, **summarise(steps)}


def summarise(steps: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per round, tickwire's CPU over the floor's and its p99 minus the floor's; their medians."""
    ratios, overs = [], []
    for tw, fl in zip(steps.get("tickwire", []), steps.get("floor", []), strict=False):
        if tw["cpu_us"] and fl["cpu_us"]:
            ratios.append(tw["cpu_us"] / fl["cpu_us"])
        if tw["p99"] is not None and fl["p99"] is not None:
            overs.append(tw["p99"] - fl["p99"])
    return {
        "cpu_ratios": ratios,
        "p99_over": overs,
        "cpu_ratio": statistics.median(ratios) if ratios else None,
        "p99_over_median": statistics.median(overs) if overs else None,
        "cpu_us": {
            k: statistics.median(s["cpu_us"] for s in v if s["cpu_us"]) for k, v in steps.items() if v
        },
        "p99": {
            k: statistics.median(s["p99"] for s in v if s["p99"] is not None) for k, v in steps.items() if v
        },
    }


def paired_section(result: dict[str, Any]) -> list[str]:
    if not result:
        return []
    clients = result["clients"]
    lines = [f"## W1P: W1 at {result['rate'] * clients:,} deliveries/s, tickwire and the floor in alternating steps",
             "",
             f"Both servers connected ({clients:,} clients each); the feed runs on one at a time for "
             f"{result['seconds']:g} s, ABBA.",
             "Per round: tickwire's CPU per delivery over the floor's, and its p99 minus the floor's.", "",
             "| round | floor CPU us | tickwire CPU us | ratio | floor p99 ms | tickwire p99 ms | difference ms |",
             "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    steps = result["steps"]
    for i, (fl, tw) in enumerate(zip(steps["floor"], steps["tickwire"], strict=False), 1):
        ratio = tw["cpu_us"] / fl["cpu_us"] if tw["cpu_us"] and fl["cpu_us"] else None
        over = tw["p99"] - fl["p99"] if tw["p99"] is not None and fl["p99"] is not None else None
        lines.append(
            f"| {i} | {_f(fl['cpu_us'], 2)} | {_f(tw['cpu_us'], 2)} | {_f(ratio, 2)}x | {_f(fl['p99'])} "
            f"| {_f(tw['p99'])} | {_f(over, 1, sign=True)} |"
        )
    ratios, overs = result["cpu_ratios"], result["p99_over"]
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}x" if ratios else "-"
    lines += [
        f"| **median** | {_f(result['cpu_us'].get('floor'), 2)} | {_f(result['cpu_us'].get('tickwire'), 2)} "
        f"| **{_f(result['cpu_ratio'], 2)}x** | {_f(result['p99'].get('floor'))} | {_f(result['p99'].get('tickwire'))} "
        f"| **{_f(result['p99_over_median'], 1, sign=True)}** |",
        "",
        f"Spread of the per-round CPU ratio: {spread}"
        + (f"; of the p99 difference: {min(overs):+.1f} to {max(overs):+.1f} ms." if overs else "."),
        "",
    ]
    return lines


def _f(value: float | None, digits: int = 1, *, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+,.{digits}f}" if sign else f"{value:,.{digits}f}"
