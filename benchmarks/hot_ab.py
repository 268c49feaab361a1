"""Interleaved A/B of the hot path (issue 11, item 1) between source trees.

    .venv/bin/python benchmarks/hot_ab.py --tree A=/tmp/ab-main --tree B=. --rounds 3

Each measurement runs in a fresh child process whose ``sys.path`` starts with the
tree's root and its ``benchmarks/`` (so it imports that tree's ``edge`` and
``bench``), one after another, trees alternating round by round so that a burst of
load on this shared machine hits both alike. Rows: the raw commit floor (FULL), the
sequential 10-step workflow (FULL, us/step and CPU us/step, and its ratio to the floor
of the same round; ``--paired``: floor and sequential in alternating slices of one
process) and the concurrent 1000x10 (FULL) at the given worker counts
(steps/s, CPU us/step, writes/commit). The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys
sys.path[:0] = [{root!r}, {root!r} + "/benchmarks"]
import logging
logging.basicConfig(level=logging.ERROR)
import bench
kind, arg = {kind!r}, {arg!r}
if kind == "floor":
    print(json.dumps({{"us": bench.floor("FULL", 2000, 1, None) * 1e6}}))
elif kind == "pair":
    # Floor and sequential in short alternating slices of one process, so the disk's
    # drift (other tenants' fsyncs) hits both alike: the ratio is of the sums.
    import tempfile, time, edge
    from bench_app import make_app
    app, _ = make_app()
    fl = sq = cpu = 0.0
    with tempfile.TemporaryDirectory() as d, edge.Node(app, data_dir=d, workers=1):
        app.start("ten", id="warm").result(timeout=60)
        for k in range(int(arg)):
            fl += bench.floor("FULL", 100, 1, None) * 100
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(10):
                app.start("ten", id=f"p{{k}}-{{i}}").result(timeout=60)
            sq += time.perf_counter() - t0
            cpu += time.process_time() - c0
    n = int(arg)
    print(json.dumps({{"floor": fl / (100 * n) * 1e6, "us": sq / (100 * n) * 1e6,
                      "cpu": cpu / (100 * n) * 1e6}}))
elif kind == "seq":
    per, cpu = bench.edge_sequential(int(arg), "full", None)
    print(json.dumps({{"us": per * 1e6, "cpu": cpu * 1e6}}))
elif kind == "starters":
    # The same 1000x10 at the default 64 workers, started from `arg` threads at once (as
    # concurrent HTTP clients would) instead of one loop, where each start waits for its
    # own commit before the next begins.
    import tempfile, threading, time, edge
    from bench_app import make_app
    app, _ = make_app()
    with tempfile.TemporaryDirectory() as d, edge.Node(app, data_dir=d, workers=64) as node:
        ends = []
        done = threading.Event()
        orig = node.rt.on_finished
        def on_finished(*a, **k):
            ends.append(time.perf_counter())
            orig(*a, **k)
            if len(ends) == 1000:
                done.set()
        node.rt.on_finished = on_finished
        k = int(arg)
        def starter(j):
            for i in range(j, 1000, k):
                app.start("ten", id=f"c{{i}}")
        threads = [threading.Thread(target=starter, args=(j,)) for j in range(k)]
        b0, w0 = node.store.commit_stats
        c0, t0 = time.process_time(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.wait(600)
        dt, cpu = max(ends) - t0, time.process_time() - c0
        b1, w1 = node.store.commit_stats
    print(json.dumps({{"sps": 10000 / dt, "cpu": cpu / 10000 * 1e6,
                      "wpc": (w1 - w0) / max(1, b1 - b0)}}))
else:
    r = bench.edge_concurrent(1000, int(arg), None)
    print(json.dumps({{"sps": r["steps_per_s"], "cpu": r["cpu_per_step"] * 1e6,
                      "wpc": r["writes_per_commit"]}}))
"""


def child(root: str, kind: str, arg: str) -> dict[str, float]:
    code = CHILD.format(root=str(Path(root).resolve()), kind=kind, arg=arg)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{root} {kind} {arg}: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", action="append", required=True, help="NAME=PATH (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", default="64,8", help="concurrent worker counts")
    ap.add_argument("--seq", type=int, default=200, help="sequential workflows per run")
    ap.add_argument("--no-seq", action="store_true")
    ap.add_argument("--no-conc", action="store_true")
    ap.add_argument("--starters", type=int, default=0,
                    help="also the concurrent run started from N threads at once")
    ap.add_argument("--paired", type=int, default=0,
                    help="also N alternating slices of floor (100 commits) and sequential "
                         "(10 workflows) in one process")
    args = ap.parse_args()
    trees = [t.split("=", 1) for t in args.tree]
    workers = [w for w in args.workers.split(",") if w]
    res: dict[tuple[str, str], list[float]] = {}

    def add(name: str, key: str, v: float) -> None:
        res.setdefault((name, key), []).append(v)

    load0 = os.getloadavg()
    for r in range(args.rounds):
        order = trees if r % 2 == 0 else trees[::-1]
        for name, root in order:
            if args.paired:
                p = child(root, "pair", str(args.paired))
                add(name, "paired: floor FULL us/commit", p["floor"])
                add(name, "paired: sequential FULL us/step", p["us"])
                add(name, "paired: sequential FULL CPU us/step", p["cpu"])
                add(name, "paired: sequential FULL / floor (same slices)", p["us"] / p["floor"])
            if not args.no_seq:
                fl = child(root, "floor", "")["us"]
                s = child(root, "seq", str(args.seq))
                add(name, "floor FULL us/commit", fl)
                add(name, "sequential FULL us/step", s["us"])
                add(name, "sequential FULL CPU us/step", s["cpu"])
                add(name, "sequential FULL / floor (same round)", s["us"] / fl)
            if not args.no_conc:
                for w in workers:
                    c = child(root, "conc", w)
                    add(name, f"concurrent 1000x10, {w} w, steps/s", c["sps"])
                    add(name, f"concurrent 1000x10, {w} w, CPU us/step", c["cpu"])
                    add(name, f"concurrent 1000x10, {w} w, writes/commit", c["wpc"])
            if args.starters:
                c = child(root, "starters", str(args.starters))
                add(name, f"concurrent 1000x10, 64 w, {args.starters} starters, steps/s", c["sps"])
                add(name, f"concurrent 1000x10, 64 w, {args.starters} starters, CPU us/step",
                    c["cpu"])
                add(name, f"concurrent 1000x10, 64 w, {args.starters} starters, writes/commit",
                    c["wpc"])
            print(f"round {r + 1} {name} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr,
                  flush=True)
    load1 = os.getloadavg()
    keys = list(dict.fromkeys(k for _, k in res))
    names = [n for n, _ in trees]
    print(f"load average before {load0[0]:.2f} / after {load1[0]:.2f}, {args.rounds} rounds")
    print("| measure | " + " | ".join(f"{n} median (min..max)" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for k in keys:
        cells = []
        for n in names:
            vs = res.get((n, k), [])
            if not vs:
                cells.append("")
                continue
            d = 2 if k.endswith(("(same round)", "(same slices)")) else 1 if "writes" in k else 0
            cells.append(f"{statistics.median(vs):,.{d}f} ({min(vs):,.{d}f}..{max(vs):,.{d}f})")
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
