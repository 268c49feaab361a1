"""edge benchmark: steps/s against the raw SQLite commit floor, measured in the same run.

    .venv/bin/python benchmarks/bench.py            # full size
    .venv/bin/python benchmarks/bench.py --quick    # tiny, for CI smoke

Each row is the median of --repeat runs with min and max. The floor is one
raw SQLite commit of a checkpoint-sized row on the same disk, with the same
pragmas edge uses. Nothing here is asserted: these machines are shared and
noisy; the table is the result.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge  # noqa: E402

ROW = '{"value": 12345, "receipt": "ch_0123456789abcdef", "ok": true}'


def floor(sync: str, n: int) -> float:
    """Seconds per raw commit of one checkpoint-sized row."""
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(os.path.join(d, "f.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute("CREATE TABLE t (wid TEXT, seq INTEGER, kind TEXT, name TEXT, output TEXT, "
                     "PRIMARY KEY (wid, seq)) WITHOUT ROWID")
        t0 = time.perf_counter()
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, ?, 'step', 'work', ?)", ("w", i, ROW))
            conn.execute("COMMIT")
        dt = time.perf_counter() - t0
        conn.close()
    return dt / n


def make_app() -> tuple[edge.App, Callable[..., object]]:
    app = edge.App("bench")

    @app.step(name="work")
    def work(i: int) -> dict:
        return {"value": i, "receipt": "ch_0123456789abcdef", "ok": True}

    @app.workflow(name="ten")
    def ten() -> int:
        for i in range(10):
            work(i)
        return 10

    return app, ten


def edge_sequential(n_workflows: int, durability: str) -> float:
    """Seconds per step, 10-step workflows one after another."""
    app, ten = make_app()
    with tempfile.TemporaryDirectory() as d, \
            edge.Node(app, data_dir=d, workers=1, durability=durability):
        t0 = time.perf_counter()
        for i in range(n_workflows):
            app.start(ten, id=f"s{i}").result(timeout=60)
        dt = time.perf_counter() - t0
    return dt / (n_workflows * 10)


def edge_concurrent(n_workflows: int, workers: int) -> tuple[float, float, float]:
    """(steps/s, p50 latency, p99 latency) for n 10-step workflows started at once."""
    app, ten = make_app()
    with tempfile.TemporaryDirectory() as d, edge.Node(app, data_dir=d, workers=workers) as node:
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}
        done = threading.Event()
        orig = node.on_finished

        def on_finished(workflow: str, wid: str, status: str, parent: str | None) -> None:
            ends[wid] = time.perf_counter()
            orig(workflow, wid, status, parent)
            if len(ends) == n_workflows:
                done.set()

        node.on_finished = on_finished  # type: ignore[method-assign]
        t0 = time.perf_counter()
        for i in range(n_workflows):
            starts[f"c{i}"] = time.perf_counter()
            app.start(ten, id=f"c{i}")
        done.wait(300)
        dt = time.perf_counter() - t0
        lat = sorted(ends[k] - starts[k] for k in ends)
    return (n_workflows * 10 / dt, lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1])


def summarize(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rep = 1 if args.quick else args.repeat
    n_floor = 200 if args.quick else 3000
    n_seq = 10 if args.quick else 300
    n_conc = 50 if args.quick else 1000

    rows: list[tuple[str, str, str]] = []
    fl_full = summarize([floor("FULL", n_floor) for _ in range(rep)])
    fl_norm = summarize([floor("NORMAL", n_floor) for _ in range(rep)])
    rows.append(("floor: raw commit, synchronous=FULL", f"{1 / fl_full[0]:,.0f} commits/s",
                 f"{fl_full[0] * 1e6:.0f} us (min {fl_full[1] * 1e6:.0f}, max {fl_full[2] * 1e6:.0f})"))
    rows.append(("floor: raw commit, synchronous=NORMAL", f"{1 / fl_norm[0]:,.0f} commits/s",
                 f"{fl_norm[0] * 1e6:.0f} us (min {fl_norm[1] * 1e6:.0f}, max {fl_norm[2] * 1e6:.0f})"))
    for dur, fl in (("full", fl_full), ("normal", fl_norm)):
        seq = summarize([edge_sequential(n_seq, dur) for _ in range(rep)])
        rows.append((f"edge sequential 10-step, {dur}", f"{1 / seq[0]:,.0f} steps/s",
                     f"{seq[0] * 1e6:.0f} us/step (min {seq[1] * 1e6:.0f}, max {seq[2] * 1e6:.0f}); "
                     f"{seq[0] / fl[0]:.2f}x floor"))
    for workers in (8, 32):
        res = [edge_concurrent(n_conc, workers) for _ in range(rep)]
        sps = summarize([r[0] for r in res])
        p50 = statistics.median(r[1] for r in res)
        p99 = statistics.median(r[2] for r in res)
        rows.append((f"edge concurrent {n_conc}x10 steps, {workers} workers",
                     f"{sps[0]:,.0f} steps/s",
                     f"min {sps[1]:,.0f} max {sps[2]:,.0f}; p50 {p50 * 1e3:.0f} ms, "
                     f"p99 {p99 * 1e3:.0f} ms per workflow"))
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'rate':>18}  detail")
    for name, rate, detail in rows:
        print(f"{name:<{w}}  {rate:>18}  {detail}")


if __name__ == "__main__":
    main()
