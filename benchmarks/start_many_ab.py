"""How the 1000x10 concurrent row is started: one loop of app.start, 8 threads of it, or
one app.start_many. Interleaved, each run in a fresh child process.

    .venv/bin/python benchmarks/start_many_ab.py [--rounds 5] [--workers 64] [--n 1000]

Each round runs the three ways one after another (bench.py's ``edge_concurrent`` at
synchronous=FULL), so a burst of load on this shared machine hits all three alike.
Prints per way the median (min..max) of steps/s, p50 latency, CPU us/step and
writes/commit, the ratio of each median to the one-loop median, and the load average
before and after. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import json, logging, sys
sys.path[:0] = [{root!r}, {here!r}]
logging.basicConfig(level=logging.ERROR)
import bench
way, n, workers = {way!r}, {n}, {workers}
res = bench.edge_concurrent(n, workers, None, starters=8 if way == "8 threads" else 1,
                            many=way == "start_many")
print(json.dumps(res))
"""

WAYS = ("one loop", "8 threads", "start_many")


def run(way: str, n: int, workers: int) -> dict[str, float]:
    code = CHILD.format(root=str(HERE.parent), here=str(HERE), way=way, n=n, workers=workers)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    load0 = os.getloadavg()
    got: dict[str, list[dict[str, float]]] = {w: [] for w in WAYS}
    for r in range(args.rounds):
        for way in WAYS:
            got[way].append(run(way, args.n, args.workers))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{w} {got[w][-1]['steps_per_s']:,.0f}" for w in WAYS), file=sys.stderr)
    load1 = os.getloadavg()
    base = statistics.median(x["steps_per_s"] for x in got["one loop"])
    print(f"| {args.n}x10, {args.workers} workers, started by | steps/s | x one loop | "
          "p50 ms | CPU us/step | writes/commit |")
    print("|---|---:|---:|---:|---:|---:|")

    def cell(vals: list[float], fmt: str) -> str:
        return (f"{fmt.format(statistics.median(vals))} "
                f"({fmt.format(min(vals))}..{fmt.format(max(vals))})")

    for way in WAYS:
        rs = got[way]
        sps = [x["steps_per_s"] for x in rs]
        print(f"| {way} | {cell(sps, '{:,.0f}')} | {statistics.median(sps) / base:.2f} | "
              f"{cell([x['p50'] * 1e3 for x in rs], '{:,.0f}')} | "
              f"{cell([x['cpu_per_step'] * 1e6 for x in rs], '{:.0f}')} | "
              f"{cell([x['writes_per_commit'] for x in rs], '{:.1f}')} |")
    print(f"\nload average {load0[0]:.2f} before, {load1[0]:.2f} after; {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
