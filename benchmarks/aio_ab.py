"""Interleaved A/B of the async CPU-light rows: this tree against another checkout.

    git -C /work/main archive HEAD | tar -x -C /tmp/ab-main     # the baseline tree
    .venv/bin/python benchmarks/aio_ab.py --base /tmp/ab-main             # 5 rounds
    .venv/bin/python benchmarks/aio_ab.py --base /tmp/ab-main --quick     # 1 round, small

Each round runs async_bench.py's CPU-light child (a fresh process, default settings)
for every case (concurrent 1,000 x 10 steps and sequential 300 x 10, sync ``ten`` and
async ``aten``) once against the base tree and once against this tree, alternating
which goes first, so both see the same load (the box is shared). Steps/s, process CPU
per step and context switches per step; each tree's async/sync ratio per round, the
median over rounds, and this tree / the base. Nothing is asserted.
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
ROOT = HERE.parent
sys.path[:0] = [str(HERE)]

from bench import Table  # noqa: E402


def measure(tree: Path, kind: str, wf: str, n: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, str(tree / "benchmarks" / "async_bench.py"),
                           "--child", "--kind", kind, "--wf", wf, "--n", str(n)],
                          capture_output=True, text=True, timeout=900, cwd=tree, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{tree}: {kind} {wf} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, type=Path, help="the baseline tree (a checkout)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--conc", type=int, default=1000)
    p.add_argument("--seq", type=int, default=300)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.conc, args.seq = 1, 100, 20
    trees = {"base": args.base.resolve(), "this": ROOT}
    cases = [("conc", f"concurrent {args.conc:,}x10", args.conc),
             ("seq", f"sequential {args.seq:,}x10", args.seq)]
    t = Table()
    ratios: dict[tuple[str, str], list[float]] = {}
    load0 = os.getloadavg()
    for r in range(args.rounds):
        order = ["base", "this"] if r % 2 == 0 else ["this", "base"]
        for kind, label, n in cases:
            for wf in ("ten", "aten"):
                for name in order:
                    out = measure(trees[name], kind, wf, n)
                    row = f"{label}, {'async' if wf == 'aten' else 'sync'}, {name}"
                    t.row(f"{kind}.{wf}.{name}", row, "steps/s").add(out["steps_per_s"])
                    t.row(f"{kind}.{wf}.{name}.cpu", row, "CPU us/step").add(
                        out["cpu_us_per_step"])
                    t.row(f"{kind}.{wf}.{name}.sw", row, "switches/step", 1).add(
                        out["switches_per_step"])
            for name in ("base", "this"):
                a = t.rows[f"{kind}.aten.{name}"].values[-1]
                s = t.rows[f"{kind}.ten.{name}"].values[-1]
                ratios.setdefault((kind, name), []).append(a / s)
    for kind, label, _ in cases:
        for name in ("base", "this"):
            t.row(f"{kind}.ratio.{name}", f"{label}: async / sync, {name}", "ratio", 2,
                  "per round").values.extend(ratios[(kind, name)])
        for wf in ("aten", "ten"):
            for unit, suffix in (("steps/s", ""), ("CPU us/step", ".cpu")):
                this = statistics.median(t.rows[f"{kind}.{wf}.this{suffix}"].values)
                base = statistics.median(t.rows[f"{kind}.{wf}.base{suffix}"].values)
                t.row(f"{kind}.{wf}.x{suffix}",
                      f"{label}, {'async' if wf == 'aten' else 'sync'}: this / base "
                      f"({unit})", "ratio", 2).add(this / base)
    load1 = os.getloadavg()
    print(t.render(args.markdown))
    print(f"\n{args.rounds} rounds; load average {load0[0]:.1f} before, {load1[0]:.1f} after; "
          f"base {trees['base']}, this {trees['this']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
