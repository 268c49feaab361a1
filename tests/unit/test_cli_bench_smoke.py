"""benchmarks/cli_bench.py runs end to end (one run per row) and prints its table; no
timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_bench_prints_every_row() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cli_bench.py"), "--runs", "1"],
                         capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["measure", "median"]
    for label in ("bare interpreter", "import typer", "edge status", "edge status --json",
                  "edge list", "edge --help"):
        assert any(ln.startswith(label) for ln in lines), f"no row {label!r}:\n{res.stdout}"
