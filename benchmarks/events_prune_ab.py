"""A/B of migration 4's events_by_workflow index: retention on a file full of events.

    .venv/bin/python benchmarks/events_prune_ab.py [N]     # N workflows (default 100,000)

Builds a file of N ``evented`` workflows (copies of a real node's rows, each with one
consumed event: growth_data.fill), then deletes the oldest 10% with the store's prune
batches, on two copies of the file, the index dropped (the schema before migration 4)
and present, two interleaved rounds. Prints one line per run, with the plan of a
workflow's event list.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import growth_data  # noqa: E402

from edge.store import Store, lifecycle  # noqa: E402


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    tpl = growth_data.templates()
    ev = tpl["evented"]
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        s = Store.open(d / "src.db", "normal", now)
        s.write(lambda c: c.execute("PRAGMA cache_size = -1000000"))
        growth_data.fill(s, {"ten": ev, "evented": ev, "fails": ev}, 0, n, now)
        growth_data.checkpoint(s)
        s.close()
        for rnd in range(2):
            for drop in (True, False):
                w = d / f"w{rnd}{drop}.db"
                shutil.copy(d / "src.db", w)
                if drop:
                    c = sqlite3.connect(w)
                    c.execute("DROP INDEX events_by_workflow")
                    c.close()
                s = Store.open(w, "full")
                try:
                    with s.read() as c:
                        plan = " | ".join(str(r[3]) for r in c.execute(
                            "EXPLAIN QUERY PLAN SELECT id FROM events WHERE workflow_id = ? "
                            "ORDER BY id", ("x",)))
                        events = c.execute("SELECT count(*) FROM events").fetchone()[0]
                    cutoff = now - growth_data.SPAN + 3 * 86400
                    t0, total = time.perf_counter(), 0
                    while (k := lifecycle.prune_batch(s, cutoff)) > 0:
                        total += k
                    dt = time.perf_counter() - t0
                finally:
                    s.close()
                print(f"round {rnd + 1}, {events:,} events, index "
                      f"{'dropped' if drop else 'present'}: {total:,} deleted in {dt:.2f} s = "
                      f"{total / dt:,.0f} workflows/s; event list plan: {plan}", flush=True)
                for p in (w, Path(f"{w}-wal"), Path(f"{w}-shm")):
                    p.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
