"""Where a step's CPU goes: the sequential and concurrent hot paths under a sampling profiler.

    .venv/bin/pip install py-spy                      # once (a dev tool, not a dependency)
    .venv/bin/python benchmarks/profile_hot.py        # three workloads, summary on stdout
    .venv/bin/python benchmarks/profile_hot.py --cprofile   # call counts per step (cProfile)
    .venv/bin/python benchmarks/profile_hot.py --decompose  # CPU per workflow vs per step
    .venv/bin/python benchmarks/profile_hot.py --writer     # the group-commit leader's SQL calls

py-spy: each workload runs in a child process under ``py-spy record --gil
--format raw``: only the thread holding the GIL is sampled, so samples / rate
is the time the interpreter spends running edge's Python (the worker threads,
the group-commit leader and the caller's thread alike). On this VM py-spy's
idle detection counts threads blocked in futex waits as running, so --gil is
the reliable view; what it excludes is C code that drops the GIL (SQLite's
statement execution and fsync) and the waits. Only stacks on the hot path
(a worker's execute(), or the caller's start/result) are counted; imports and
node start/stop are reported apart. The summary gives, per step: the total,
the self time of the hottest source lines (the line in edge/ that calls into C:
sqlite3, json, zlib...), and the inclusive time of the functions on the path.

--decompose: workflows of 1 and 40 steps (and 0, 10), sequential and with
8 workers, synchronous FULL and NORMAL; process CPU time per workflow is
fitted as fixed + k * per-step, which separates what a workflow costs (start,
claim, load, finish, hand-offs) from what each step costs.

--writer: the write connection of the group-commit writer is wrapped so
that every execute() is timed by kind (BEGIN, SAVEPOINT/RELEASE, the write
itself, COMMIT), with 1 worker and with 8: a statement's wall time includes
getting the GIL back after SQLite released it, which is what a busy pool of
workers makes expensive.

--cprofile: the worker threads are profiled by wrapping edge.worker.execute
(cProfile sees one thread at a time) and the main thread directly; reported
as calls per step (how many SQL statements, JSON encodes, lock operations a
step costs). cProfile's overhead inflates Python-heavy functions, so its
times are for the shape, not the absolute figures.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

WORKLOADS = {
    "sequential-full": "500 10-step workflows one after another, synchronous=FULL",
    "sequential-normal": "500 10-step workflows one after another, synchronous=NORMAL",
    "concurrent-8": "1,000 10-step workflows, 8 workers, synchronous=FULL",
    "concurrent-64": "1,000 10-step workflows, 64 workers (the default), synchronous=FULL",
    "many-64": "the same, started with one app.start_many (one commit for the 1,000 starts)",
}



SEQ_WORKFLOWS = 500
HOT = ("execute (", "Node.start_workflow (", "Node.result (", "App.start (", "App.start_many (")


def run_workload(name: str) -> int:
    """Run one workload in this process; returns the number of steps."""
    import logging

    from bench import edge_concurrent, edge_sequential

    logging.getLogger("edge").setLevel(logging.ERROR)
    if name.startswith("sequential"):
        edge_sequential(SEQ_WORKFLOWS, name.split("-")[1], None)
        return (SEQ_WORKFLOWS + 1) * 10  # + 1 warm-up workflow
    edge_concurrent(1000, int(name.split("-")[1]), None, many=name.startswith("many"))
    return 10_000


FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^:]*):(?P<line>\d+)\)$")


def summarize_raw(path: Path, rate: int, steps: int, top: int) -> str:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = other = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        if not any(f.startswith(HOT) for f in frames):
            other += count
            continue
        total += count
        leaf = frames[-1]
        m = FRAME.match(leaf)
        self_t[_short(m) if m else leaf] += count
        seen: set[str] = set()
        for fr in frames:
            m = FRAME.match(fr)
            if not m or not (m["file"].startswith("edge/") or "/edge/" in m["file"]):
                continue
            key = f"{m['fn']} ({_tail(m['file'])})"
            if key not in seen:  # recursion counts once
                seen.add(key)
                incl[key] += count

    def us(c: int) -> float:
        return c / rate / steps * 1e6

    out = [f"  GIL-held samples on the hot path: {total} at {rate} Hz over {steps} steps = "
           f"{us(total):.0f} us/step (elsewhere: imports, node start/stop: {other} samples)",
           "  hottest lines (self time, us/step):"]
    out += [f"    {us(c):7.1f}  {k}" for k, c in self_t.most_common(top)]
    out.append("  edge functions on the path (inclusive, us/step):")
    out += [f"    {us(c):7.1f}  {k}" for k, c in incl.most_common(top)]
    return "\n".join(out)


def _short(m: re.Match[str]) -> str:
    f = m["file"]
    for marker in ("/edge/", "/lib/python3"):
        if marker in f:
            f = f[f.index(marker) + 1:]
            break
    return f"{m['fn']} ({f}:{m['line']})"


def _tail(path: str) -> str:
    for marker in ("/edge/", "/lib/python3"):
        if marker in path:
            return path[path.index(marker) + 1:]
    return path


def with_pyspy(pyspy: str, rate: int, top: int, native: bool,
               only: list[str] | None = None) -> None:
    for name, what in WORKLOADS.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as d:
            raw = Path(d) / "raw.txt"
            cmd = [pyspy, "record", "--gil", "--format", "raw", "--rate", str(rate),
                   "-o", str(raw)]
            if native:
                cmd.append("--native")
            cmd += ["--", sys.executable, __file__, "--run", name]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            if r.returncode != 0 or not raw.exists():
                print(f"{name}: py-spy failed: {r.stderr[-500:]}")
                continue
            steps = int([ln for ln in r.stdout.splitlines() if ln.strip().isdigit()][-1])
            print(f"== {name}: {what} ({wall:.1f} s wall)")
            print(summarize_raw(raw, rate, steps, top))
            print()


def with_cprofile(top: int) -> None:
    import cProfile
    import pstats
    import threading

    import edge.worker as worker

    for name, what in WORKLOADS.items():
        profiles: list[cProfile.Profile] = []
        local = threading.local()
        orig = worker.execute

        def profiled(node: object, wid: str, *args: object, local: threading.local = local,
                     profiles: list[cProfile.Profile] = profiles,
                     orig: Callable[..., None] = orig, **kw: object) -> None:
            if threading.current_thread() is threading.main_thread():
                # A caller's-thread run (Workers.run_here): the main profile sees it.
                orig(node, wid, *args, **kw)
                return
            prof = getattr(local, "prof", None)
            if prof is None:
                prof = local.prof = cProfile.Profile()
                profiles.append(prof)
            prof.enable()
            try:
                orig(node, wid, *args, **kw)  # fresh row, until= (a caller's-thread run)
            finally:
                prof.disable()

        worker.execute = profiled  # type: ignore[assignment]
        main = cProfile.Profile()
        try:
            main.enable()
            steps = run_workload(name)
            main.disable()
        finally:
            worker.execute = orig
        stats = pstats.Stats(main)
        for p in profiles:
            stats.add(p)
        print(f"== {name}: {what} (cProfile, worker threads + main thread; {steps} steps)")
        print("  calls/step  tottime us/step  cumtime us/step  function")
        rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
        for (file, line, fn), (_cc, nc, tt, ct, _callers) in rows[:top]:
            where = file if file == "~" else f"{_tail(file)}:{line}"
            print(f"  {nc / steps:10.2f}  {tt / steps * 1e6:15.1f}  {ct / steps * 1e6:15.1f}  "
                  f"{fn} ({where})")
        print()


def decompose(repeat: int) -> None:
    import logging
    import statistics
    import threading

    import edge

    logging.getLogger("edge").setLevel(logging.ERROR)

    def make(k: int) -> edge.App:
        app = edge.App("decompose")

        @app.step(name="work")
        def work(i: int) -> dict:
            return {"value": i, "receipt": "ch_0123456789abcdef", "ok": True}

        @app.workflow(name="w")
        def w() -> None:
            for i in range(k):
                work(i)

        return app

    def sequential(k: int, n: int, dur: str) -> float:
        app = make(k)
        with tempfile.TemporaryDirectory() as d, \
                edge.Node(app, data_dir=d, workers=1, durability=dur):
            app.start("w", id="warm").result(timeout=60)
            c0 = time.process_time()
            for i in range(n):
                app.start("w", id=f"s{i}").result(timeout=60)
            return (time.process_time() - c0) / n

    def concurrent(k: int, n: int, dur: str) -> float:
        app = make(k)
        with tempfile.TemporaryDirectory() as d, \
                edge.Node(app, data_dir=d, workers=8, durability=dur) as node:
            left = [n]
            done = threading.Event()
            orig = node.rt.on_finished  # what the worker calls at every final state

            def on_finished(*a: object, **kw: object) -> None:
                orig(*a, **kw)  # type: ignore[arg-type]
                left[0] -= 1
                if left[0] == 0:
                    done.set()

            node.rt.on_finished = on_finished  # type: ignore[method-assign]
            c0 = time.process_time()
            for i in range(n):
                app.start("w", id=f"c{i}")
            done.wait(300)
            return (time.process_time() - c0) / n

    print(f"process CPU us per workflow (median of {repeat}); fit = fixed + k * per-step")
    for label, fn, dur in (("sequential", sequential, "normal"), ("sequential", sequential, "full"),
                           ("8 workers", concurrent, "normal"), ("8 workers", concurrent, "full")):
        per = {k: statistics.median(fn(k, n, dur) for _ in range(repeat)) * 1e6
               for k, n in ((0, 300), (1, 300), (10, 150), (40, 50))}
        step = (per[40] - per[1]) / 39
        fixed = per[1] - step
        print(f"  {label:10s} {dur:6s}: k=0 {per[0]:5.0f}, k=1 {per[1]:5.0f}, k=10 {per[10]:5.0f}, "
              f"k=40 {per[40]:6.0f}  ->  {fixed:5.0f} per workflow + {step:4.0f} per step")


class _TimedConn:
    """Wraps a sqlite3.Connection; times execute() by statement kind."""

    def __init__(self, conn: object, totals: dict[str, list[float]]) -> None:
        self._conn = conn
        self._totals = totals

    def execute(self, sql: str, *args: object) -> object:
        word = sql.split(None, 1)[0].upper()
        kind = word if word in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK") else "write"
        t0 = time.perf_counter()
        try:
            return self._conn.execute(sql, *args)  # type: ignore[attr-defined]
        finally:
            slot = self._totals.setdefault(kind, [0.0, 0])
            slot[0] += time.perf_counter() - t0
            slot[1] += 1

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def writer_calls() -> None:
    import logging

    from bench_app import make_app

    import edge

    logging.getLogger("edge").setLevel(logging.ERROR)
    print("group-commit leader: wall time per execute() by kind (includes re-taking the GIL)")
    for workers, n in ((1, 100), (8, 1000), (64, 1000)):
        app, _ = make_app()
        totals: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory() as d, \
                edge.Node(app, data_dir=d, workers=workers) as node:
            w = node.store._writer  # noqa: SLF001 (a profiling tool reaches in)
            if w is None or not hasattr(w, "_conn"):
                print("  the writer has no _conn to wrap; update profile_hot.py")
                return
            w._conn = _TimedConn(w._conn, totals)
            b0, w0 = node.store.commit_stats
            t0 = time.perf_counter()
            handles = [app.start("ten", id=f"c{i}") for i in range(n)]
            for h in handles:
                h.result(timeout=300)
            wall = time.perf_counter() - t0
            b1, w1 = node.store.commit_stats
        batches = max(1, b1 - b0)
        parts = ", ".join(f"{k} {v[0] / v[1] * 1e6:.0f} us x {v[1] / batches:.1f}"
                          for k, v in sorted(totals.items()))
        busy = sum(v[0] for v in totals.values())
        print(f"  {workers:2d} workers: {n * 10 / wall:6.0f} steps/s, {(w1 - w0) / batches:.1f} "
              f"writes/commit; per commit: {parts}; leader busy in SQL {busy / wall * 100:.0f}%")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    ap.add_argument("--cprofile", action="store_true", help="use cProfile instead of py-spy")
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--decompose", action="store_true", help="CPU per workflow vs per step")
    ap.add_argument("--writer", action="store_true", help="time the leader's SQL calls")
    ap.add_argument("--workload", action="append", choices=list(WORKLOADS),
                    help="py-spy only these workloads (repeatable; default all)")
    args = ap.parse_args()
    if args.run:
        print(run_workload(args.run))
        return
    if args.decompose:
        decompose(3)
        return
    if args.writer:
        writer_calls()
        return
    pyspy = shutil.which("py-spy", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if args.cprofile or pyspy is None:
        if pyspy is None and not args.cprofile:
            print("py-spy not found (.venv/bin/pip install py-spy): using cProfile\n")
        with_cprofile(args.top)
    else:
        with_pyspy(pyspy, args.rate, args.top, args.native, args.workload)


if __name__ == "__main__":
    main()
