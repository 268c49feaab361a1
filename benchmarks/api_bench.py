"""HTTP API benchmark: RSS of an idle node and latency of two verbs over one keep-alive connection.

    .venv/bin/python benchmarks/api_bench.py                        # this tree only
    .venv/bin/python benchmarks/api_bench.py --baseline /tmp/base   # and another tree, interleaved

Each tree is served by an ``edge run --app api_bench:app`` subprocess (stdlib
http.server, HTTP/1.1 keep-alive), with ``PYTHONPATH`` set to that tree, so a
baseline (e.g. ``git archive <commit> | tar -x -C /tmp/base``) is measured in the same run
on the same machine. Runs of the trees are interleaved (``--repeat``), and each figure is the
median over the runs. Rows:

- RSS idle: VmRSS of the node after /readyz answers and a short settle;
- RSS after: VmRSS after the latency runs (the models and the spec are built by then);
- GET /v1/workflows/{id} p50/p99: describe of a finished one-step workflow;
- POST /v1/workflows p50/p99: start of a new workflow (201), its run happening meanwhile;
- GET /openapi.json p50: the per-node spec.

Nothing is asserted: the machine is shared; the table is the result. Ratios are this tree
over the baseline.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import edge

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

app = edge.App("api-bench")


@app.step()
def add(a: int, b: int) -> int:
    return a + b


@app.workflow()
def one(n: int) -> int:
    return add(n, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _request(conn: http.client.HTTPConnection, method: str, path: str,
             body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edge run exited {proc.returncode}: {log.read_text()[-800:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                if _request(conn, "GET", "/readyz")[0] == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"edge run not ready: {log.read_text()[-800:]}")


def _timed(conn: http.client.HTTPConnection, n: int, method: str, path: str,
           body: bytes | None = None, want: int = 200) -> list[float]:
    out = []
    for i in range(n):
        b = body.replace(b"@", str(i).encode()) if body is not None else None
        t0 = time.perf_counter()
        status, raw = _request(conn, method, path, b)
        out.append((time.perf_counter() - t0) * 1e6)
        if status != want:
            raise RuntimeError(f"{method} {path}: {status} {raw[:200]!r}")
    return out


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_tree(tree: Path, n: int, settle: float, tag: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        port = _free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(tree), str(HERE)])
        cmd = [sys.executable, "-c", "from edge.cli import main; main()", "run", "--app",
               "api_bench:app", "--data-dir", str(Path(d) / "data"), "--listen",
               f"127.0.0.1:{port}", "--workers", "4"]
        log = Path(d) / "node.log"
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=d)
        try:
            _wait_ready(port, proc, log)
            time.sleep(settle)
            out = {"rss_idle": _rss_mb(proc.pid)}
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            body = json.dumps({"workflow": "one", "input": {"n": 1}, "id": "w-0"}).encode()
            status, raw = _request(conn, "POST", "/v1/workflows", body)
            if status not in (200, 201):
                raise RuntimeError(raw.decode())
            deadline = time.monotonic() + 30
            while json.loads(_request(conn, "GET", "/v1/workflows/w-0")[1])["status"] \
                    != "SUCCEEDED":
                if time.monotonic() > deadline:
                    raise TimeoutError("w-0 did not finish")
                time.sleep(0.02)
            get = _timed(conn, n, "GET", "/v1/workflows/w-0")
            post = _timed(conn, n, "POST", "/v1/workflows", json.dumps(
                {"workflow": "one", "input": {"n": 2}, "id": f"{tag}-@"}).encode(), want=201)
            spec = _timed(conn, max(20, n // 20), "GET", "/openapi.json")
            conn.close()
            out.update(get_p50=_pct(get, 0.5), get_p99=_pct(get, 0.99),
                       post_p50=_pct(post, 0.5), post_p99=_pct(post, 0.99),
                       spec_p50=_pct(spec, 0.5), rss_after=_rss_mb(proc.pid))
            return out
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


ROWS = [("rss_idle", "RSS, idle node", "MB"),
        ("rss_after", "RSS, after the runs", "MB"),
        ("get_p50", "GET /v1/workflows/{id} p50", "us"),
        ("get_p99", "GET /v1/workflows/{id} p99", "us"),
        ("post_p50", "POST /v1/workflows p50", "us"),
        ("post_p99", "POST /v1/workflows p99", "us"),
        ("spec_p50", "GET /openapi.json p50", "us")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, help="another source tree to measure alike")
    ap.add_argument("-n", type=int, default=2000, help="requests per verb per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--settle", type=float, default=1.0)
    args = ap.parse_args()
    trees = {"this": ROOT}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    for r in range(args.repeat):
        for name, tree in trees.items():
            runs[name].append(run_tree(tree, args.n, args.settle, f"r{r}"))
    med = {k: {key: statistics.median(x[key] for x in v) for key, _, _ in ROWS}
           for k, v in runs.items()}
    head = f"{'measure':34} {'unit':4} {'this':>10}"
    if "baseline" in med:
        head += f" {'baseline':>10} {'ratio':>7}"
    print(head)
    for key, label, unit in ROWS:
        line = f"{label:34} {unit:4} {med['this'][key]:10.1f}"
        if "baseline" in med:
            base = med["baseline"][key]
            line += f" {base:10.1f} {med['this'][key] / base if base else float('nan'):7.2f}"
        print(line)
    print(f"(median of {args.repeat} runs, {args.n} requests per verb per run, one keep-alive "
          f"connection, stdlib http.server; load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
