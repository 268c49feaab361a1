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
    for name, cells in rows.items():
        # Printed to 0.01 s: a boot of 40 can be ready in under 0.005 s, so only the
        # boot's CPU (the node's start included) is sure to show above zero.
        a_val, b_val = float(cells[1]), float(cells[3])
        assert a_val >= 0 and b_val >= 0, cells
        if name == "cpu":
            assert a_val > 0 and b_val > 0, cells
    assert lines[-1].startswith("load average before:")
