"""edge async benchmark: I/O-bound workflows (async vs threads), async vs sync CPU-light
steps/s, and the worker count's effect on sync I/O-bound steps. One table, every row
measured in the same run, each in a fresh child process (so RSS is the run's own).

    .venv/bin/python benchmarks/async_bench.py               # full run (~4 min)
    .venv/bin/python benchmarks/async_bench.py --quick       # tiny sizes, < 1 min
    .venv/bin/python benchmarks/async_bench.py --markdown    # the table as Markdown

Rows (definitions in benchmarks/RESULTS.md, section "Async"):
- I/O-bound: --n (1,000) workflows started at once whose one step waits --wait (0.5 s):
  asyncio.sleep in an async step; time.sleep in a sync step; a real HTTP GET to a
  local server that answers after --wait (a separate process), from an async step
  (aiohttp, and a bare asyncio stream exchange) and from a sync step (urllib). The
  workflows are started at once from an asyncio loop (``app.start_async`` gathered, as
  an embedding web app's requests arrive) and awaited there (``result_async``); one
  row starts them with ``app.start`` one by one from a thread instead. Wall time from
  the first start to the last result, against the ideal (--wait); RSS over
  idle = the highest RSS sampled every 10 ms during the run minus the RSS of the started,
  idle node (libraries already imported); peak thread count;
- worker sweep: the sync time.sleep run with --sweep worker counts (and once awaited by an
  async workflow, where it runs on the loop's step threads), and the concurrent
  CPU-light sync run at the same counts (what more threads cost CPU-bound work);
- CPU-light: 10-step workflows whose steps return a checkpoint-sized dict, sync and
  async: sequential (start, result, next) and concurrent (--conc workflows at once);
- boot: a node recovering --boot (10,000) in-flight workflows (bench.py's boot
  workload) at each --boot-workers count: seconds until all parked again, peak RSS.

Default settings throughout (durability full, default worker count) unless a row says
otherwise; the HTTP API is off (listen=None) so runs cannot collide on port 8080.
Nothing is asserted: the table and the load average around it are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from bench import Table, guarded, machine  # noqa: E402

# ---- child: one measurement in a fresh process -------------------------------------------


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _switches() -> int:
    """Context switches (voluntary + involuntary) of every live thread of this process."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


class Sampler:
    """The highest VmRSS and thread count seen every 10 ms while it runs."""

    def __init__(self) -> None:
        self.peak_kb = self.peak_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"))
            self.peak_threads = max(self.peak_threads, _status_kb("Threads"))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"))


async def _from_a_loop(app: Any, wf: str, wf_args: list[Any], n: int,
                       t0: float) -> tuple[float, float]:
    """Start n workflows at once from an asyncio loop (an embedding web app's requests)
    and await every result there: (seconds to start them all, seconds to the last result)."""
    handles = await asyncio.gather(*(app.start_async(wf, *wf_args, id=f"w{i}")
                                     for i in range(n)))
    started = time.perf_counter() - t0
    await asyncio.gather(*(h.result_async(timeout=900) for h in handles))
    return started, time.perf_counter() - t0


def boot_child(args: argparse.Namespace) -> dict[str, Any]:
    """A node booting on a copy of --template (--n in-flight workflows, as a crash leaves
    them) with --workers: seconds until all parked again, and the peak RSS over the
    process before the boot (libraries imported)."""
    from bench import edge_boot

    import edge

    workers = args.workers or edge.Settings().workers
    idle_kb = _status_kb("VmRSS")
    with Sampler() as s:
        out = edge_boot(Path(args.template), args.n, workers, args.dir)
    return {"parked": out["parked"], "over_idle_kb": s.peak_kb - idle_kb, "idle_kb": idle_kb,
            "threads": s.peak_threads, "workers": workers}


