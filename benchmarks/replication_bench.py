"""Cost of replicated steps against plain ones, with a real litestream and a loopback
S3 server (moto), measured in the same run; plus the sync barrier alone.

    .venv/bin/python benchmarks/replication_bench.py [--n 200] [--repeat 3]

Each row: median over --repeat runs (min, max). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge  # noqa: E402


def moto() -> tuple[str, object]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return f"http://127.0.0.1:{port}", server


def make_app() -> tuple[edge.App, object, object]:
    app = edge.App("repbench")

    @app.step(name="plain")
    def plain(i: int) -> int:
        return i

    @app.step(name="safe", replicated=True)
    def safe(i: int) -> int:
        return i

    @app.workflow(name="plain_wf")
    def plain_wf(i: int) -> int:
        return plain(i)

    @app.workflow(name="safe_wf")
    def safe_wf(i: int) -> int:
        return safe(i)

    return app, plain_wf, safe_wf


def per_workflow(app: edge.App, fn: object, n: int, tag: str) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        app.start(fn, i, id=f"{tag}-{i}").result(timeout=60)  # type: ignore[arg-type]
    return (time.perf_counter() - t0) / n


def run(replica: str, n: int) -> tuple[float, float, float]:
    app, plain_wf, safe_wf = make_app()
    with tempfile.TemporaryDirectory() as d, edge.Node(app, data_dir=d, replica=replica,
                                                       workers=1, sync_interval=1.0) as node:
        tag = uuid.uuid4().hex[:6]
        plain = per_workflow(app, plain_wf, n, "p" + tag)
        safe = per_workflow(app, safe_wf, n, "s" + tag)
        sidecar = node.replication.sidecar  # type: ignore[union-attr]
        t0 = time.perf_counter()
        for _ in range(n):
            sidecar.sync()  # type: ignore[union-attr]
        barrier = (time.perf_counter() - t0) / n
    return plain, safe, barrier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    endpoint, server = moto()
    import boto3

    rows = []
    try:
        for name in ("s3 (moto, loopback)", "file"):
            results = []
            for _ in range(args.repeat):
                if name.startswith("s3"):
                    bucket = f"b{uuid.uuid4().hex[:10]}"
                    boto3.client("s3", endpoint_url=endpoint,
                                 region_name="us-east-1").create_bucket(Bucket=bucket)
                    replica = f"s3://{bucket}/site?endpoint={endpoint}"
                else:
                    replica = f"file://{tempfile.mkdtemp()}/replica"
                results.append(run(replica, args.n))
            for i, label in enumerate(("1-step workflow, plain step",
                                       "1-step workflow, replicated step",
                                       "sync barrier alone")):
                vals = [r[i] * 1e3 for r in results]
                rows.append((f"{name}: {label}", statistics.median(vals), min(vals), max(vals)))
    finally:
        server.stop()  # type: ignore[attr-defined]
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'median ms':>9}  {'min':>7}  {'max':>7}")
    for label, med, lo, hi in rows:
        print(f"{label:<{w}}  {med:>9.2f}  {lo:>7.2f}  {hi:>7.2f}")


if __name__ == "__main__":
    main()
