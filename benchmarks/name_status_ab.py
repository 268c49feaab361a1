"""A/B of migration 4's workflows_by_name_status index: what it buys and what it costs.

    .venv/bin/python benchmarks/name_status_ab.py [N] [ROUNDS]   # default 100,000 and 3

- read: ``list_workflows(status="FAILED", workflow="ten")`` (0 rows: the worst case) on a
  file of N workflows (growth_data.fill), the index dropped and present;
- write: steps/s of 1,000 10-step workflows with 8 workers on a fresh file, the index
  dropped and present, ROUNDS interleaved rounds (the index is updated at every status
  change: insert, claim, finish).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import growth_bench  # noqa: E402
import growth_data  # noqa: E402

from edge.store import Store, listing  # noqa: E402

DROP = "DROP INDEX workflows_by_name_status"


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        s = Store.open(d / "src.db", "normal", now)
        s.write(lambda c: c.execute("PRAGMA cache_size = -1000000"))
        growth_data.fill(s, growth_data.templates(), 0, n, now)
        growth_data.checkpoint(s)
        s.close()
        for drop in (True, False):
            w = d / f"r{drop}.db"
            shutil.copy(d / "src.db", w)
            s = Store.open(w, "full")
            try:
                if drop:
                    s.write(lambda c: c.execute(DROP))
                plan = " | ".join(listing.list_plan(s, status="FAILED", workflow="ten"))
                times = []
                for _ in range(10):
                    t0 = time.perf_counter()
                    listing.list_workflows(s, status="FAILED", workflow="ten", limit=50)
                    times.append(time.perf_counter() - t0)
            finally:
                s.close()
            print(f"read, {n:,} wf, index {'dropped' if drop else 'present'}: median "
                  f"{statistics.median(times) * 1e3:,.1f} ms (min {min(times) * 1e3:,.1f}); "
                  f"plan: {plan}", flush=True)
        res: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(rounds):
            for drop in (True, False):
                with tempfile.TemporaryDirectory() as dd:
                    if drop:
                        s = Store.open(Path(dd) / "edge.db", "full")
                        s.write(lambda c: c.execute(DROP))
                        s.close()
                    res[drop].append(growth_bench.concurrent(Path(dd), 1000, 8))
        for drop in (True, False):
            v = res[drop]
            print(f"write, 1000x10, 8 workers, index {'dropped' if drop else 'present'}: "
                  f"median {statistics.median(v):,.0f} steps/s ({min(v):,.0f}..{max(v):,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
