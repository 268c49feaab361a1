"""DBOS Transact on SQLite, on the same workloads as bench.py; prints one JSON object.

Runs inside the separate virtual environment bench.py creates
(benchmarks/.venv-dbos, `pip install dbos==3.4.0`), never in edge's:

    benchmarks/.venv-dbos/bin/python benchmarks/dbos_bench.py sequential --workflows 300
    benchmarks/.venv-dbos/bin/python benchmarks/dbos_bench.py concurrent --workflows 1000 \
        --workers 8

One process per measurement (DBOS is a process-wide singleton), on a fresh
system database in a fresh temporary directory on the same disk as edge's.
Fairness:
- the SQLite system database is created with ``journal_mode=WAL`` before DBOS
  opens it (WAL is a property of the file, so every DBOS connection uses it);
  DBOS does not set ``synchronous``, so SQLite's default applies (reported as
  ``synchronous``: 2 = FULL, the same durability as edge's default);
- the queue polls every 10 ms (DBOS's default is 1 s) and ``get_result``
  polls every 10 ms (default 1 s);
- latencies come from DBOS's own ``workflow_status`` rows (``updated_at`` of
  the final status minus ``created_at``, milliseconds), so result polling
  does not inflate them; throughput ends at the last workflow's ``updated_at``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import tempfile
import time
from typing import Any


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["sequential", "concurrent", "idle"])
    ap.add_argument("--workflows", type=int, default=100)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--dir", default=None, help="parent directory of the temporary database")
    args = ap.parse_args()

    from dbos import DBOS, SetWorkflowID

    logging.getLogger("dbos").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        db = os.path.join(d, "dbos.sqlite")
        pre = sqlite3.connect(db)
        journal = pre.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        synchronous = pre.execute("PRAGMA synchronous").fetchone()[0]
        pre.close()

        DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{db}",
                     "log_level": "WARNING", "run_admin_server": False})  # type: ignore[typeddict-unknown-key]

        @DBOS.step()
        def work(i: int) -> dict[str, Any]:
            return {"value": i, "receipt": "ch_0123456789abcdef", "ok": True}

        @DBOS.workflow()
        def ten() -> int:
            for i in range(10):
                work(i)
            return 10

        DBOS.launch()
        out: dict[str, Any] = {"mode": args.mode, "journal_mode": journal,
                               "synchronous": synchronous,
                               "dbos_version": _version()}
        try:
            if args.mode == "idle":
                time.sleep(1.0)
                out["rss_kb"] = _rss_kb()
            elif args.mode == "sequential":
                ten()  # warm-up (first call compiles statements, creates the executor)
                c0, t0 = time.process_time(), time.perf_counter()
                for i in range(args.workflows):
                    with SetWorkflowID(f"s{i}"):
                        ten()
                dt = time.perf_counter() - t0
                out["seconds_per_step"] = dt / (args.workflows * 10)
                out["cpu_per_step"] = (time.process_time() - c0) / (args.workflows * 10)
            else:
                q = DBOS.register_queue("bench", worker_concurrency=args.workers,
                                        polling_interval_sec=0.01)
                t0_ms = time.time() * 1000
                c0, t0 = time.process_time(), time.perf_counter()
                handles = []
                for i in range(args.workflows):
                    with SetWorkflowID(f"c{i}"):
                        handles.append(q.enqueue(ten))
                for h in handles:
                    h.get_result(polling_interval_sec=0.01)
                wall = time.perf_counter() - t0
                cpu = time.process_time() - c0
                con = sqlite3.connect(db)
                rows = con.execute(
                    "SELECT created_at, updated_at, status FROM workflow_status "
                    "WHERE workflow_uuid LIKE 'c%'").fetchall()
                con.close()
                ok = [r for r in rows if r[2] == "SUCCESS"]
                lat = sorted((u - c) / 1000 for c, u, _ in ok)
                end_ms = max(u for _, u, _ in ok)
                span = (end_ms - t0_ms) / 1000
                out.update({
                    "succeeded": len(ok),
                    "steps_per_s": args.workflows * 10 / span,
                    "wall_steps_per_s": args.workflows * 10 / wall,
                    "cpu_per_step": cpu / (args.workflows * 10),
                    "p50": lat[len(lat) // 2],
                    "p99": lat[max(0, int(len(lat) * 0.99) - 1)],
                })
            out["rss_kb"] = out.get("rss_kb") or _rss_kb()
        finally:
            DBOS.destroy()
    print(json.dumps(out))


def _version() -> str:
    from importlib.metadata import version

    return version("dbos")


if __name__ == "__main__":
    main()
