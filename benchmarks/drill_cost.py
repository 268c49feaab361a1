"""Cost of one restore drill (edge/replication/drill.py) for a database of a given size.

    .venv/bin/python benchmarks/drill_cost.py [--mb 100] [--repeat 3]

Builds an edge database through the real store (benchmarks/boot_check.py's builder:
workflows with 10 checkpoints each, random payloads so that the replica's LZ4 does not
shrink them unrealistically), replicates it once with the real litestream to a
file:// replica (a full snapshot: what a drill of a healed epoch, or of any epoch after
compaction, reads), then runs the drill a node runs (restore under ``nice`` into
scratch space, integrity_check, every row checksum, the comparison with the live
database) --repeat times. Each row: the median over the runs of the wall time, the CPU
seconds of the drill's own process (the checks) and of litestream (its children),
and the bytes read from the replica. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from boot_check import build  # noqa: E402

from edge.replication import child_env, find_litestream, parse_replica_url  # noqa: E402
from edge.replication.drill import drill  # noqa: E402
from edge.store import Store  # noqa: E402


def cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-drill-bench-") as tmp:
        base = Path(tmp)
        db = base / "data" / "edge.db"
        db.parent.mkdir()
        t0 = time.monotonic()
        n = build(db, args.mb, noise=True)
        print(f"built {db.stat().st_size / 1e6:.0f} MB ({n} workflows) in "
              f"{time.monotonic() - t0:.0f} s", file=sys.stderr)
        target = parse_replica_url(f"file://{base / 'replica'}")
        cfg = base / "once.yml"
        cfg.write_text(json.dumps({"dbs": [{"path": str(db), "replica":
                                            target.litestream_replica_config(1, 1.0)}]}))
        subprocess.run([find_litestream(), "replicate", "-once", "-config", str(cfg),
                        "-no-expand-env"], check=True, capture_output=True,
                       env=child_env(target), timeout=3600)
        local = Store.open(db)
        rows = []
        try:
            for _ in range(args.repeat):
                self0, kids0 = cpu()
                res = drill(target, local=local, scratch=base / "scratch", nice=10,
                            timeout=3600)
                self1, kids1 = cpu()
                assert res.ok, res
                rows.append((res.seconds, self1 - self0, kids1 - kids0, res.bytes_read))
        finally:
            local.close()
    wall, mine, kids, read = (statistics.median(c) for c in zip(*rows, strict=True))
    size = f"{args.mb:g} MB"
    print("| database | wall s | CPU s (checks, Python) | CPU s (litestream) | "
          "bytes read from the replica |")
    print("|---|---|---|---|---|")
    print(f"| {size} | {wall:.2f} | {mine:.2f} | {kids:.2f} | {read / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
