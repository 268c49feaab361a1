"""The drill-cost benchmark runs end to end at a tiny size and prints its table row."""

from __future__ import annotations

from tests.unit.test_boot_check_bench import run_bench


def test_drill_cost_bench_prints_its_row() -> None:
    row = run_bench("drill_cost.py")[-1].strip("|").split("|")
    assert row[0].strip() == "1 MB" and float(row[1]) > 0
    assert float(row[4].split()[0]) > 0.5  # ~1 MB of random payloads read back
