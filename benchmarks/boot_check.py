"""Cost of the boot-time structural check on a database of a given size.

    .venv/bin/python benchmarks/boot_check.py [--mb 100] [--repeat 3]

Builds an edge database through the real store (schema, indexes, checksum triggers)
of about --mb megabytes (workflows with 10 checkpoints each), then times, on the
same file in the same run: a plain read of its bytes (the floor), opening it,
``PRAGMA quick_check``, ``PRAGMA integrity_check`` (what the boot runs after an
unclean shutdown: ``store/integrity.py``) and ``store.verify.verify_checksums`` (what runs
after a restore). Each row: median over --repeat runs (min, max), and the ratio to
the plain read. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.store import OpRow, Store  # noqa: E402
from edge.store.integrity import structure_problem  # noqa: E402
from edge.store.sql import UPSERT_OP  # noqa: E402
from edge.store.verify import verify_checksums  # noqa: E402


def build(db: Path, mb: float, noise: bool = False) -> int:
    """``noise``: each checkpoint's payload random (what compresses like real data would
    not: the replica's LTX files are LZ4-compressed pages)."""
    store = Store.open(db, "normal")
    fixed = '{"blob": "' + "x" * 600 + '"}'

    def payload() -> str:
        return '{"blob": "' + os.urandom(300).hex() + '"}' if noise else fixed
    n = 0
    try:
        # The main file's size (SQLite's automatic checkpoints move the WAL into it).
        while db.stat().st_size < mb * 1e6:
            def batch(conn: object, start: int = n) -> None:
                for i in range(start, start + 200):
                    wid = f"wf-{i:08d}"
                    conn.execute(  # type: ignore[attr-defined]
                        "INSERT INTO workflows (id, workflow, status, input, created_at, "
                        "updated_at, checksum) VALUES (?, 'bench', 'SUCCEEDED', ?, ?, ?, 0)",
                        (wid, payload(), float(i), float(i)))
                    for seq in range(1, 11):
                        op = OpRow(wid, seq, "step", f"s{seq}", "SUCCEEDED", 1, payload(), None,
                                   float(i), float(i))
                        conn.execute(UPSERT_OP, (op.workflow_id, op.seq, op.kind,  # type: ignore
                                                 op.name, op.status, op.attempts, op.output,
                                                 op.error, op.started_at, op.finished_at,
                                                 op.digest()))
            store.write(batch)
            n += 200
    finally:
        store.close(clean=True)
    return n


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), min(runs), max(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "edge.db"
        n = build(db, args.mb)
        size = db.stat().st_size / 1e6

        def read_bytes() -> None:
            with open(db, "rb") as f:  # the benchmark's own file, not a node's
                while f.read(1 << 20):
                    pass

        def open_store() -> None:
            Store.inspect(db).close()

        def verify() -> None:
            s = Store.inspect(db)
            try:
                verify_checksums(s)
            finally:
                s.close()

        rows = [
            ("plain read of the file (floor)", read_bytes),
            ("open read-only (no check)", open_store),
            ("PRAGMA quick_check", lambda: structure_problem(db, quick=True)),
            ("PRAGMA integrity_check (boot check)", lambda: structure_problem(db)),
            ("verify_checksums (every row)", verify),
        ]
        print(f"database: {size:.1f} MB, {n} workflows x 10 checkpoints, "
              f"cpu count {os.cpu_count()}")
        print(f"{'measure':<40} {'median s':>9} {'min':>8} {'max':>8} {'x floor':>8}")
        floor = None
        for label, fn in rows:
            med, lo, hi = timed(fn, args.repeat)
            floor = floor or med
            print(f"{label:<40} {med:>9.3f} {lo:>8.3f} {hi:>8.3f} {med / floor:>8.1f}")


if __name__ == "__main__":
    main()
