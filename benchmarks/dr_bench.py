"""Disaster-recovery figures at realistic settings and sizes, measured in one run.

    .venv/bin/python benchmarks/dr_bench.py rto [--repeat 3] [--configs 10:3,8:2.5,7:2,6:2]
    .venv/bin/python benchmarks/dr_bench.py restore [--sizes 100,1000]
    .venv/bin/python benchmarks/dr_bench.py ack [--n 200]

``rto``: box loss (SIGKILL of the node's process group, data directory deleted) with
real `edge run` processes, real litestream and a moto bucket, for lease TTL:renew pairs
(everything else at its default: sync interval 1 s). Two cases: a replacement node
started at the moment of the kill (what a StatefulSet does once the pod is gone), and a
standby already running beside it. RTO = kill to the new node's /readyz 200. Each row
also gives the lease requests per site and month (renewals are conditional PUTs; a
standby polls with GETs) and the S3 hiccup the holder tolerates before it fences its
sidecar (TTL - renew).

``restore``: `edge restore` (litestream restore + integrity check) of a database of
the given sizes in MB from the moto bucket, with the copy's PRAGMA integrity_check.

``ack``: cost per start of ``ack: replicated`` against local acks on one node
(sequential and 16 concurrent clients).

Nothing is asserted; medians with (min, max).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dr.conftest import SiteNode  # noqa: E402  (the DR tests' `edge run` launcher)

MONTH = 30 * 86400
PUT_PER_1K, GET_PER_1K = 0.005, 0.0004  # S3 Standard list prices, USD


def moto() -> tuple[str, Any]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return f"http://127.0.0.1:{port}", server


def bucket(endpoint: str) -> str:
    import boto3

    name = f"dr-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def med(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ({min(values):5.2f}, {max(values):5.2f})"


def defaults_args(ttl: float, renew: float) -> list[str]:
    # SiteNode passes the DR tests' fast timings; these (later) flags win.
    return ["--sync-interval", "1", "--lease-ttl", str(ttl), "--lease-renew", str(renew)]


def wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.02)


def one_rto(tmp: Path, replica: str, ttl: float, renew: float, hot: bool, tag: str) -> float:
    effects = tmp / f"{tag}.effects"
    a = SiteNode(tmp, f"{tag}-a", tmp / f"{tag}-a", replica, effects, defaults_args(ttl, renew))
    b: SiteNode | None = None
    try:
        a.wait_ready(60)
        for i in range(3):
            a.start("job", i, f"{tag}-{i}")
        a.wait_all([f"{tag}-{i}" for i in range(3)])
        if hot:
            b = SiteNode(tmp, f"{tag}-b", tmp / f"{tag}-b", replica, effects,
                         defaults_args(ttl, renew))
            wait(lambda: (b.get("/readyz")[1] or {}).get("state") == "standby", 30, "standby")
        time.sleep(renew * 0.5)  # kill halfway between two renewals (the average case)
        killed = time.monotonic()
        a.kill_group()
        shutil.rmtree(a.data_dir)
        if b is None:
            b = SiteNode(tmp, f"{tag}-b", tmp / f"{tag}-b", replica, effects,
                         defaults_args(ttl, renew))
        node = b
        wait(lambda: node.ready(), 60, "new node ready")
        rto = time.monotonic() - killed
        assert b.show(f"{tag}-2")["status"] == "SUCCEEDED"
        return rto
    finally:
        a.stop_quietly()
        if b is not None:
            b.stop_quietly()


def cmd_rto(args: argparse.Namespace) -> None:
    endpoint, server = moto()
    name = bucket(endpoint)
    tmp = Path(tempfile.mkdtemp(prefix="dr-rto-"))
    try:
        configs = [tuple(float(x) for x in c.split(":")) for c in args.configs.split(",")]
        print(f"box-loss RTO, kill -> new node ready, s; median of {args.repeat} (min, max); "
              "sync interval 1 s")
        print(f"{'ttl:renew':10} {'replacement at kill':>22} {'standby running':>22} "
              f"{'renew PUTs/mo':>14} {'$/site/mo':>9} {'standby GETs/mo':>15} "
              f"{'hiccup s':>8}")
        for ttl, renew in configs:
            cold, hot = [], []
            for r in range(args.repeat):
                for is_hot, out in ((False, cold), (True, hot)):
                    tag = f"t{ttl:g}r{renew:g}-{'hot' if is_hot else 'cold'}-{r}"
                    replica = f"s3://{name}/{tag}?endpoint={endpoint}"
                    out.append(one_rto(tmp, replica, ttl, renew, is_hot, tag))
            puts = MONTH / renew
            gets = MONTH / min(1.0, renew)
            print(f"{ttl:g}:{renew:g}{'':6} {med(cold):>22} {med(hot):>22} {puts:14,.0f} "
                  f"{puts / 1000 * PUT_PER_1K:9.2f} {gets:15,.0f} {ttl - renew:8.1f}",
                  flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def build_db(path: Path, megabytes: int) -> None:
    """An edge-shaped database of about ``megabytes`` MB (rows of 4 KiB payloads)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, v BLOB)")
    rows = megabytes * 1024 * 1024 // 4200
    payload = os.urandom(4096)
    for start in range(0, rows, 5000):
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO blobs (v) VALUES (?)",
                        ((payload,) for _ in range(min(5000, rows - start))))
        con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def cmd_restore(args: argparse.Namespace) -> None:
    from edge.replication import child_env, find_litestream, parse_replica_url

    endpoint, server = moto()
    name = bucket(endpoint)
    tmp = Path(tempfile.mkdtemp(prefix="dr-restore-"))
    edge_bin = str(Path(sys.executable).with_name("edge"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test")
    try:
        print(f"{'size':>8} {'db bytes':>14} {'upload s':>9} {'edge restore s':>22} {'MB/s':>7}")
        for mb in (int(x) for x in args.sizes.split(",")):
            db = tmp / f"db{mb}" / "edge.db"
            db.parent.mkdir()
            build_db(db, mb)
            size = db.stat().st_size
            url = f"s3://{name}/size{mb}?endpoint={endpoint}"
            target = parse_replica_url(url)
            cfg = tmp / f"once{mb}.yml"
            cfg.write_text(json.dumps({"dbs": [{"path": str(db), "replica":
                                                target.litestream_replica_config(1, 1.0)}]}))
            t0 = time.perf_counter()
            subprocess.run([find_litestream(), "replicate", "-once", "-config", str(cfg),
                            "-no-expand-env"], check=True, capture_output=True,
                           env=child_env(target, env), timeout=1800)
            upload = time.perf_counter() - t0
            times = []
            for r in range(args.repeat):
                out = tmp / f"out{mb}-{r}.db"
                t0 = time.perf_counter()
                subprocess.run([edge_bin, "restore", "--replica", url, "--output", str(out)],
                               check=True, capture_output=True, env=env, timeout=1800)
                times.append(time.perf_counter() - t0)
                con = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
                assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
                con.close()
                out.unlink()
            rate = size / 1e6 / statistics.median(times)
            print(f"{mb:6d}MB {size:14,d} {upload:9.1f} {med(times):>22} {rate:7.1f}",
                  flush=True)
            shutil.rmtree(db.parent)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def cmd_ack(args: argparse.Namespace) -> None:
    endpoint, server = moto()
    name = bucket(endpoint)
    tmp = Path(tempfile.mkdtemp(prefix="dr-ack-"))
    node = SiteNode(tmp, "ack", tmp / "ack", f"s3://{name}/ack?endpoint={endpoint}",
                    tmp / "effects", defaults_args(7, 2))
    try:
        node.wait_ready(60)

        refused: dict[str, int] = {}

        def post(body: dict[str, Any]) -> None:
            """One start; a 503 or a reset connection is retried with the same id (the
            documented client behaviour) and counted."""
            for _ in range(20):
                req = urllib.request.Request(node.url + "/v1/workflows",
                                             json.dumps(body).encode(),
                                             {"Content-Type": "application/json"},
                                             method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
                        assert r.status in (200, 201)
                        return
                except urllib.error.HTTPError as exc:
                    code = json.loads(exc.read() or b"{}").get("error", {}).get("code", "?")
                    key = f"{exc.code} {code}"
                except ConnectionError as exc:
                    key = type(exc).__name__
                refused[key] = refused.get(key, 0) + 1
            raise RuntimeError(f"start {body['id']} refused 20 times: {refused}")

        def sequential(ack: str, r: int) -> float:
            t0 = time.perf_counter()
            for i in range(args.n):
                post({"workflow": "waiter", "id": f"s-{ack}-{r}-{i}", "ack": ack})
            return (time.perf_counter() - t0) / args.n * 1000

        def concurrent(ack: str, r: int, clients: int = 8) -> float:
            per = args.n // clients
            t0 = time.perf_counter()
            threads = [threading.Thread(target=lambda c=c: [
                post({"workflow": "waiter", "id": f"c-{ack}-{r}-{c}-{i}", "ack": ack})
                for i in range(per)]) for c in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return per * clients / (time.perf_counter() - t0)

        rows: dict[str, list[float]] = {}
        for r in range(args.repeat):
            for ack in ("local", "replicated"):
                rows.setdefault(f"sequential, ack {ack}: ms per start", []).append(
                    sequential(ack, r))
                rows.setdefault(f"8 clients, ack {ack}: starts/s", []).append(
                    concurrent(ack, r))
        print(f"{'measure':42} {'median (min, max)':>22}")
        for label, vals in rows.items():
            print(f"{label:42} {med(vals):>22}")
        seq_l = statistics.median(rows["sequential, ack local: ms per start"])
        seq_r = statistics.median(rows["sequential, ack replicated: ms per start"])
        con_l = statistics.median(rows["8 clients, ack local: starts/s"])
        con_r = statistics.median(rows["8 clients, ack replicated: starts/s"])
        print(f"replicated / local: sequential {seq_r / seq_l:.1f}x the latency; "
              f"8 clients {con_r / con_l:.2f}x the throughput")
        print(f"answers retried (same id): {refused or 'none'}")
    finally:
        node.stop_quietly()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("rto")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--configs", default="10:3,8:2.5,7:2,6:2")
    p = sub.add_parser("restore")
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--repeat", type=int, default=2)
    p = sub.add_parser("ack")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                      AWS_DEFAULT_REGION="us-east-1")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    {"rto": cmd_rto, "restore": cmd_restore, "ack": cmd_ack}[args.cmd](args)


if __name__ == "__main__":
    main()
