"""The targets of issue 12, evaluated on one run's measurements (``results.json``'s ``results``).

Each target compares tickwire with a reference measured in the same run at
the same offered rate: the floor peer (:mod:`bench.floor`), or tickwire's
own clean run (W4). Every target always yields a row; a figure the run did
not measure (a workload or server left out) reads ``not measured``.

W1 targets are taken at feed rates (messages/s on the hot channel) rather
than deliveries/s, so at full scale (1,000 clients) 50 and 100 messages/s
are the issue's 50k and 100k deliveries/s, and the quick scale evaluates the
same rows at its own client count. The two 50k targets read W1P's medians
over alternating rounds (:mod:`bench.paired`) when it ran, and the single
W1 ramp step otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


__all__ = ["TARGETS", "Target", "evaluate", "step_at"]

KIB = 1024
MIB = 2**20


@dataclass(frozen=True)
class Target:
    key: str  # stable id, e.g. "W1-50k-cpu"
    name: str  # the target as the issue states it
    tickwire: str  # tickwire's figure
    reference: str  # the figure it is compared with ("floor 8.1 us", "clean run 20 ms")
    compared: str  # ratio or difference
    verdict: str  # "met", "missed by X" or "not measured"

    @property
    def met(self) -> bool | None:
        return None if self.verdict == "not measured" else self.verdict == "met"


def step_at(run: dict[str, Any] | None, rate: float) -> dict[str, Any] | None:
    """The ramp step of ``run`` at feed rate ``rate`` (messages/s), if it ran."""
    steps: list[dict[str, Any]] = (run or {}).get("steps", [])
    return next((s for s in steps if abs(_rate(s) - rate) < 1e-6), None)


def _rate(step: dict[str, Any]) -> float:
    # results written before the steps carried their nominal rate: offered deliveries/s stands in
    rate: float = step.get("rate") or step["offered_rate"]
    return rate


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f} ms"


def _unmeasured(key: str, name: str, why: str = "-") -> Target:
    return Target(key, name, "-", why, "-", "not measured")


def _verdict(ok: bool, by: str) -> str:
    return "met" if ok else f"missed by {by}"


def _at_50k(results: dict[str, Any], rate: float, metric: str) -> tuple[float, float, float, str] | None:
    """tickwire's and the floor's ``metric`` (``cpu_us`` or ``p99``) at W1 50k, and how they
    compare (ratio of CPU, difference of p99): W1P's medians when it ran, with a label saying
    so, else W1's one ramp step; None when neither measured it."""
    paired = results.get("W1P") or {}
    rounds = paired.get("cpu_ratios" if metric == "cpu_us" else "p99_over") or []
    if rounds:
        medians = paired[metric]
        compared = paired["cpu_ratio" if metric == "cpu_us" else "p99_over_median"]
        return medians["tickwire"], medians["floor"], compared, f" (median of {len(rounds)})"
    r = results.get("W1", {})
    tw, fl = step_at(r.get("tickwire"), rate), step_at(r.get("floor"), rate)
    if (
        not tw
        or not fl
        or tw[metric] is None
        or fl[metric] is None
        or (metric == "cpu_us" and not fl[metric])
    ):
        return None
    mine, floor = tw[metric], fl[metric]
    return mine, floor, mine / floor if metric == "cpu_us" else mine - floor, ""


def _w1_cpu(results: dict[str, Any], rate: float) -> Target:
    key, name = "W1-50k-cpu", "W1 50k deliveries/s: tickwire CPU per delivery <= 1.2x the floor's"
    got = _at_50k(results, rate, "cpu_us")
    if got is None:
        return _unmeasured(key, name)
    mine, floor, ratio, how = got
    return Target(
        key, name, f"{mine:.2f} us{how}", f"floor {floor:.2f} us", f"{ratio:.2f}x",
        _verdict(ratio <= 1.2, f"{ratio - 1.2:.2f}x"),
    )  # fmt: skip


def _w1_p99(results: dict[str, Any], rate: float) -> Target:
    key, name = "W1-50k-p99", "W1 50k deliveries/s: tickwire p99 <= the floor's p99 + 5 ms"
    got = _at_50k(results, rate, "p99")
    if got is None:
        return _unmeasured(key, name)
    mine, floor, over, how = got
    return Target(
        key, name, f"{_ms(mine)}{how}", f"floor {_ms(floor)}", f"{over:+.1f} ms" + (" (median)" if how else ""),
        _verdict(over <= 5, f"{over - 5:.1f} ms"),
    )  # fmt: skip


def _w1_100k_delivered(r: dict[str, Any], rate: float) -> Target:
    key, name = "W1-100k-delivered", "W1 100k deliveries/s: >= 99 % delivered"
    tw, fl = step_at(r.get("tickwire"), rate), step_at(r.get("floor"), rate)
    if not tw:
        return _unmeasured(key, name)
    ref = f"floor {fl['ratio']:.1%}" if fl else "-"
    return Target(
        key, name, f"{tw['ratio']:.1%}", ref, "-", _verdict(tw["ratio"] >= 0.99, f"{0.99 - tw['ratio']:.1%}")
    )


def _w1_100k_p99(r: dict[str, Any], rate: float) -> Target:
    key, name = "W1-100k-p99", "W1 100k deliveries/s: p99 < 50 ms"
    tw, fl = step_at(r.get("tickwire"), rate), step_at(r.get("floor"), rate)
    if not tw or tw["p99"] is None:
        return _unmeasured(key, name)
    ref = f"floor {_ms(fl['p99'])}" if fl else "-"
    return Target(key, name, _ms(tw["p99"]), ref, "-", _verdict(tw["p99"] < 50, f"{tw['p99'] - 50:.1f} ms"))


