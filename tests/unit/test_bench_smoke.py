"""The benchmark runs end to end at a tiny size and prints its table (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--no-dbos"],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.splitlines()[0].split()[:4] == ["measure", "median", "min", "max"]
    for label in (
        "floor: raw commit, 1 row, synchronous=FULL",
        "floor: raw commit, 1 row, synchronous=NORMAL",
        "edge sequential 10-step, full",
        "edge concurrent 50x10, 8 workers",
        "edge concurrent 50x10, 32 workers",
        "edge sequential full / floor FULL",
        "boot, 200 in-flight, 8 workers",
        "edge run RSS, no replica",
        "DBOS Transact",
    ):
        assert label in out, f"missing row {label!r}:\n{out}"
    assert "FAILED" not in out, out
    assert "targets (DESIGN.md section 7" in out
