"""The benchmark harness runs end to end at smoke scale (``python -m bench --quick``).

It checks that the harness, the load generator and the tickwire server
process work together and write their results; it asserts no timing target
(those live in bench/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(60)
def test_bench_quick_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_QUICK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "W1,W5", "--servers", "tickwire", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "results.json").read_text())
    w1 = data["results"]["W1"]
    assert set(w1) == {"tickwire", "tickwire-1f"}
    for run in w1.values():
        assert run["clients"] == 100
        assert run["max_delivered"] > 0 and run["steps"][0]["ratio"] > 0.5
        assert run["half"]["samples"] > 0
    w5 = data["results"]["W5"]["tickwire"]
    # the burst went to a latest-value channel: conflated, so far fewer frames than offered
    assert 0 < w5["delivered"] < w5["offered"]
    assert "| tickwire |" in (tmp_path / "RESULTS.md").read_text()
