"""Wall time of one `edge` client command against a running node, against baselines
measured in the same run (a bare interpreter, importing typer, the HTTP call alone).

    .venv/bin/python benchmarks/cli_bench.py [--runs 20] [--tree PATH ...]

Starts `edge run --app examples.shop:app` on a free loopback port (no replica), then
runs each command --runs times as a fresh process and prints median/min/max in ms and
the ratio of the median to the bare interpreter's. ``--tree PATH`` adds an
`edge status` row with PATH first on PYTHONPATH (e.g. an older checkout, for a
before/after row). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
EDGE = str(Path(PY).parent / "edge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(tree: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(PYTHONPATH=str(tree), EDGE_URL=url)
    return env


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(cmd: list[str], env: dict[str, str]) -> None:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()}")


def timed(cmd: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user+sys) milliseconds per run. On a shared machine the CPU time is
    the steadier figure: it does not count waiting for a core."""
    run_once(cmd, env)  # warm the page cache
    wall, cpu = [], []
    for _ in range(runs):
        c0, t0 = _child_cpu(), time.perf_counter()
        run_once(cmd, env)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((_child_cpu() - c0) * 1000)
    return wall, cpu


def start_node(tmp: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [EDGE, "run", "--app", "examples.shop:app", "--data-dir", str(tmp / "data"),
         "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env_for(ROOT, url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("edge run did not become ready")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--tree", action="append", default=[], type=Path,
                    help="also time `edge status` with this source tree on PYTHONPATH")
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = env_for(ROOT, url)
    rows: list[tuple[str, tuple[list[float], list[float]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_node(Path(tmp), url, port)
        try:
            cases = [
                ("bare interpreter (python -c pass)", [PY, "-c", "pass"], env),
                ("import typer", [PY, "-c", "import typer"], env),
                ("import edge.cli (typer, every command declared)",
                 [PY, "-c", "import edge.cli"], env),
                ("import edge.client + GET /v1/status",
                 [PY, "-c", f"import edge.client; edge.client.Client({url!r}).status()"], env),
                ("edge status", [EDGE, "status"], env),
                ("edge status --json", [EDGE, "status", "--json"], env),
                ("edge list", [EDGE, "list"], env),
                ("edge --help", [EDGE, "--help"], env),
            ]
            for tree in args.tree:
                cases.append((f"edge status, tree {tree}", [EDGE, "status"],
                              env_for(tree.resolve(), url)))
            for label, cmd, e in cases:
                rows.append((label, timed(cmd, e, args.runs)))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    base = statistics.median(rows[0][1][0])
    base_cpu = statistics.median(rows[0][1][1]) or 1.0
    print(f"{'measure':<48} {'median ms':>9} {'min':>7} {'max':>7} {'x bare':>7} "
          f"{'cpu ms':>7} {'x bare':>7}")
    for label, (ms, cpu) in rows:
        med, mc = statistics.median(ms), statistics.median(cpu)
        print(f"{label:<48} {med:>9.1f} {min(ms):>7.1f} {max(ms):>7.1f} {med / base:>7.1f} "
              f"{mc:>7.1f} {mc / base_cpu:>7.1f}")
    print(f"({args.runs} runs each, fresh processes; node: edge run, no replica; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
