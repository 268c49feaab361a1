"""The async benchmark runs end to end at a tiny size and prints its table (no timing
assertions: the figures are the result, not a pass/fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_async_bench_quick_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "async_bench.py"), "--quick"],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.splitlines()[0].split()[:4] == ["measure", "median", "min", "max"]
    for label in (
        "I/O 50 x 0.2 s: async step, asyncio.sleep",
        "I/O 50 x 0.2 s: async step, asyncio.sleep, started by app.start one by one",
        "I/O 50 x 0.2 s: async step, HTTP (aiohttp)",
        "I/O 50 x 0.2 s: async step, HTTP (asyncio streams)",
        "I/O 50 x 0.2 s: sync step, time.sleep, default workers",
        "I/O 50 x 0.2 s: sync step, time.sleep, 32 workers",
        "I/O 50 x 0.2 s: sync step, HTTP (urllib), 32 workers",
        "I/O 50 x 0.2 s: async workflow, sync step (time.sleep), default workers",
        "CPU-light sequential 20x10, async",
        "CPU-light concurrent 50x10, sync",
        "CPU-light conc: async / sync",
        "CPU-light concurrent 50x10, sync, 32 workers",
        "boot, 200 in-flight, 32 workers",
        "MB RSS over idle",
    ):
        assert label in out, f"missing row {label!r}:\n{out}"
    assert "FAILED" not in out and "skipped" not in out, out
    assert "targets (issue 10" in out