def child(args: argparse.Namespace) -> dict[str, Any]:
    from async_bench_app import make_app

    import edge

    if args.client == "aiohttp":
        import aiohttp  # noqa: F401  (imported before the idle RSS is read)
    app = make_app()
    kw: dict[str, Any] = {"listen": None}
    if args.workers:
        kw["workers"] = args.workers
    with tempfile.TemporaryDirectory(dir=args.dir) as d, \
            edge.Node(app, settings=edge.Settings(data_dir=Path(d), **kw)) as node:
        # Settings, not Node's keyword defaults: the defaults `edge run` uses (config.py).
        time.sleep(0.3)  # let boot-time threads settle before the idle reading
        idle_kb = _status_kb("VmRSS")
        wf_args: list[Any]
        if args.kind == "io":
            wf_args = [args.wait] if args.url is None else (
                [args.url] if args.wf == "http_sync" else [args.url, args.client])
            c0 = time.process_time()
            with Sampler() as s:
                t0 = time.perf_counter()
                if args.starter == "loop":
                    started, wall = asyncio.run(_from_a_loop(app, args.wf, wf_args, args.n, t0))
                else:
                    handles = [app.start(args.wf, *wf_args, id=f"w{i}") for i in range(args.n)]
                    started = time.perf_counter() - t0
                    for h in handles:
                        h.result(timeout=900)
                    wall = time.perf_counter() - t0
            return {"wall": wall, "start_s": started, "idle_kb": idle_kb,
                    "over_idle_kb": s.peak_kb - idle_kb, "threads": s.peak_threads,
                    "cpu_s": time.process_time() - c0, "workers": node.settings.workers}
        # CPU-light
        x0 = _switches()
        c0 = time.process_time()
        t0 = time.perf_counter()
        if args.kind == "seq":
            for i in range(args.n):
                app.start(args.wf, id=f"s{i}").result(timeout=60)
        else:
            handles = [app.start(args.wf, id=f"c{i}") for i in range(args.n)]
            for h in handles:
                h.result(timeout=600)
        wall = time.perf_counter() - t0
        steps = args.n * 10
        return {"steps_per_s": steps / wall, "cpu_us_per_step": (time.process_time() - c0)
                / steps * 1e6, "switches_per_step": (_switches() - x0) / steps,
                "workers": node.settings.workers}


# ---- the slow HTTP server (its own process, so its CPU and RSS are not the node's) ------


def serve(port_file: Path, wait: float) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(wait)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(reply, "127.0.0.1", 0, backlog=4096)
        port_file.write_text(str(server.sockets[0].getsockname()[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class SlowServer:
    def __init__(self, wait: float, where: Path) -> None:
        port_file = where / "port"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file),
                                      "--wait", str(wait)])
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the slow HTTP server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port_file.read_text()}/pay"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# ---- the run -----------------------------------------------------------------------------


