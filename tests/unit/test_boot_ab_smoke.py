"""The boot A/B benchmark runs end to end at a tiny size (both trees this one) and
prints its table: each measure with a median for A and B and their ratio."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_boot_ab_prints_its_table(kind: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "boot_ab.py"), "--a", str(ROOT),
         "--n", "40", "--repeat", "1", "--kind", kind], capture_output=True, text=True,
        timeout=180, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"boot, 40 in-flight ({kind})")
    rows = {ln.split()[0]: ln.split() for ln in lines[4:8]}
    assert list(rows) == ["ready", "claimed", "parked", "cpu"]
    for cells in rows.values():
        assert float(cells[1]) > 0 and float(cells[3]) > 0 and float(cells[5]) > 0
    assert lines[-1].startswith("load average before:")
