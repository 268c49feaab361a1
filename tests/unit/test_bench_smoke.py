"""The benchmark runs end to end at a tiny size and prints its table, the growth rows
and query plans included, and the targets (no timing assertions: speed is measured in
benchmarks/, never asserted)."""

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
        "edge concurrent 50x10, 64 workers",
        "edge concurrent 50x10, 64 workers, started from 8 threads",
        "edge concurrent 50x10, 64 workers, started with app.start_many",
        "edge sequential full / floor FULL",
        "boot, 200 in-flight, 8 workers",
        "boot, 200 in-flight, 64 workers",
        "edge run RSS, no replica",
        "DBOS Transact",
        # how cost grows (growth_bench.measure, in the same run)
        "database bytes per finished 10-step workflow",
        "database bytes per step (operations table)",
        "GET /v1/workflows tag site=s7 (2%), 4,000 wf",
        "GET /v1/status (counts), 4,000 wf",
        "edge list --data-dir --status FAILED, 4,000 wf",
        "concurrent 50x10, 8 workers, empty file",
        "boot, 100 in flight, ~4 MB file",
        "store side of resuming 500: claim_many+load_ops_many",
        "edge prune (Verbs.prune), 4,000 wf file",
        "rows verified (checksums) at the first size",
    ):
        assert label in out, f"missing row {label!r}:\n{out}"
    assert "FAILED sections" not in out + proc.stderr and "skipped (" not in out.replace(
        "skipped (--quick)", ""), out
    assert "query plans of every list filter" in out
    assert "retention delete events: SEARCH events USING INDEX events_by_workflow" in out
    targets = out[out.index("targets (issue 11, synchronous=FULL):"):]
    for target in ("sequential step <= 1.5x floor", "concurrent >= 10,000 steps/s",
                   "started with app.start_many", "all resumed < 2 s",
                   "every list filter served by an index"):
        line = next(ln for ln in targets.splitlines() if target in ln)
        assert line.endswith(("-> met", "-> MISSED", ": met")) or "MISSED" in line, line
