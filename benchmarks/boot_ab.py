"""A/B of the boot with in-flight workflows: two source trees, interleaved run by run.

    .venv/bin/python benchmarks/boot_ab.py --a /tmp/main-tree --b . [--n 10000] [--repeat 5]
        [--kind sync|async]

Builds one database of --n in-flight workflows (bench.py's boot workload: RUNNING
with 5 checkpoints each, as a crash leaves them) with this tree's store, then boots
a fresh node on a copy of it, alternately from tree A and tree B, each boot in its
own Python process (``PYTHONPATH`` = that tree; bench.py's ``edge_boot`` of that
tree; tree A needs this tree's benchmarks/bench_app.py for --kind async). Prints, per
tree, the median (min, max) of the seconds to ready, to all resumed (every
workflow's function entered after its claim) and to all parked again, the process
CPU seconds of the boot, the ratio B/A, and the load average before and after.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

CHILD = (
    "import json, logging, sys\n"
    "from pathlib import Path\n"
    "sys.path.insert(0, sys.argv[1] + '/benchmarks')\n"
    "logging.basicConfig(level=logging.ERROR)\n"
    "from bench import edge_boot\n"
    "import time\n"
    "c0 = time.process_time()\n"
    "out = edge_boot(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] or None)\n"
    "out['cpu'] = time.process_time() - c0\n"
    "print(json.dumps(out))\n"
)


def boot(tree: Path, template: Path, n: int, workers: int, where: str | None) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(template), str(n),
                          str(workers), where or ""], env=env, capture_output=True, text=True,
                         check=True, cwd=tree)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="source tree A (the baseline)")
    ap.add_argument("--b", default=str(HERE.parent), help="source tree B (default: this one)")
    ap.add_argument("--n", type=int, default=10_000, help="in-flight workflows")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5, help="boots per tree")
    ap.add_argument("--dir", default=None, help="directory for the databases")
    ap.add_argument("--kind", choices=("sync", "async"), default="sync",
                    help="the in-flight workflows: bench_app's parked or aparked")
    args = ap.parse_args()
    from bench import build_inflight

    trees = {"A": Path(args.a).resolve(), "B": Path(args.b).resolve()}
    load0 = os.getloadavg()
    res: dict[str, dict[str, list[float]]] = {k: {} for k in trees}
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        template = Path(d) / "template.db"
        if args.kind == "async":
            build_inflight(template, args.n, "aparked", "awork")
        else:
            build_inflight(template, args.n)
        for i in range(args.repeat):
            for k in (("A", "B") if i % 2 == 0 else ("B", "A")):
                got = boot(trees[k], template, args.n, args.workers, args.dir)
                for key, v in got.items():
                    res[k].setdefault(key, []).append(v)
                print(f"run {i + 1} {k}: " + ", ".join(f"{key} {v:.2f} s"
                                                        for key, v in got.items()),
                      file=sys.stderr)
    load1 = os.getloadavg()
    print(f"boot, {args.n:,} in-flight ({args.kind}), {args.workers} workers, "
          f"{args.repeat} boots per tree")
    print(f"A = {trees['A']}\nB = {trees['B']}")
    print(f"{'measure':<10} {'A median (min..max)':>24} {'B median (min..max)':>24} {'B/A':>6}")
    for key in res["A"]:
        a, b = res["A"][key], res["B"][key]
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{key:<10} {ma:>8.2f} ({min(a):.2f}..{max(a):.2f}) "
              f"{mb:>8.2f} ({min(b):.2f}..{max(b):.2f}) {mb / ma:>6.2f}")
    before, after = " ".join(f"{x:.2f}" for x in load0), " ".join(f"{x:.2f}" for x in load1)
    print(f"load average before: {before}, after: {after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