def _w1_saturation(r: dict[str, Any]) -> Target:
    key, name = "W1-saturation", "W1 coalesced saturation >= 1 M deliveries/s (kept)"
    tw, fl = r.get("tickwire"), r.get("floor")
    if not tw:
        return _unmeasured(key, name)
    m = tw["max_delivered"]
    ref = f"floor {fl['max_delivered']:,.0f}/s" if fl else "-"
    ratio = f"{m / fl['max_delivered']:.2f}x" if fl and fl["max_delivered"] else "-"
    return Target(key, name, f"{m:,.0f}/s", ref, ratio, _verdict(m >= 1e6, f"{1e6 - m:,.0f}/s"))


def _w2_half_floor(r: dict[str, Any]) -> Target:
    key, name = "W2-p99", "W2 at half the floor's saturation: tickwire p99 within 1.2x the floor's"
    fl, tw = r.get("floor"), r.get("tickwire")
    if not fl or not tw or not fl["steps"]:
        return _unmeasured(key, name)
    half = fl["max_delivered"] / 2
    at = min(fl["steps"], key=lambda s: abs(s["offered_rate"] - half))
    rate = _rate(at)
    mine = step_at(tw, rate)
    where = f"at {rate:g} msg/s ({at['offered_rate']:,.0f}/s offered)"
    if mine is None:
        return Target(
            key, name, "saturated below", f"floor {_ms(at['p99'])} {where}", "-", "missed by saturation"
        )
    if mine["p99"] is None or at["p99"] is None:
        return _unmeasured(key, name, f"no latency samples {where}")
    ratio = mine["p99"] / at["p99"]
    return Target(
        key, name, _ms(mine["p99"]), f"floor {_ms(at['p99'])} {where}", f"{ratio:.2f}x",
        _verdict(ratio <= 1.2, f"{ratio - 1.2:.2f}x"),
    )  # fmt: skip


def _w3_idle(r: dict[str, Any]) -> Target:
    key, name = "W3-idle", "W3 <= 12 KiB per idle connection at 10k"
    tw = r.get("tickwire")
    levels = [lv for lv in (tw or {}).get("levels", []) if lv["connections"] >= 10_000]
    if not levels:
        return _unmeasured(key, name)
    lv = min(levels, key=lambda lv: lv["connections"])
    ws = r.get("websockets")
    ref = "-"
    if ws:
        near = min(ws["levels"], key=lambda x: abs(x["connections"] - lv["connections"]))
        ref = f"websockets {near['per_conn'] / KIB:.1f} KiB"
    per = lv["per_conn"] / KIB
    return Target(
        key, f"{name} ({lv['connections']:,} connections)", f"{per:.1f} KiB", ref, "-",
        _verdict(per <= 12, f"{per - 12:.1f} KiB"),
    )  # fmt: skip


def _w4_p99(r: dict[str, Any]) -> Target:
    key, name = "W4-p99", "W4 fast clients' p99 within 1.2x of the clean run"
    tw = r.get("tickwire")
    if not tw or not tw.get("p99_ratio"):
        return _unmeasured(key, name)
    ratio = tw["p99_ratio"]
    fl = r.get("floor")
    ref = f"clean run {_ms(tw['clean']['p99'])}"
    if fl and fl.get("p99_ratio"):
        ref += f" (floor {fl['p99_ratio']:.2f}x)"
    return Target(
        key,
        name,
        _ms(tw["stalled"]["p99"]),
        ref,
        f"{ratio:.2f}x",
        _verdict(ratio <= 1.2, f"{ratio - 1.2:.2f}x"),
    )


def _w4_rss(r: dict[str, Any]) -> Target:
    key, name = "W4-rss", "W4 RSS flat with stalled clients (< 5 MiB growth after warm-up)"
    tw = r.get("tickwire")
    if not tw:
        return _unmeasured(key, name)
    growth = tw["stalled"]["rss_growth_after_warmup"] / MIB
    fl = r.get("floor")
    ref = f"floor {fl['stalled']['rss_growth_after_warmup'] / MIB:+.1f} MiB" if fl else "-"
    return Target(key, name, f"{growth:+.1f} MiB", ref, "-", _verdict(growth < 5, f"{growth - 5:.1f} MiB"))


def _w5_drain(r: dict[str, Any]) -> Target:
    key, name = "W5-drain", "W5 1,000-update burst to 1,000 clients drained in < 50 ms"
    tw = r.get("tickwire")
    if not tw or tw["drain_max_ms"] is None:
        return _unmeasured(key, name)
    fl = r.get("floor")
    ref = f"floor {_ms(fl['drain_max_ms'])}" if fl else "-"
    d = tw["drain_max_ms"]
    return Target(key, name, _ms(d), ref, "-", _verdict(d < 50, f"{d - 50:.1f} ms"))


TARGETS: list[tuple[str, Callable[[dict[str, Any]], Target]]] = [
    ("*", lambda r: _w1_cpu(r, 50)),
    ("*", lambda r: _w1_p99(r, 50)),
    ("W1", lambda r: _w1_100k_delivered(r, 100)),
    ("W1", lambda r: _w1_100k_p99(r, 100)),
    ("W1", _w1_saturation),
    ("W2", _w2_half_floor),
    ("W3", _w3_idle),
    ("W4", _w4_p99),
    ("W4", _w4_rss),
    ("W5", _w5_drain),
]
"""(workload, evaluator) per target, in the issue's order; ``*``: the evaluator reads every workload."""


def evaluate(results: dict[str, Any]) -> list[Target]:
    """One :class:`Target` per entry of :data:`TARGETS`, measured or not."""
    out = []
    for workload, judge in TARGETS:
        target = judge(results if workload == "*" else results.get(workload, {}))
        out.append(target)
    return out
