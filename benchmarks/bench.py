"""edge benchmark: one command, one table, every figure measured in the same run.

    .venv/bin/python benchmarks/bench.py                 # full run (~20 min), DBOS included
    .venv/bin/python benchmarks/bench.py --quick         # tiny sizes, < 30 s, DBOS skipped
    .venv/bin/python benchmarks/bench.py --no-dbos       # full run without DBOS
    .venv/bin/python benchmarks/bench.py --markdown      # the table as Markdown (RESULTS.md)
    .venv/bin/python benchmarks/profile_hot.py           # where the CPU of a step goes

Each row is the median of --repeat runs (5 by default) with min and max. The
measurements that compete for the disk (floor, edge, DBOS) are interleaved
run by run, so a burst of load from another process hits all of them alike.
Nothing is asserted: these machines are shared; the table is the result, and
the load average before and after is printed with it.

Rows (definitions are in benchmarks/RESULTS.md):
- floor: one raw SQLite commit (BEGIN IMMEDIATE; INSERT one checkpoint-sized
  row; COMMIT), WAL, synchronous=FULL and NORMAL, on the same disk; and 10
  rows per commit (the most a group commit of 10 could get);
- edge sequential: 10-step workflows one after another, app.start() then
  result(); us per step = wall time / steps, including each workflow's start,
  claim and finish; CPU us per step = process CPU time / steps;
- edge concurrent: 1,000 10-step workflows started at once with 8, 32 and 64
  (the default of `edge run`) workers; steps/s from the first start to the last
  finish (the starts from one thread, each acknowledged once committed; one more
  row starts them from 8 threads, as 8 HTTP clients would); latency of one
  workflow from its app.start() call to its finish being committed;
- DBOS Transact 3.4.0 on SQLite, the same workloads, in benchmarks/.venv-dbos
  (created on first use), run by dbos_bench.py as a subprocess printing JSON;
- boot: a fresh node's start() on a database holding 10,000 in-flight
  workflows (RUNNING with 5 checkpoints each, as a crash leaves them), at 8 and 64
  workers;
- RSS: an `edge run` process (HTTP API on) idle and after 1,000 workflows,
  without a replica and with an S3 replica (moto in this process, the real
  litestream as the node's child; its RSS is reported on its own row).

- how cost grows with the file (growth_bench.py's rows, in the same run): bytes
  per step and per workflow, list latency and `edge list` at 10^4..10^6
  workflows, steps/s with 10^6 in the file, boot of 100 MB and 1 GB files,
  prune throughput, and the query plan of every list filter.

Flags: --repeat N, --dir DIR (where the databases go; default the system temp
dir), --no-dbos, --no-s3, --no-growth, --markdown, --quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from bench_app import PARKED_STEPS, make_app  # noqa: E402

import edge  # noqa: E402
from edge.store import listing  # noqa: E402

DBOS_VERSION = "3.4.0"
DBOS_VENV = HERE / ".venv-dbos"
# The JSON a step of the benchmark returns, as edge stores it: the floor commits this row.
ROW = '{"value":12345,"receipt":"ch_0123456789abcdef","ok":true}'
CONC_WORKERS = (8, 32, 64)  # 64 is Settings' default (edge run)
STARTERS = 8  # the extra row: the 1,000 started from 8 threads, at 64 workers
BOOT_WORKERS = ((8, "boot"), (64, "boot64"))


class Skip(Exception):
    """A section cannot run here (a missing dependency); its rows say why."""


# ---- the table --------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""
    digits: int = 0

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def cells(self) -> list[str]:
        if not self.values:
            return [self.name, "-", "-", "-", self.unit, self.note]
        f = f"{{:,.{self.digits}f}}"
        return [self.name, f.format(self.median), f.format(min(self.values)),
                f.format(max(self.values)), self.unit, self.note]


class Table:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.order: list[str] = []
        self.failed: list[str] = []

    def row(self, key: str, name: str, unit: str, digits: int = 0, note: str = "") -> Row:
        if key not in self.rows:
            self.rows[key] = Row(name, unit, note=note, digits=digits)
            self.order.append(key)
        return self.rows[key]

    def get(self, key: str) -> float | None:
        r = self.rows.get(key)
        return r.median if r is not None and r.values else None

    def note(self, key: str, name: str, text: str) -> None:
        self.row(key, name, "", note=text)

    def render(self, markdown: bool) -> str:
        head = ["measure", "median", "min", "max", "unit", "note"]
        body = [self.rows[k].cells() for k in self.order]
        if markdown:
            lines = ["| " + " | ".join(head) + " |",
                     "|" + "|".join(["---", "---:", "---:", "---:", "---", "---"]) + "|"]
            lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in body]
            return "\n".join(lines)
        w = [max(len(r[i]) for r in [head, *body]) for i in range(5)]
        out = []
        for r in [head, *body]:
            out.append(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  "
                       f"{r[4]:<{w[4]}}  {r[5]}".rstrip())
        return "\n".join(out)


def guarded(table: Table, key: str, name: str, fn: Callable[[], None]) -> None:
    """Run one section; a missing dependency is a 'skipped' row, an error a 'FAILED' row."""
    try:
        fn()
    except Skip as exc:
        table.note(key + ".skip", name, f"skipped: {exc}")
    except Exception as exc:  # a broken section must not hide the others
        traceback.print_exc(file=sys.stderr)
        table.note(key + ".fail", name, f"FAILED: {type(exc).__name__}: {exc}")
        table.failed.append(name)


# ---- the floor -----------------------------------------------------------------------------


def floor(sync: str, n: int, rows_per_commit: int, where: str | None) -> float:
    """Seconds per commit of ``rows_per_commit`` checkpoint-sized rows."""
    with tempfile.TemporaryDirectory(dir=where) as d:
        conn = sqlite3.connect(os.path.join(d, "f.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync}")
        # The shape of edge's operations table: 11 columns, keyed by (workflow_id, seq).
        conn.execute("CREATE TABLE t (workflow_id TEXT, seq INTEGER, kind TEXT, name TEXT, "
                     "status TEXT, attempts INTEGER, output TEXT, error TEXT, started_at REAL, "
                     "finished_at REAL, checksum INTEGER, PRIMARY KEY (workflow_id, seq))")
        sql = "INSERT INTO t VALUES (?, ?, 'step', 'work', 'SUCCEEDED', 1, ?, NULL, ?, ?, ?)"
        now = time.time()
        seq = 0
        t0 = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(rows_per_commit):
                seq += 1
                conn.execute(sql, ("wf-0123456789abcdef", seq, ROW, now, now, 12345678))
            conn.execute("COMMIT")
        dt = time.perf_counter() - t0
        conn.close()
    return dt / n


# ---- edge, in this process ---------------------------------------------------------------


def edge_sequential(n_workflows: int, durability: str, where: str | None) -> tuple[float, float]:
    """(seconds per step, CPU seconds per step) for 10-step workflows one after another."""
    app, _ = make_app()
    with tempfile.TemporaryDirectory(dir=where) as d, \
            edge.Node(app, data_dir=d, workers=1, durability=durability):
        app.start("ten", id="warm").result(timeout=60)
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(n_workflows):
            app.start("ten", id=f"s{i}").result(timeout=60)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = n_workflows * 10
    return dt / steps, cpu / steps


def edge_concurrent(n_workflows: int, workers: int, where: str | None,
                    starters: int = 1, many: bool = False) -> dict[str, float]:
    """n 10-step workflows started at once: steps/s, p50/p99 latency, CPU/step, batching.
    ``starters`` threads share the starts (as that many HTTP clients would): one thread's
    starts follow each other, each waiting for its own commit (a start is acknowledged
    only once durable), so with one starter the row is bound by that chain. ``many``: one
    thread starts them with ``app.start_many``, 1,000 to a transaction (one commit)."""
    app, _ = make_app()
    with tempfile.TemporaryDirectory(dir=where) as d, \
            edge.Node(app, data_dir=d, workers=workers) as node:
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}
        done = threading.Event()
        orig = node.rt.on_finished  # what the worker calls at every final state

        def on_finished(workflow: str, wid: str, *rest: Any, **kw: Any) -> None:
            ends[wid] = time.perf_counter()
            orig(workflow, wid, *rest, **kw)
            if len(ends) == n_workflows:
                done.set()

        node.rt.on_finished = on_finished  # type: ignore[method-assign]
        b0, w0 = node.store.commit_stats
        c0, t0 = time.process_time(), time.perf_counter()
        def start(first: int) -> None:
            if many:
                for lo in range(0, n_workflows, 1000):
                    ids = [f"c{i}" for i in range(lo, min(n_workflows, lo + 1000))]
                    now = time.perf_counter()
                    starts.update((k, now) for k in ids)
                    app.start_many("ten", [()] * len(ids), ids=ids)
                return
            for i in range(first, n_workflows, starters):
                starts[f"c{i}"] = time.perf_counter()
                app.start("ten", id=f"c{i}")
        threads = [threading.Thread(target=start, args=(k,)) for k in range(starters)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if not done.wait(600):
            raise TimeoutError(f"only {len(ends)} of {n_workflows} workflows finished")
        dt = max(ends.values()) - t0
        cpu = time.process_time() - c0
        b1, w1 = node.store.commit_stats
        lat = sorted(ends[k] - starts[k] for k in ends)
    return {"steps_per_s": n_workflows * 10 / dt, "p50": _pct(lat, 50), "p99": _pct(lat, 99),
            "cpu_per_step": cpu / (n_workflows * 10),
            "writes_per_commit": (w1 - w0) / max(1, b1 - b0)}


def _pct(sorted_values: list[float], p: int) -> float:
    return sorted_values[max(0, min(len(sorted_values) - 1,
                                    round(len(sorted_values) * p / 100) - 1))]


# ---- boot with in-flight workflows ---------------------------------------------------------


def build_inflight(path: Path, n: int, workflow: str = "parked", step: str = "work") -> None:
    """A database holding ``n`` workflows RUNNING with PARKED_STEPS checkpoints each, as a
    node killed mid-run leaves them. Written through the store's own verbs (same SQL,
    checksums and fencing as a real run), collected into one transaction for speed.
    ``workflow``/``step``: "aparked"/"awork" for the async twin."""
    from edge.serialization import encode
    from edge.store import OpRow, Store

    now = time.time()
    store = Store.open(path, "normal", now)
    try:
        fns: list[Callable[[sqlite3.Connection], Any]] = []
        def collect(fn: Callable[[sqlite3.Connection], Any], atomic: bool = False) -> None:
            fns.append(fn)

        store.write = collect  # type: ignore[assignment,method-assign]
        inp = encode({"args": [], "kwargs": {}}, "input")
        for i in range(n):
            wid = f"b{i:06d}"
            store.insert_workflow(wid, workflow, inp, now)
            store.claim(wid, "crashed-run", now)
            for seq in range(1, PARKED_STEPS + 1):
                out = encode({"value": seq - 1, "receipt": "ch_0123456789abcdef", "ok": True},
                             "output")
                store.record_op(OpRow(wid, seq, "step", step, "SUCCEEDED", 1, out, None,
                                      now, now), "crashed-run", now)
        del store.write
        store.write(lambda conn: [fn(conn) for fn in fns])
    finally:
        store.close()


def edge_boot(template: Path, n: int, workers: int, where: str | None) -> dict[str, float]:
    """Seconds from a fresh node's start() to: ready (every in-flight workflow recovered and
    queued), all claimed (each one's function entered by a worker after its claim commit),
    all parked again (each replayed its checkpoints and committed its wait_event park)."""
    app, entered = make_app()
    entered.target, entered.clock = n, time.perf_counter
    with tempfile.TemporaryDirectory(dir=where) as d:
        shutil.copy(template, Path(d) / "edge.db")
        node = edge.Node(app, data_dir=d, workers=workers)
        t0 = time.perf_counter()
        node.start()
        try:
            ready = time.perf_counter() - t0
            if not entered.reached.wait(600):
                raise TimeoutError(f"only {entered.count} of {n} workflows resumed")
            claimed = entered.at - t0
            deadline = time.monotonic() + 600
            while listing.counts(node.store).get("WAITING", 0) < n:
                if time.monotonic() > deadline:
                    raise TimeoutError("in-flight workflows did not all park again")
                time.sleep(0.005)
            parked = time.perf_counter() - t0
        finally:
            node.stop()
    return {"ready": ready, "claimed": claimed, "parked": parked}


# ---- RSS of an `edge run` process ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _litestream_pids(pid: int) -> list[int]:
    found = []
    for c in _descendants(pid):
        try:
            if Path(f"/proc/{c}/comm").read_text().strip() == "litestream":
                found.append(c)
        except OSError:
            pass
    return found


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edge run exited {proc.returncode}: {log.read_text()[-800:]}")
        try:
            with opener.open(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"edge run not ready after {timeout} s: {log.read_text()[-800:]}")


def edge_rss(replica: str | None, env_extra: dict[str, str], n_load: int, settle: float,
             where: str | None) -> dict[str, float]:
    """MB: node idle (VmRSS after ready + settle), node loaded (VmRSS after n_load 10-step
    workflows through the HTTP API; and VmHWM, the peak), litestream idle/loaded."""
    with tempfile.TemporaryDirectory(dir=where) as d:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        exe = shutil.which("edge", path=str(Path(sys.executable).parent))
        cmd = [exe] if exe else [sys.executable, "-c", "from edge.cli import main; main()"]
        cmd += ["run", "--app", "bench_app:app", "--data-dir", str(Path(d) / "data"),
                "--listen", f"127.0.0.1:{port}", "--workers", "8"]
        if replica:
            cmd += ["--replica", replica]
        env = dict(os.environ)
        env.update(env_extra)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
        log = Path(d) / "node.log"
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                    cwd=d)
        try:
            _wait_ready(url, proc, log, 90)
            time.sleep(settle)
            mb = 1 / 1024
            out = {"idle": _status_kb(proc.pid, "VmRSS") * mb}
            ls = _litestream_pids(proc.pid)
            if replica:
                if not ls:
                    raise RuntimeError("no litestream child found under the node")
                out["ls_idle"] = sum(_status_kb(p, "VmRSS") for p in ls) * mb
            client = edge.Client(url, timeout=30)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: client.start("ten", id=f"l{i}"), range(n_load)))
            deadline = time.monotonic() + 600
            while client.status()["workflows"]["SUCCEEDED"] < n_load:
                if time.monotonic() > deadline:
                    raise TimeoutError("load did not finish")
                time.sleep(0.1)
            out["loaded"] = _status_kb(proc.pid, "VmRSS") * mb
            out["peak"] = _status_kb(proc.pid, "VmHWM") * mb
            if replica:
                ls = _litestream_pids(proc.pid) or ls
                out["ls_loaded"] = sum(_status_kb(p, "VmRSS") for p in ls) * mb
            return out
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Moto:
    """A moto S3 server on 127.0.0.1 in this process, with one bucket."""

    def __init__(self) -> None:
        try:
            import boto3
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise Skip(f"moto[server] is not installed ({exc.name})") from None
        from edge.replication import find_litestream

        try:
            find_litestream()
        except Exception as exc:
            raise Skip(f"no litestream binary: {exc}") from None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        port = _free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_DEFAULT_REGION": "us-east-1"}
        self.bucket = f"bench-{os.getpid()}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test"
                     ).create_bucket(Bucket=self.bucket)

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint}"

    def stop(self) -> None:
        self.server.stop()


# ---- DBOS, in its own virtual environment ------------------------------------------------------


def dbos_python(quiet: bool) -> Path:
    """The DBOS venv's interpreter, creating the venv (pip install dbos) on first use."""
    py = DBOS_VENV / "bin" / "python"
    if py.exists():
        probe = subprocess.run([str(py), "-c", "import dbos"], capture_output=True, check=False)
        if probe.returncode == 0:
            return py
    if not quiet:
        print(f"creating {DBOS_VENV} (pip install dbos=={DBOS_VERSION}) ...", file=sys.stderr)
    steps = [[sys.executable, "-m", "venv", "--clear", str(DBOS_VENV)],
             [str(py), "-m", "pip", "install", "-q", f"dbos=={DBOS_VERSION}"]]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise Skip(f"`{' '.join(cmd[-3:])}` failed: {tail[0]}")
    return py


def dbos_run(py: Path, mode: str, n: int, workers: int, where: str | None) -> dict[str, Any]:
    cmd = [str(py), str(HERE / "dbos_bench.py"), mode, "--workflows", str(n),
           "--workers", str(workers)]
    if where:
        cmd += ["--dir", where]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"dbos_bench {mode} exited {r.returncode}: {r.stderr[-600:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---- the run ----------------------------------------------------------------------------------


def machine(where: str | None) -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [f"nproc {os.cpu_count()}, CPU {cpu}, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, {platform.platform()}",
            f"disk: {_disk(where or tempfile.gettempdir())}",
            f"edge: {_source()}"]


def _disk(path: str) -> str:
    """The block device and filesystem holding ``path`` (from /proc/mounts and /sys)."""
    best = ("", "", "")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fs = line.split()[:3]
            if path.startswith(mnt) and len(mnt) > len(best[1]):
                best = (dev, mnt, fs)
    except OSError:
        return "?"
    dev, mnt, fs = best
    name = Path(dev).name
    rota = Path(f"/sys/block/{name}/queue/rotational")
    kind = ""
    if rota.exists():
        kind = ", virtio" if name.startswith("vd") else ""
        kind += ", rotational=" + rota.read_text().strip()
    return f"{path} on {dev} ({fs} at {mnt}{kind})"


def _source() -> str:
    where = Path(edge.__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "edge"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{where} (not a git checkout)"
    return f"{where} at commit {sha}" + (" + uncommitted changes in edge/" if dirty else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, < 30 s; skips DBOS")
    ap.add_argument("--repeat", type=int, default=None, help="runs per row (default 5; quick 1)")
    ap.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    ap.add_argument("--no-s3", action="store_true", help="skip the S3-replica RSS rows")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--dir", default=None, help="directory for the databases (same disk for all)")
    ap.add_argument("--no-growth", action="store_true",
                    help="skip how cost grows with the file (growth_bench.py's rows, ~8 min, "
                         "~2 GB in --dir)")
    args = ap.parse_args()
    q = args.quick
    rep = args.repeat or (1 if q else 5)
    n_floor = 200 if q else 2000
    n_seq = 10 if q else 200
    n_conc = 50 if q else 1000
    n_boot = 200 if q else 10_000
    n_load = 50 if q else 1000
    settle = 0.3 if q else 3.0
    where = args.dir
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("edge").setLevel(logging.ERROR)

    t_start = time.monotonic()
    load0 = os.getloadavg()
    t = Table()

    # DBOS: set up before the timed loop; its rows run interleaved with edge's.
    dbos_py: Path | None = None
    if q or args.no_dbos:
        why = "--quick" if q else "--no-dbos"
        t.note("dbos.skip", "DBOS Transact", f"skipped ({why})")
        print(f"note: DBOS comparison skipped ({why})", file=sys.stderr)
    else:
        def setup() -> None:
            nonlocal dbos_py
            dbos_py = dbos_python(quiet=False)
        guarded(t, "dbos", "DBOS Transact", setup)

    fl = {s: t.row(f"floor.{s}", f"floor: raw commit, 1 row, synchronous={s}", "us/commit")
          for s in ("FULL", "NORMAL")}
    fl10 = t.row("floor.FULL.10", "floor: raw commit, 10 rows, synchronous=FULL", "rows/s")
    seq = {dur: (t.row(f"seq.{dur}", f"edge sequential 10-step, {dur}", "steps/s"),
                 t.row(f"seq.{dur}.us", f"edge sequential 10-step, {dur}", "us/step"),
                 t.row(f"seq.{dur}.cpu", f"edge sequential 10-step, {dur}", "CPU us/step"))
           for dur in ("full", "normal")}
    conc = {w: {k: t.row(f"conc.{w}.{k}", f"edge concurrent {n_conc}x10, {w} workers", u,
                         digits=d)
                for k, u, d in (("steps_per_s", "steps/s", 0), ("p50", "ms p50 latency", 0),
                                ("p99", "ms p99 latency", 0), ("cpu_per_step", "CPU us/step", 0),
                                ("writes_per_commit", "writes/commit", 1))}
            for w in CONC_WORKERS}
    conc_st = {k: t.row(f"conc.st.{k}", f"edge concurrent {n_conc}x10, 64 workers, "
                        f"started from {STARTERS} threads", u, digits=d)
               for k, u, d in (("steps_per_s", "steps/s", 0), ("p50", "ms p50 latency", 0),
                               ("p99", "ms p99 latency", 0), ("cpu_per_step", "CPU us/step", 0),
                               ("writes_per_commit", "writes/commit", 1))}

    conc_many = {k: t.row(f"conc.many.{k}", f"edge concurrent {n_conc}x10, 64 workers, "
                          "started with app.start_many", u, digits=d)
                 for k, u, d in (("steps_per_s", "steps/s", 0), ("p50", "ms p50 latency", 0),
                                 ("p99", "ms p99 latency", 0),
                                 ("cpu_per_step", "CPU us/step", 0),
                                 ("writes_per_commit", "writes/commit", 1))}

    for r in range(rep):
        print(f"run {r + 1}/{rep} ...", file=sys.stderr)
        for s in ("FULL", "NORMAL"):
            guarded(t, f"floor.{s}", f"floor {s}",
                    lambda s=s: fl[s].add(floor(s, n_floor, 1, where) * 1e6))  # type: ignore[misc]
        guarded(t, "floor.FULL.10", "floor 10 rows",
                lambda: fl10.add(10 / floor("FULL", n_floor // 4, 10, where)))
        for dur in ("full", "normal"):
            def one_seq(dur: str = dur) -> None:
                per, cpu = edge_sequential(n_seq, dur, where)
                seq[dur][0].add(1 / per)
                seq[dur][1].add(per * 1e6)
                seq[dur][2].add(cpu * 1e6)
            guarded(t, f"seq.{dur}", f"edge sequential {dur}", one_seq)
        for w in CONC_WORKERS:
            def one_conc(w: int = w) -> None:
                res = edge_concurrent(n_conc, w, where)
                for k, v in res.items():
                    scale = 1e3 if k in ("p50", "p99") else 1e6 if k == "cpu_per_step" else 1
                    conc[w][k].add(v * scale)
            guarded(t, f"conc.{w}", f"edge concurrent {w}", one_conc)

        def one_starters() -> None:
            res = edge_concurrent(n_conc, 64, where, starters=STARTERS)
            for k, v in res.items():
                scale = 1e3 if k in ("p50", "p99") else 1e6 if k == "cpu_per_step" else 1
                conc_st[k].add(v * scale)
        guarded(t, "conc.st", f"edge concurrent, {STARTERS} starters", one_starters)

        def one_many() -> None:
            res = edge_concurrent(n_conc, 64, where, many=True)
            for k, v in res.items():
                scale = 1e3 if k in ("p50", "p99") else 1e6 if k == "cpu_per_step" else 1
                conc_many[k].add(v * scale)
        guarded(t, "conc.many", "edge concurrent, app.start_many", one_many)
        if dbos_py is not None and r < min(rep, 3):
            py = dbos_py

            def one_dbos(py: Path = py) -> None:
                s = dbos_run(py, "sequential", n_seq, 1, where)
                t.row("dbos.seq", "DBOS sequential 10-step", "steps/s").add(
                    1 / s["seconds_per_step"])
                t.row("dbos.seq.us", "DBOS sequential 10-step", "us/step").add(
                    s["seconds_per_step"] * 1e6)
                t.row("dbos.seq.cpu", "DBOS sequential 10-step", "CPU us/step").add(
                    s["cpu_per_step"] * 1e6)
                for w in (8, 32):
                    c = dbos_run(py, "concurrent", n_conc, w, where)
                    name = f"DBOS concurrent {n_conc}x10, {w}-way queue"
                    t.row(f"dbos.conc.{w}", name, "steps/s").add(c["steps_per_s"])
                    t.row(f"dbos.conc.{w}.p50", name, "ms p50 latency").add(c["p50"] * 1e3)
                    t.row(f"dbos.conc.{w}.p99", name, "ms p99 latency").add(c["p99"] * 1e3)
                    t.row(f"dbos.conc.{w}.cpu", name, "CPU us/step").add(
                        c["cpu_per_step"] * 1e6)
                sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(s["synchronous"])
                t.rows["dbos.seq"].note = (f"dbos {s['dbos_version']}, journal={s['journal_mode']}"
                                           f", synchronous={sync}, queue polling 10 ms")
            guarded(t, "dbos.run", "DBOS", one_dbos)

    # Ratios of medians.
    for dur in ("full", "normal"):
        e, f = t.get(f"seq.{dur}.us"), t.get(f"floor.{dur.upper()}")
        if e and f:
            t.row(f"ratio.floor.{dur}", f"edge sequential {dur} / floor {dur.upper()}",
                  "x per step", digits=2, note="ratio of the medians").add(e / f)
    pairs = [("seq.full", "dbos.seq", "sequential")] + [
        (f"conc.{w}.steps_per_s", f"dbos.conc.{w}", f"concurrent {w}") for w in (8, 32)]
    for ek, dk, label in pairs:
        e, dv = t.get(ek), t.get(dk)
        if e and dv:
            t.row(f"ratio.dbos.{label}", f"edge / DBOS, {label}", "x steps/s", digits=1,
                  note="ratio of the medians").add(e / dv)

    if dbos_py is not None:
        guarded(t, "dbos.rss", "DBOS idle RSS", lambda: t.row(
            "dbos.rss", "DBOS process RSS after launch (idle)", "MB", digits=1).add(
            dbos_run(dbos_py, "idle", 0, 1, where)["rss_kb"] / 1024))  # type: ignore[arg-type]

    # Boot with in-flight workflows.
    def boot() -> None:
        with tempfile.TemporaryDirectory(dir=where) as d:
            template = Path(d) / "inflight.db"
            b0 = time.perf_counter()
            build_inflight(template, n_boot)
            print(f"built {n_boot} in-flight workflows in {time.perf_counter() - b0:.1f} s",
                  file=sys.stderr)
            for _ in range(min(rep, 3)):
                for w, key in BOOT_WORKERS:
                    name = f"boot, {n_boot:,} in-flight, {w} workers"
                    res = edge_boot(template, n_boot, w, where)
                    t.row(f"{key}.ready", name, "s to ready (all queued)", digits=2).add(
                        res["ready"])
                    t.row(f"{key}.claimed", name, "s to all resumed (claimed)", digits=2).add(
                        res["claimed"])
                    t.row(f"{key}.parked", name, "s to all re-parked", digits=2).add(
                        res["parked"])
    guarded(t, "boot", "boot", boot)

    # RSS of `edge run`.
    def rss(kind: str, replica: str | None, env: dict[str, str]) -> None:
        name = f"edge run RSS, {kind}"
        for _ in range(1 if q else 2):
            res = edge_rss(replica, env, n_load, settle, where)
            t.row(f"rss.{kind}.idle", name, "MB idle", digits=1).add(res["idle"])
            t.row(f"rss.{kind}.loaded", name, f"MB after {n_load} wf", digits=1).add(
                res["loaded"])
            t.row(f"rss.{kind}.peak", name, "MB peak (VmHWM)", digits=1).add(res["peak"])
            if "ls_idle" in res:
                t.row(f"rss.{kind}.ls_idle", f"litestream RSS, {kind}", "MB idle",
                      digits=1).add(res["ls_idle"])
                t.row(f"rss.{kind}.ls_loaded", f"litestream RSS, {kind}", f"MB after {n_load} wf",
                      digits=1).add(res["ls_loaded"])

    guarded(t, "rss.none", "RSS without replica", lambda: rss("no replica", None, {}))
    if args.no_s3:
        t.note("rss.s3.skip", "edge run RSS, S3 replica", "skipped (--no-s3)")
    else:
        def s3() -> None:
            moto = Moto()
            try:
                for i in range(1 if q else 2):
                    rss("S3 replica", moto.url(f"site{i}"), moto.env)
            finally:
                moto.stop()
        guarded(t, "rss.s3", "edge run RSS, S3 replica", s3)

    plan_lines: list[str] = []
    if args.no_growth:
        t.note("growth.skip", "how cost grows with the file", "skipped (--no-growth)")
    else:
        import growth_bench  # imports this module: only here, once bench's names exist

        def growth() -> None:
            plan_lines.extend(growth_bench.measure(t, q, where))
        guarded(t, "growth", "how cost grows", growth)

    load1 = os.getloadavg()
    print(t.render(args.markdown))
    print()
    for line in machine(where):
        print(line)
    print(f"load average (1/5/15 min) before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, "
          f"after {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}; {rep} run(s) per row; "
          f"{time.monotonic() - t_start:.0f} s in all")
    if plan_lines:
        print()
        print("query plans of every list filter (largest growth size):")
        print("\n".join(plan_lines))
    print()
    print(targets(t))
    if not args.no_growth:
        import growth_bench
        print("\n".join(growth_bench.targets(t, plan_lines)))
    if t.failed:
        print(f"FAILED sections: {', '.join(t.failed)}", file=sys.stderr)
        return 1
    return 0


def targets(t: Table) -> str:
    """Issue 11's targets (DESIGN.md section 7 as tightened), against this run's medians."""
    def check(name: str, value: float | None, ok: Callable[[float], bool], fmt: str) -> str:
        if value is None:
            return f"  {name}: not measured"
        return f"  {name}: {fmt.format(value)} -> {'met' if ok(value) else 'MISSED'}"

    conc = [v for v in (t.get(f"conc.{w}.steps_per_s") for w in CONC_WORKERS) if v]
    dbos = [t.get(k) for k in ("ratio.dbos.sequential", "ratio.dbos.concurrent 8",
                               "ratio.dbos.concurrent 32")]
    lines = ["targets (issue 11, synchronous=FULL):",
             check("sequential step <= 1.5x floor", t.get("ratio.floor.full"),
                   lambda v: v <= 1.5, "{:.2f}x"),
             check("concurrent >= 10,000 steps/s, started from one thread (best of 8/32/64 "
                   "workers)", max(conc) if conc else None, lambda v: v >= 10_000,
                   "{:,.0f} steps/s"),
             check(f"concurrent >= 10,000 steps/s, started from {STARTERS} threads, 64 workers",
                   t.get("conc.st.steps_per_s"), lambda v: v >= 10_000, "{:,.0f} steps/s"),
             check("concurrent >= 10,000 steps/s, started with app.start_many, 64 workers",
                   t.get("conc.many.steps_per_s"), lambda v: v >= 10_000, "{:,.0f} steps/s"),
             check(">= 5x DBOS sequential", dbos[0], lambda v: v >= 5, "{:.1f}x"),
             check(">= 5x DBOS concurrent, 8 workers", dbos[1], lambda v: v >= 5, "{:.1f}x"),
             check(">= 5x DBOS concurrent, 32 workers", dbos[2], lambda v: v >= 5, "{:.1f}x"),
             check("in flight (10,000 in a full run) all resumed < 2 s, default 64 workers",
                   t.get("boot64.claimed"), lambda v: v < 2, "{:.2f} s"),
             check("idle RSS < 60 MB without replica", t.get("rss.no replica.idle"),
                   lambda v: v < 60, "{:.1f} MB"),
             check("idle RSS < 90 MB with S3 replica", t.get("rss.S3 replica.idle"),
                   lambda v: v < 90, "{:.1f} MB")]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
