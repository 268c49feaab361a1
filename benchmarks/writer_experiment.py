"""Experiment: a pipelined group-commit writer, A/B against edge's, in this process.

    .venv/bin/python benchmarks/writer_experiment.py [--rounds 3] [--workflows 1000]

Not part of edge: RESULTS.md cites it to show that the group-commit leader's
serial path is not what bounds concurrent throughput (a negative result).
``PipelinedWriter.run`` replaces ``GroupCommitWriter.run`` for the B runs
(monkeypatched, restored after): after a COMMIT, the leader opens the next
batch's transaction (BEGIN IMMEDIATE and its statements) *before* waking the
committed batch's waiters, then wakes them and COMMITs (fsyncs) while they
run. A waiter is still woken only after its own commit. When the leader's own
request is done and a transaction is open, it hands that open transaction to
the oldest waiter in it, as edge's writer hands over leadership.

A and B runs are interleaved (A, B, A, B, ...) so machine noise hits both. The
concurrent runs also time the leader's SQL calls (profile_hot.py's wrapper):
BEGIN, each write, COMMIT, and the share of the run the leader spent in them.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bench import build_inflight, edge_boot, edge_sequential  # noqa: E402
from bench_app import make_app  # noqa: E402
from profile_hot import _TimedConn  # noqa: E402

import edge  # noqa: E402
from edge.store import writer as W  # noqa: E402


class PipelinedWriter:
    """Methods grafted onto GroupCommitWriter for the B runs."""

    _open_batch: list[Any] | None = None

    def _take(self: Any) -> list[Any]:
        with self._mutex:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
        return batch  # type: ignore[no-any-return]

    def _begin(self: Any, batch: list[Any]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            single = len(batch) == 1
            for req in batch:
                if single:
                    try:
                        req.result = req.fn(conn)
                    except Exception as exc:
                        req.error = exc
                    continue
                conn.execute("SAVEPOINT w")
                try:
                    req.result = req.fn(conn)
                    conn.execute("RELEASE w")
                except Exception as exc:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    req.error = exc
        except BaseException as exc:
            self._failed = exc

    def _end(self: Any, batch: list[Any]) -> None:
        conn = self._conn
        failed = getattr(self, "_failed", None)
        self._failed = None
        try:
            if failed is not None:
                raise failed
            if len(batch) == 1 and batch[0].error is not None:
                conn.execute("ROLLBACK")
            else:
                conn.execute("COMMIT")
                if self.on_commit is not None:
                    self.on_commit()
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for req in batch:
                if req.error is None:
                    req.error, req.result = exc, None
        finally:
            self.batches += 1
            self.writes += len(batch)
            for req in batch:
                req.done = True

    def run(self: Any, fn: Any, atomic: bool = False) -> Any:
        req = W._Request(fn)  # every request in its savepoint, as before atomic requests
        with self._mutex:
            self._pending.append(req)
            lead = not self._committing
            self._committing = True
        if not lead:
            req.wake.acquire()
            if req.done:
                return self._outcome(req)
        batch = self._open_batch  # handed over open, or None
        self._open_batch = None
        if batch is None:
            batch = self._take()
            self._begin(batch)
        while True:
            self._end(batch)  # COMMIT: the batch is durable
            nxt = self._take()
            if nxt:
                self._begin(nxt)  # before the wake-ups: the GIL is ours, BEGIN is cheap
            for other in batch:
                if other is not req:
                    other.wake.release()
            if not nxt:
                with self._mutex:
                    if not self._pending:
                        self._committing = False
                        break
                nxt = self._take()
                self._begin(nxt)
            if req.done:
                self._open_batch = nxt  # hand the open transaction to its oldest waiter
                nxt[0].wake.release()
                break
            batch = nxt
        return self._outcome(req)


METHODS = ("run", "_take", "_begin", "_end")
ORIGINAL = {name: W.GroupCommitWriter.__dict__.get(name) for name in METHODS}


def use(pipelined: bool) -> None:
    for name in METHODS:
        new = PipelinedWriter.__dict__[name] if pipelined else ORIGINAL[name]
        if new is not None:
            setattr(W.GroupCommitWriter, name, new)
        elif name in W.GroupCommitWriter.__dict__:
            delattr(W.GroupCommitWriter, name)
    W.GroupCommitWriter._open_batch = None  # type: ignore[attr-defined]


def concurrent(n: int, workers: int) -> dict[str, float]:
    """steps/s, writes/commit and the leader's SQL time per commit for n 10-step workflows."""
    app, _ = make_app()
    totals: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d, \
            edge.Node(app, data_dir=d, workers=workers) as node:
        w = node.store._writer  # noqa: SLF001
        w._conn = _TimedConn(w._conn, totals)  # type: ignore[union-attr]
        b0, w0 = node.store.commit_stats
        t0 = time.perf_counter()
        handles = [app.start("ten", id=f"c{i}") for i in range(n)]
        for h in handles:
            h.result(timeout=300)
        wall = time.perf_counter() - t0
        b1, w1 = node.store.commit_stats
    batches = max(1, b1 - b0)

    def per(kind: str) -> float:
        v = totals.get(kind, [0.0, 1])
        return v[0] / max(1, v[1]) * 1e6

    return {"steps/s": n * 10 / wall, "writes/commit": (w1 - w0) / batches,
            "BEGIN us": per("BEGIN"), "write us": per("write"), "COMMIT us": per("COMMIT"),
            "leader busy in SQL %": sum(v[0] for v in totals.values()) / wall * 100}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workflows", type=int, default=1000)
    ap.add_argument("--boot", type=int, default=5000, help="in-flight workflows for the boot")
    args = ap.parse_args()
    logging.getLogger("edge").setLevel(logging.ERROR)
    res: dict[str, dict[str, list[float]]] = {"A edge": {}, "B pipelined": {}}
    with tempfile.TemporaryDirectory() as d:
        template = Path(d) / "inflight.db"
        build_inflight(template, args.boot)
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
            for label, on in (("A edge", False), ("B pipelined", True)):
                use(on)
                try:
                    out = res[label]
                    for w in (8, 32):
                        for k, v in concurrent(args.workflows, w).items():
                            out.setdefault(f"concurrent {w} workers, {k}", []).append(v)
                    per, _ = edge_sequential(100, "full", None)
                    out.setdefault("sequential FULL, us/step", []).append(per * 1e6)
                    b = edge_boot(template, args.boot, 8, None)
                    out.setdefault(f"boot {args.boot} in-flight, s to all resumed", []).append(
                        b["claimed"])
                finally:
                    use(False)
    keys = list(res["A edge"])
    print(f"{'measure':<42} {'A edge (median, min..max)':>30} {'B pipelined':>30}")
    for k in keys:
        cells = []
        for label in res:
            v = res[label][k]
            cells.append(f"{statistics.median(v):,.1f} ({min(v):,.1f}..{max(v):,.1f})")
        print(f"{k:<42} {cells[0]:>30} {cells[1]:>30}")


if __name__ == "__main__":
    main()
