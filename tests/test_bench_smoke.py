"""The benchmark harness runs end to end at smoke scale (``python -m bench --quick``).

It checks that the harness, the load generator, the tickwire and floor
server processes work together and write their results, including the
targets table; it asserts no timing target (those live in
bench/RESULTS.md). The target arithmetic is checked on hand-made results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.pyspy import summarise
from bench.targets import TARGETS, evaluate


ROOT = Path(__file__).resolve().parent.parent


def _bench(tmp_path: Path, *args: str, timeout: float = 80) -> None:
    env = {**os.environ, "BENCH_QUICK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


def _targets_rows(results_md: str) -> list[list[str]]:
    section = results_md.split("## Targets (issue 12)", 1)[1].split("\n\n")
    table = next(part for part in section if part.startswith("| target |"))
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


@pytest.mark.timeout(90)
def test_bench_quick_smoke(tmp_path: Path) -> None:
    _bench(tmp_path, "--only", "W1,W5", "--servers", "tickwire,floor")
    data = json.loads((tmp_path / "results.json").read_text())
    w1 = data["results"]["W1"]
    assert set(w1) == {"tickwire", "tickwire-1f", "floor"}
    for run in w1.values():
        assert run["clients"] == 100
        assert run["max_delivered"] > 0 and run["steps"][0]["ratio"] > 0.5
        # latency samples: the floor's frames carry the event time where the clients read it
        assert run["half"]["samples"] > 0
        assert [s["rate"] for s in run["steps"]][:2] == [50, 100]
    w5 = data["results"]["W5"]
    # the burst went to a latest-value channel: tickwire conflates, the floor writes every update
    assert 0 < w5["tickwire"]["delivered"] < w5["tickwire"]["offered"]
    assert w5["floor"]["delivered"] == w5["floor"]["offered"]

    text = (tmp_path / "RESULTS.md").read_text()
    assert "| 50 | 5,000 | floor |" in text and "| 50 | 5,000 | tickwire |" in text
    rows = _targets_rows(text)
    assert len(rows) == len(TARGETS)
    verdicts = {row[0]: row[-1] for row in rows}
    measured = [name for name, v in verdicts.items() if v != "not measured"]
    # W1 and W5 ran with the floor beside tickwire: their rows are judged; W2-W4 did not run
    assert len(measured) == 6 and all(name.startswith(("W1", "W5")) for name in measured)
    for v in verdicts.values():
        assert v in ("met", "not measured") or v.startswith("**missed by ")


@pytest.mark.timeout(60)
@pytest.mark.skipif(
    shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists(),
    reason="py-spy (the bench dependency group) not installed",
)
def test_bench_profile_quick(tmp_path: Path) -> None:
    _bench(tmp_path, "--only", "", "--servers", "tickwire,floor", "--profile", timeout=50)
    text = (tmp_path / "PROFILE.md").read_text()
    tickwire, floor = text.split("## tickwire", 1)[1].split("## floor", 1)
    # each server's own code shows among its busiest Python frames
    assert "tickwire/" in tickwire and "| 1 |" in tickwire
    assert "bench/floor.py" in floor and "| 1 |" in floor


def _step(rate: float, offered: float, delivered: float, cpu: float, p99: float) -> dict[str, Any]:
    return {
        "rate": rate, "offered_rate": offered, "delivered_rate": delivered, "ratio": delivered / offered,
        "cpu_us": cpu, "p50": p99 / 2, "p99": p99, "p999": p99,
    }  # fmt: skip


def _run(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"steps": list(steps), "max_delivered": max(s["delivered_rate"] for s in steps)}


def test_targets_compare_tickwire_with_the_floor_at_the_same_rate() -> None:
    results = {
        "W1": {
            "floor": _run(_step(50, 50e3, 50e3, 10.0, 8.0), _step(100, 100e3, 90e3, 9.0, 30.0)),
            "tickwire": _run(
                _step(50, 50e3, 50e3, 11.0, 20.0),
                _step(100, 100e3, 99.5e3, 8.0, 60.0),
                _step(1600, 1.6e6, 1.1e6, 0.7, 900.0),
            ),
        },
        "W2": {
            # floor saturates at 80k/s: half is 40k, nearest step is 50 msg/s (31k offered)
            "floor": _run(
                _step(50, 31e3, 31e3, 12.0, 90.0),
                _step(100, 62e3, 62e3, 11.0, 95.0),
                _step(150, 93e3, 80e3, 10.0, 400.0),
            ),
            "tickwire": _run(_step(50, 31e3, 31e3, 12.0, 100.0), _step(100, 62e3, 62e3, 8.0, 500.0)),
        },
    }
    got = {t.key: t for t in evaluate(results)}
    assert [t.key for t in evaluate(results)] == list(got)  # one row per target, stable order
    assert len(got) == len(TARGETS)
    assert got["W1-50k-cpu"].verdict == "met" and got["W1-50k-cpu"].compared == "1.10x"
    assert got["W1-50k-p99"].verdict == "missed by 7.0 ms"
    assert got["W1-100k-delivered"].verdict == "met"
    assert got["W1-100k-p99"].verdict == "missed by 10.0 ms"
    assert got["W1-saturation"].verdict == "met"
    assert got["W2-p99"].verdict == "met" and got["W2-p99"].compared == "1.11x"
    assert "at 50 msg/s" in got["W2-p99"].reference
    for key in ("W3-idle", "W4-p99", "W4-rss", "W5-drain"):
        assert got[key].verdict == "not measured" and got[key].met is None


def test_w2_target_missed_when_tickwire_saturated_below_the_floors_half() -> None:
    results = {
        "W2": {
            "floor": _run(
                _step(50, 31e3, 31e3, 12.0, 90.0),
                _step(100, 62e3, 62e3, 11.0, 95.0),
                _step(150, 93e3, 93e3, 10.0, 99.0),
                _step(200, 124e3, 110e3, 9.0, 300.0),
            ),
            "tickwire": _run(_step(50, 31e3, 31e3, 12.0, 100.0)),
        },
    }
    (w2,) = [t for t in evaluate(results) if t.key == "W2-p99"]
    assert "at 100 msg/s" in w2.reference  # half of 110k is 55k: the 62k step
    assert w2.met is False and w2.verdict == "missed by saturation"


def test_profile_summary_self_and_total_with_and_without_native_frames() -> None:
    raw = "\n".join(
        [
            "main (a.py:1);loop (a.py:5);write (libc.so.6) 6",
            "main (a.py:1);loop (a.py:5) 3",
            "main (a.py:1);encode (b.py:9);Py_DECREF (object.h:538) 1",
        ]
    )
    every = summarise(raw)
    assert every.samples == 10
    assert every.self_counts[:2] == [("write (libc.so.6)", 6), ("loop (a.py:5)", 3)]
    assert every.total_counts["loop (a.py:5)"] == 9
    python = summarise(raw, python_only=True)
    assert python.self_counts == [("loop (a.py:5)", 9), ("encode (b.py:9)", 1)]