def run_child(*argv: str, timeout: float = 1200) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="I/O-bound workflows started at once")
    p.add_argument("--wait", type=float, default=0.5, help="seconds each I/O step waits")
    p.add_argument("--sweep", default="8,16,32,64,128",
                   help="worker counts for the sync I/O-bound sweep")
    p.add_argument("--seq", type=int, default=300, help="sequential CPU-light workflows")
    p.add_argument("--conc", type=int, default=1000, help="concurrent CPU-light workflows")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sweep-repeat", type=int, default=1,
                   help="runs per sweep point (8 workers x 1,000 x 0.5 s is a minute)")
    p.add_argument("--dir", default=None, help="where the databases go")
    p.add_argument("--sections", default="io,cpu,cpusweep,boot,sweep",
                   help="which parts to run: io (async I/O rows), cpu (async vs sync), "
                        "cpusweep (CPU-light at each --sweep worker count), boot (recovery "
                        "of --boot in-flight workflows at --boot-workers), sweep (sync I/O)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    # internal
    p.add_argument("--child", nargs="?", const="", default=None, help=argparse.SUPPRESS)
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    p.add_argument("--kind", default="io", help=argparse.SUPPRESS)
    p.add_argument("--wf", default="io_async", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--url", default=None, help=argparse.SUPPRESS)
    p.add_argument("--client", default="", help=argparse.SUPPRESS)
    p.add_argument("--starter", default="thread", help=argparse.SUPPRESS)
    p.add_argument("--template", default=None, help=argparse.SUPPRESS)
    p.add_argument("--boot", type=int, default=10000,
                   help="in-flight workflows of the boot rows (section boot)")
    p.add_argument("--boot-workers", default="8,64,128",
                   help="worker counts of the boot rows")
    args = p.parse_args()
    if args.serve:
        serve(Path(args.serve), args.wait)
        return 0
    if args.child is not None:
        print(json.dumps(boot_child(args) if args.kind == "boot" else child(args)))
        return 0
    if args.quick:
        args.n, args.wait, args.seq, args.conc, args.repeat = 50, 0.2, 20, 50, 1
        args.sweep, args.boot, args.boot_workers = "8,32", 200, "8,32"

    t = Table()
    load0 = os.getloadavg()
    started = time.perf_counter()
    common = ["--n", str(args.n), "--wait", str(args.wait)] + (
        ["--dir", args.dir] if args.dir else [])
    n, ideal = args.n, args.wait
    label = f"{n:,} x {ideal:g} s"

    def io_row(key: str, name: str, extra: list[str], starter: str = "loop") -> None:
        out = run_child("--kind", "io", "--starter", starter, *common, *extra)
        t.row(key + ".wall", f"I/O {label}: {name}", "s wall", 2,
              f"ideal {ideal:g} s").add(out["wall"])
        t.row(key + ".ratio", f"I/O {label}: {name}", "x ideal", 1).add(out["wall"] / ideal)
        t.row(key + ".rss", f"I/O {label}: {name}", "MB RSS over idle", 1,
              f"idle {out['idle_kb'] / 1024:.0f} MB").add(out["over_idle_kb"] / 1024)
        t.row(key + ".thr", f"I/O {label}: {name}", "peak threads",
              note=f"{out['workers']} workers").add(out["threads"])
        t.row(key + ".cpu", f"I/O {label}: {name}", "CPU ms/workflow", 2).add(
            out["cpu_s"] / n * 1e3)

    def cpu_row(key: str, name: str, kind: str, wf: str, count: int, workers: int = 0) -> None:
        out = run_child("--kind", kind, "--wf", wf, "--n", str(count), "--workers", str(workers),
                        *(["--dir", args.dir] if args.dir else []))
        t.row(key, name, "steps/s").add(out["steps_per_s"])
        t.row(key + ".cpu", name, "CPU us/step").add(out["cpu_us_per_step"])
        t.row(key + ".csw", name, "context switches/step", 1).add(out["switches_per_step"])

    sections = set(args.sections.split(","))
    sweep = [int(x) for x in args.sweep.split(",") if x]
    def boot_row(workers: int, template: Path) -> None:
        out = run_child("--kind", "boot", "--n", str(args.boot), "--workers", str(workers),
                        "--template", str(template), *(["--dir", args.dir] if args.dir else []))
        name = f"boot, {args.boot:,} in-flight, {workers} workers"
        t.row(f"boot{workers}", name, "s to all parked", 2).add(out["parked"])
        t.row(f"boot{workers}.rss", name, "MB RSS over pre-boot", 1,
              f"pre-boot {out['idle_kb'] / 1024:.0f} MB").add(out["over_idle_kb"] / 1024)
        t.row(f"boot{workers}.thr", name, "peak threads").add(out["threads"])

    server: SlowServer | None = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if sections & {"io", "sweep"}:
                try:
                    server = SlowServer(args.wait, Path(tmp))
                except RuntimeError as exc:
                    t.note("http.skip", "I/O HTTP rows", f"skipped: {exc}")
            url = server.url if server is not None else ""
            template = Path(tmp) / "inflight.db"
            if "boot" in sections:
                from bench import build_inflight

                build_inflight(template, args.boot)
            for _ in range(args.repeat):
                if "io" in sections:
                    guarded(t, "aio", "I/O async sleep",
                            lambda: io_row("aio", "async step, asyncio.sleep",
                                           ["--wf", "io_async"]))
                    guarded(t, "aio8", "I/O async sleep, 8 workers", lambda: io_row(
                        "aio8", "async step, asyncio.sleep, 8 workers",
                        ["--wf", "io_async", "--workers", "8"]))
                    guarded(t, "aio1", "I/O async sleep, app.start", lambda: io_row(
                        "aio1", "async step, asyncio.sleep, started by app.start one by one",
                        ["--wf", "io_async"], starter="thread"))
                if "io" in sections and server is not None:
                    guarded(t, "ahttp", "I/O async HTTP aiohttp", lambda: io_row(
                        "ahttp", "async step, HTTP (aiohttp)",
                        ["--wf", "http_async", "--url", url, "--client", "aiohttp"]))
                    guarded(t, "shttp", "I/O async HTTP stdlib", lambda: io_row(
                        "shttp", "async step, HTTP (asyncio streams)",
                        ["--wf", "http_async", "--url", url, "--client", "stdlib"]))
                if "cpu" in sections:
                    for kind, name in (("seq", f"CPU-light sequential {args.seq}x10"),
                                       ("conc", f"CPU-light concurrent {args.conc}x10")):
                        count = args.seq if kind == "seq" else args.conc
                        guarded(t, f"{kind}.sync", name + " sync",
                                lambda k=kind, nm=name, c=count: cpu_row(
                                    f"{k}.sync", nm + ", sync", k, "ten", c))
                        guarded(t, f"{kind}.async", name + " async",
                                lambda k=kind, nm=name, c=count: cpu_row(
                                    f"{k}.async", nm + ", async", k, "aten", c))
                if "boot" in sections:
                    # What more workers cost at boot: every in-flight workflow is claimed,
                    # replayed and parked again, up to --workers at once (readers, stacks).
                    for w in [int(x) for x in args.boot_workers.split(",") if x]:
                        guarded(t, f"boot{w}", f"boot {w}", lambda w=w: boot_row(w, template))
                if "cpusweep" in sections:
                    # What more workers cost CPU-bound work: the same concurrent sync run.
                    for w in sweep:
                        guarded(t, f"csw{w}", f"CPU-light sweep {w}", lambda w=w: cpu_row(
                            f"csw{w}", f"CPU-light concurrent {args.conc}x10, sync, "
                            f"{w} workers", "conc", "ten", args.conc, w))
            for _ in range(args.sweep_repeat if "sweep" in sections else 0):
                guarded(t, "sync", "I/O sync sleep default", lambda: io_row(
                    "sync", "sync step, time.sleep, default workers", ["--wf", "io_sync"]))
                for w in sweep:
                    guarded(t, f"sync{w}", f"I/O sync sleep {w}", lambda w=w: io_row(
                        f"sync{w}", f"sync step, time.sleep, {w} workers",
                        ["--wf", "io_sync", "--workers", str(w)]))
                guarded(t, "mixed", "I/O mixed", lambda: io_row(
                    "mixed", "async workflow, sync step (time.sleep), default workers",
                    ["--wf", "io_mixed"]))
                if server is not None:
                    guarded(t, "uhttp", "I/O sync HTTP", lambda: io_row(
                        "uhttp", f"sync step, HTTP (urllib), {max(sweep)} workers",
                        ["--wf", "http_sync", "--url", url, "--workers", str(max(sweep))]))
        finally:
            if server is not None:
                server.stop()

    for kind in ("seq", "conc"):
        a, s = t.get(f"{kind}.async"), t.get(f"{kind}.sync")
        if a and s:
            t.row(f"{kind}.ratio", f"CPU-light {kind}: async / sync", "ratio", 2).add(a / s)
    load1 = os.getloadavg()
    print(t.render(args.markdown))
    print()
    for line in machine(args.dir):
        print(line)
    print(f"load average {load0[0]:.2f} before, {load1[0]:.2f} after; "
          f"{time.perf_counter() - started:.0f} s")
    print(targets(t))
    return 1 if t.failed else 0


def targets(t: Table) -> str:
    lines = ["targets (issue 10, default settings, 2 cores):"]

    def check(name: str, value: float | None, ok: bool, fmt: str) -> None:
        shown = "not measured" if value is None else fmt.format(value)
        verdict = "-" if value is None else ("met" if ok else "MISSED")
        lines.append(f"  {name}: {shown} ({verdict})")

    ratio = t.get("aio.ratio")
    check("async I/O-bound wall within 3x the ideal (1.5 s for 0.5 s)", ratio,
          ratio is not None and ratio <= 3.0, "{:.1f}x ideal")
    rss = t.get("aio.rss")
    check("async I/O-bound RSS over idle < 30 MB", rss, rss is not None and rss < 30,
          "{:.1f} MB")
    for kind in ("seq", "conc"):
        r = t.get(f"{kind}.ratio")
        check(f"async CPU-light {kind} steps/s within 20% of sync", r,
              r is not None and r >= 0.8, "{:.2f} of sync")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
