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


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


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
              "the loop after each message, so every write carries one frame), **websockets** (peer a:",
              "`websockets.broadcast`, uvloop, no compression), **node** (peer b: `ws`, JSON-encoded per client).",
              ""]  # fmt: skip
    targets: list[tuple[str, bool | None, str]] = []
    if "W1" in results:
        lines += _ramp_section("W1: one hot channel, rate ramp to saturation", results["W1"])
        r = results["W1"]
        tw, one, ws, node = (
            r.get(k, {}).get("max_delivered") for k in ("tickwire", "tickwire-1f", "websockets", "node")
        )
        if one and ws:
            targets.append(("W1 one frame per update >= 1x websockets", one >= ws, f"{one / ws:.2f}x"))
        if tw and ws:
            targets.append(("W1 coalesced >= 3x websockets", tw >= 3 * ws, f"{tw / ws:.2f}x"))
        if tw and node:
            targets.append(("W1 >= 5x node", tw >= 5 * node, f"{tw / node:.2f}x"))
        cpu = r.get("tickwire", {}).get("cpu_us_at_max")
        if cpu is not None:
            targets.append(("W1 CPU <= 2 us per delivered update (coalesced)", cpu <= 2.0, f"{cpu:.2f} us"))
        p99 = r.get("tickwire", {}).get("half", {}).get("p99")
        if p99 is not None:
            targets.append(("W1 p99 at half saturation < 20 ms", p99 < 20, f"{p99:.1f} ms"))
    if "W2" in results:
        lines += _ramp_section("W2: skewed popularity over many channels", results["W2"])
        p99 = results["W2"].get("tickwire", {}).get("half", {}).get("p99")
        if p99 is not None:
            targets.append(("W2 p99 at half saturation < 100 ms", p99 < 100, f"{p99:.1f} ms"))
    if "W3" in results:
        lines += ["## W3: idle connections, memory", "", "| server | connections | RSS MiB | KiB per connection |",
                  "|---|---:|---:|---:|"]  # fmt: skip
        for kind, r in results["W3"].items():
            for lv in r["levels"]:
                lines.append(
                    f"| {kind} | {lv['connections']:,} | {lv['rss'] / 2**20:.1f} | {lv['per_conn'] / 1024:.1f} |"
                )
        lines.append("")
        tw = results["W3"].get("tickwire")
        if tw:
            top = tw["levels"][-1]
            ok = top["per_conn"] <= 20 * 1024 if top["connections"] >= 10_000 else None
            targets.append((f"W3 <= 20 KB RSS per idle connection ({top['connections']:,} conns)", ok,
                            f"{top['per_conn'] / 1024:.1f} KiB"))  # fmt: skip
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
        tw = results["W4"].get("tickwire")
        if tw and tw.get("p99_ratio"):
            targets.append(("W4 fast clients' p99 within 1.2x of the clean run", tw["p99_ratio"] <= 1.2,
                            f"{tw['p99_ratio']:.2f}x"))  # fmt: skip
            growth = tw["stalled"]["rss_growth_after_warmup"] / 2**20
            targets.append(
                ("W4 gateway RSS flat after warm-up (< 5 MiB growth)", growth < 5, f"{growth:+.1f} MiB")
            )
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
        tw = results["W5"].get("tickwire")
        if tw and tw["drain_max_ms"] is not None:
            targets.append(
                ("W5 drained within 50 ms", tw["drain_max_ms"] <= 50, f"{tw['drain_max_ms']:.1f} ms")
            )
    lines += ["## Targets (issue 6)", "", "| target | result | measured |", "|---|---|---:|"]
    lines += [f"| {name} | {_check(ok)} | {value} |" for name, ok, value in targets]
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in _plots(out, results)), ""]
    analysis = out / "ANALYSIS.md"
    if analysis.exists():
        lines += [analysis.read_text()]
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")


def _ramp_section(title: str, runs: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", "",
             "| server | offered/s | delivered/s | delivered/offered | CPU us/upd | p50 ms | p99 ms | p99.9 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for kind, r in runs.items():
        for s in r["steps"]:
            lines.append(
                f"| {kind} | {s['offered_rate']:,.0f} | {s['delivered_rate']:,.0f} | {s['ratio']:.0%} | {_f(s['cpu_us'], 2)} "
                f"| {_f(s['p50'])} | {_f(s['p99'])} | {_f(s['p999'])} |"
            )
    lines += ["", "| server | max delivered/s | vs websockets | vs node | CPU us/upd at max | p99 ms at half saturation |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    ws = runs.get("websockets", {}).get("max_delivered")
    node = runs.get("node", {}).get("max_delivered")
    for kind, r in runs.items():
        m = r["max_delivered"]
        sat = "" if r["saturated"] else " (not saturated)"
        lines.append(
            f"| {kind} | {m:,.0f}{sat} | {_ratio(m, ws)} | {_ratio(m, node)} | {_f(r['cpu_us_at_max'], 2)} "
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
