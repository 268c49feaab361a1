"""The growth benchmark runs end to end at a tiny size and prints its table and plans
(no timing assertions: speed is measured in benchmarks/, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_growth_bench_quick_prints_the_table_and_plans() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "growth_bench.py"), "--quick"],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.splitlines()[0].split()[:4] == ["measure", "median", "min", "max"]
    for label in (
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
    assert "FAILED:" not in out and "skipped" not in out, out
    assert "query plans (4,000 workflows):" in out
    assert "retention delete events: SEARCH events USING INDEX events_by_workflow" in out
