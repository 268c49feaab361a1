"""The boot-check benchmark runs end to end at a tiny size and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str) -> list[str]:
    """Run ``benchmarks/<script>`` at 1 MB, once; its stdout lines (it must succeed)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--mb", "1", "--repeat", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_boot_check_bench_prints_its_table() -> None:
    lines = run_bench("boot_check.py")
    assert lines[1].split()[:2] == ["measure", "median"]
    labels = [ln[:40].strip() for ln in lines[2:]]
    assert labels == ["plain read of the file (floor)", "open read-only (no check)",
                      "PRAGMA quick_check", "PRAGMA integrity_check (boot check)",
                      "verify_checksums (every row)"]
