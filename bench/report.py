"""RESULTS.md and the PNG plots, from the measurements of :mod:`bench.run`."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .paired import paired_section
from .sections import w6_section, w7_section
from .targets import evaluate, step_at


__all__ = ["environment", "write_results"]

HERE = Path(__file__).resolve().parent


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment(scale: Any, note: str) -> dict[str, Any]:
    def v(pkg: str) -> str:
        try:
            return version(pkg)
        except Exception:
            return "-"

    try:
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        node = "-"
    ws_pkg = HERE / "peers" / "node" / "node_modules" / "ws" / "package.json"
    ws_version = json.loads(ws_pkg.read_text())["version"] if ws_pkg.exists() else "-"
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} cores, {int(mem) // 1024} MiB RAM, {platform.system()} "
        f"{platform.release()}",
        "python": sys.version.split()[0],
        "versions": {
            "tickwire": v("tickwire"),
            "aiohttp": v("aiohttp"),
            "uvloop": v("uvloop"),
            "msgspec": v("msgspec"),
            "websockets": v("websockets"),
            "picows": v("picows"),
            "node": node,
            "ws": ws_version,
        },
        "quick": scale.quick,
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "note": note,
    }


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def _targets_section(results: dict[str, Any], env: dict[str, Any]) -> list[str]:
    scale = (
        "" if not env.get("quick") else " QUICK scale: figures at the quick client counts, not the issue's."
    )
    lines = ["## Targets (issue 12)", "",
             "Each figure of tickwire beside its reference from the same run at the same offered rate",
             f"(the floor peer, or tickwire's own clean run in W4).{scale}", "",
             "| target | tickwire | reference | compared | result |", "|---|---:|---:|---:|---|"]  # fmt: skip
    for t in evaluate(results):
        verdict = t.verdict if t.met is not False else f"**{t.verdict}**"
        lines.append(f"| {t.name} | {t.tickwire} | {t.reference} | {t.compared} | {verdict} |")
    return [*lines, ""]


def write_results(out: Path, env: dict[str, Any], results: dict[str, Any]) -> None:
    lines = [
        "# tickwire fan-out benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); the numbers below come from one run.",
        "",
        f"- date: {env['date']}",
        f"- machine: {env['machine']}",
        f"- load average at start / end: {' '.join(env['loadavg_start'])} / {' '.join(env.get('loadavg_end', []))}",
        f"- Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"- scale: {'QUICK (smoke scale, not the issue workloads)' if env['quick'] else 'full'}; "
        f"run took {env.get('duration_s', '?')} s",
    ]
    if env.get("note"):
        lines.append(f"- note: {env['note']}")
    lines += ["", "Servers: **tickwire** (coalesced writes, the default), **tickwire-1f** (the feed yields to",
              "the loop after each message, so every write carries one frame), **floor** (aiohttp handshake, then",
              "per message the JSON and frame built once and one `transport.write` per subscriber: no queue,",
              "no backpressure, no conflation; `bench/floor.py`), **websockets** (peer a: `websockets.broadcast`,",
              "uvloop, no compression), **node** (peer b: `ws`, JSON-encoded per client).",
              ""]  # fmt: skip
    if "W1" in results:
        lines += _ramp_section("W1: one hot channel, rate ramp to saturation", results["W1"])
    if results.get("W1P"):
        lines += paired_section(results["W1P"])
    if "W2" in results:
        lines += _ramp_section("W2: skewed popularity over many channels", results["W2"])
    if "W3" in results:
        lines += ["## W3: idle connections, memory", "", "| server | connections | RSS MiB | KiB per connection |",
                  "|---|---:|---:|---:|"]  # fmt: skip
        for kind, r in results["W3"].items():
            for lv in r["levels"]:
                lines.append(
                    f"| {kind} | {lv['connections']:,} | {lv['rss'] / 2**20:.1f} | {lv['per_conn'] / 1024:.1f} |"
                )
        lines.append("")
    if "W4" in results:
        lines += ["## W4: 5% of clients stop reading", "",
                  "| server | run | fast p50 ms | fast p99 ms | p99.9 ms | delivered/s | CPU us/upd | RSS growth after warm-up MiB | closed clients |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for kind, r in results["W4"].items():
            for label in ("clean", "stalled"):
                x = r[label]
                lines.append(
                    f"| {kind} | {label} | {_f(x['p50'])} | {_f(x['p99'])} | {_f(x['p999'])} | {_f(x['delivered_rate'], 0)} "
                    f"| {_f(x['cpu_us'], 2)} | {x['rss_growth_after_warmup'] / 2**20:.1f} | {x['closed']} |"
                )
        lines.append("")
    if "W5" in results:
        lines += ["## W5: burst of 1,000 updates in 10 ms (latest-value channel)", "",
                  "| server | clients | delivered | offered | drained (max) ms | p99 ms | p50 ms | CPU ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for kind, r in results["W5"].items():
            lines.append(
                f"| {kind} | {r['clients']:,} | {r['delivered']:,} | {r['offered']:,} | {_f(r['drain_max_ms'])} "
                f"| {_f(r['drain_p99_ms'])} | {_f(r['drain_p50_ms'])} | {_f(r['cpu_ms'], 0)} |"
            )
        lines.append("")
    if "W6" in results and "tickwire" in results["W6"]:
        lines += w6_section(results["W6"]["tickwire"])
    if "W7" in results and "tickwire" in results["W7"]:
        lines += w7_section(results["W7"]["tickwire"])
    lines += _targets_section(results, env)
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in _plots(out, results)), ""]
    analysis = out / "ANALYSIS.md"
    if analysis.exists():
        lines += [analysis.read_text()]
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")


def _ramp_section(title: str, runs: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", "",
             "Per offered rate, every server side by side; CPU and p99 also against the floor at the same rate.", "",
             "| msg/s | offered/s | server | delivered/s | delivered/offered | CPU us/upd | CPU vs floor | p50 ms "
             "| p99 ms | p99 vs floor | p99.9 ms |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    kinds = sorted(runs, key=lambda k: k != "floor")  # the floor first, then the order of the run
    rates = sorted({s.get("rate") or s["offered_rate"] for r in runs.values() for s in r["steps"]})
    for rate in rates:
        floor = step_at(runs.get("floor"), rate)
        for kind in kinds:
            s = step_at(runs[kind], rate)
            if s is None:
                continue  # this server's ramp stopped at a lower rate (saturated)
            vs_cpu = _ratio(s["cpu_us"], floor["cpu_us"]) if floor and kind != "floor" else ""
            vs_p99 = ""
            if floor and kind != "floor" and s["p99"] is not None and floor["p99"] is not None:
                vs_p99 = f"{s['p99'] - floor['p99']:+.1f}"
            lines.append(
                f"| {rate:g} | {s['offered_rate']:,.0f} | {kind} | {s['delivered_rate']:,.0f} | {s['ratio']:.0%} "
                f"| {_f(s['cpu_us'], 2)} | {vs_cpu} | {_f(s['p50'])} | {_f(s['p99'])} | {vs_p99} | {_f(s['p999'])} |"
            )
    lines += ["", "| server | max delivered/s | vs floor | vs websockets | vs node | CPU us/upd at max "
              "| p99 ms at half saturation |",
              "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    floor_max = runs.get("floor", {}).get("max_delivered")
    ws = runs.get("websockets", {}).get("max_delivered")
    node = runs.get("node", {}).get("max_delivered")
    for kind in kinds:
        r = runs[kind]
        m = r["max_delivered"]
        sat = "" if r["saturated"] else " (not saturated)"
        lines.append(
            f"| {kind} | {m:,.0f}{sat} | {_ratio(m, floor_max)} | {_ratio(m, ws)} | {_ratio(m, node)} "
            f"| {_f(r['cpu_us_at_max'], 2)} "
            f"| {_f(r['half']['p99'])} |"
        )
    return [*lines, ""]


def _plots(out: Path, results: dict[str, Any]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    for name in ("W1", "W2"):
        if name not in results:
            continue
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        for kind, r in results[name].items():
            xs = [s["offered_rate"] for s in r["steps"]]
            a.plot(xs, [s["delivered_rate"] for s in r["steps"]], marker="o", label=kind)
            b.plot(xs, [s["p99"] or 0 for s in r["steps"]], marker="o", label=kind)
        a.set(xlabel="offered deliveries/s", ylabel="delivered/s", title=f"{name} throughput")
        b.set(
            xlabel="offered deliveries/s", ylabel="p99 latency ms", title=f"{name} p99 latency", yscale="log"
        )
        a.legend()
        b.legend()
        fig.tight_layout()
        fig.savefig(out / f"{name.lower()}.png", dpi=80)
        plt.close(fig)
        made.append(f"{name.lower()}.png")
    if "W3" in results:
        fig, ax = plt.subplots(figsize=(6, 4))
        for kind, r in results["W3"].items():
            ax.plot([lv["connections"] for lv in r["levels"]], [lv["per_conn"] / 1024 for lv in r["levels"]],
                    marker="o", label=kind)  # fmt: skip
        ax.set(xlabel="idle connections", ylabel="RSS KiB per connection", title="W3 memory per connection")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "w3.png", dpi=80)
        plt.close(fig)
        made.append("w3.png")
    if "W4" in results:
        fig, ax = plt.subplots(figsize=(6, 4))
        for kind, r in results["W4"].items():
            series = r["stalled"]["rss_series"]
            ax.plot([t for t, _ in series], [v / 2**20 for _, v in series], label=kind)
        ax.set(xlabel="s", ylabel="server RSS MiB", title="W4 RSS with 5% stalled clients")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "w4.png", dpi=80)
        plt.close(fig)
        made.append("w4.png")
    return made
