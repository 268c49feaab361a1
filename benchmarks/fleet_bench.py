"""The fleet on one machine: N sites (default 50) in one moto bucket, read by `edge fleet`.

    .venv/bin/python benchmarks/fleet_bench.py [--sites 50] [--workflows 200] [--repeat 3]

Each site is a real edge database (a real Node ran --workflows 3-step workflows; the
file is copied per site), a real lease written by ``Lease.acquire`` and its epoch
uploaded by a real ``litestream replicate -once``. The fleet reads the bucket through
a loopback TCP proxy that counts the HTTP requests and the bytes the bucket sent
(boto3 and every ``litestream restore`` child go through it).

Rows (median over --repeat rounds, min, max): the first read (empty cache: every site
restored), a refresh with nothing changed, a refresh with one site changed, and the
baseline measured in the same run: one ``litestream restore`` of one site alone.

With ``--vfs-extension PATH`` (the ``litestream-vfs.so`` of PyPI ``litestream-vfs``
0.5.17; default: ``litestream_vfs.loadable_path()`` when that package is importable)
the same reads are also done the other way: the site summary's three queries through
the Litestream VFS, in the ``sqlite3`` shell (the stdlib module cannot load extensions
here and apsw 3.54.1 cannot open a VFS replica, see RESULTS.md), with a hydration file
per site kept between reads. Both ways skip a site whose fingerprint did not change,
so the A/B rows are the reads of changed sites: all of them on the first read, one on
the refresh. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge  # noqa: E402
from edge.fleet.bucket import site_target  # noqa: E402
from edge.fleet.cache import SiteCache  # noqa: E402
from edge.fleet.report import Fleet  # noqa: E402
from edge.fleet.sites import LeaseJudge  # noqa: E402
from edge.replication import (  # noqa: E402
    Lease,
    ReplicaTarget,
    child_env,
    find_litestream,
    parse_replica_url,
    restore,
)


class CountingProxy:
    """TCP proxy to ``upstream``; counts request lines sent and bytes received."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = 0
        self.lists = 0
        self.down = 0
        self.up = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> tuple[int, int, int, int]:
        with self.lock:
            out = (self.requests, self.lists, self.down, self.up)
            self.requests = self.lists = self.down = self.up = 0
        return out

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        tail = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    if upward:
                        self.up += len(data)
                        # Request lines: "<METHOD> <target> HTTP/1.1\r\n" (bodies here
                        # are LTX pages and JSON: they never hold that sequence).
                        both = tail + data
                        self.requests += both.count(b" HTTP/1.1\r\n")
                        # ListObjectsV2 (a class A request, priced like a PUT).
                        self.lists += both.count(b"list-type=2")
                        tail = data[-16:]
                    else:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def moto() -> tuple[int, Any]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return port, server


def make_app() -> edge.App:
    app = edge.App("fleetbench")

    @app.step(name="work")
    def work(i: int, s: int) -> int:
        return i * 10 + s

    @app.workflow(name="job")
    def job(i: int) -> int:
        return sum(work(i, s) for s in range(3))

    @app.workflow(name="fails")
    def fails(i: int) -> int:
        raise ValueError(i)

    return app


def run_node(app: edge.App, data_dir: Path, n: int, tag: str) -> None:
    node = edge.Node(app, data_dir=data_dir, workers=4, listen=None)
    node.start()
    try:
        ids = [node.verbs.start_workflow("job", [i], id=f"{tag}-{i}")[0] for i in range(n)]
        ids.append(node.verbs.start_workflow("fails", [0], id=f"{tag}-fail")[0])
        deadline = time.monotonic() + 120
        while not all(node.store.get_workflow(w).status in ("SUCCEEDED", "FAILED")  # type: ignore[union-attr]
                      for w in ids):
            if time.monotonic() > deadline:
                raise RuntimeError("site workflows did not finish")
            time.sleep(0.05)
    finally:
        node.stop(grace=2.0)


def replicate_once(db: Path, target: ReplicaTarget, work: Path) -> None:
    import json

    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "once.yml"
    entry = {"path": str(db), "replica": target.litestream_replica_config(1, 1.0)}
    cfg.write_text(json.dumps({"dbs": [entry]}))
    proc = subprocess.run([find_litestream(), "replicate", "-once", "-config", str(cfg),
                           "-no-expand-env"], capture_output=True, env=child_env(target),
                          timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode())


SUMMARY_SQL = """
SELECT status, count(*) FROM workflows GROUP BY status;
SELECT count(*) FROM workflows WHERE status = 'FAILED'
  AND updated_at >= strftime('%s','now') - 86400;
SELECT id, workflow, waiting_for, updated_at FROM workflows WHERE status = 'WAITING'
  ORDER BY updated_at, id LIMIT 1;
"""


def vfs_read(ext: str, bucket: str, proxy_port: int, site: str, hydration: Path) -> str:
    """The site summary through the Litestream VFS (one sqlite3 shell process)."""
    url = (f"s3://{bucket}/sites/{site}/e1?endpoint=http://127.0.0.1:{proxy_port}"
           "&region=us-east-1&forcePathStyle=true")
    env = dict(os.environ, LITESTREAM_REPLICA_URL=url, LITESTREAM_HYDRATION_ENABLED="true",
               LITESTREAM_HYDRATION_PATH=str(hydration))
    env.pop("AWS_CA_BUNDLE", None)
    script = (f".load {ext} sqlite3_litestreamvfs_init\n.open file:{site}.db?vfs=litestream\n"
              f"{SUMMARY_SQL}")
    proc = subprocess.run(["sqlite3", "-bail"], input=script, capture_output=True, text=True,
                          env=env, cwd=hydration.parent, timeout=120, check=False)
    if proc.returncode != 0 or "SUCCEEDED" not in proc.stdout:
        raise RuntimeError(f"VFS read of {site} failed: {proc.stderr or proc.stdout}")
    return proc.stdout


def find_vfs(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    try:
        import litestream_vfs  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(litestream_vfs.loadable_path())


def stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--workflows", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--vfs-extension", default=None)
    args = ap.parse_args()
    ext = find_vfs(args.vfs_extension)

    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                      AWS_DEFAULT_REGION="us-east-1")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("edge").setLevel(logging.ERROR)
    port, server = moto()
    proxy = CountingProxy(port)
    bucket = f"fleet-{uuid.uuid4().hex[:12]}"
    import boto3

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    direct = parse_replica_url(f"s3://{bucket}/sites?endpoint=http://127.0.0.1:{port}")
    counted = f"s3://{bucket}/sites?endpoint=http://127.0.0.1:{proxy.port}"
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    app = make_app()
    try:
        t0 = time.perf_counter()
        template = tmp / "template"
        run_node(app, template, args.workflows, "t")
        db_bytes = (template / "edge.db").stat().st_size
        names = [f"site-{i:04d}" for i in range(args.sites)]
        for name in names:
            d = tmp / "sites" / name
            d.mkdir(parents=True)
            shutil.copy(template / "edge.db", d / "edge.db")
            target = site_target(direct, name)
            assert Lease(target, f"node-{name}", ttl=10.0).acquire(None).held
            replicate_once(d / "edge.db", target, tmp / "ls" / name)
        build = time.perf_counter() - t0

        rows: dict[str, list[tuple[float, int, int, int]]] = {}

        def measure(label: str, fn: Callable[[], Any]) -> Any:
            proxy.reset()
            started = time.perf_counter()
            out = fn()
            took = time.perf_counter() - started
            req, lists, down, _up = proxy.reset()
            rows.setdefault(label, []).append((took, req, down, lists))
            return out

        def new_fleet(cache: Path) -> Fleet:
            root = parse_replica_url(counted)
            return Fleet(root, SiteCache(cache), LeaseJudge(time.monotonic),
                         parallel=args.parallel)

        for r in range(args.repeat):
            cache = tmp / f"cache-{r}"
            fleet = new_fleet(cache)
            first = measure("first read (empty cache)", fleet.read_all)
            assert sum(1 for s in first["sites"] if s["read"]["restored"]) == args.sites
            same = measure("refresh, nothing changed", fleet.read_all)
            assert not any(s["read"]["restored"] for s in same["sites"])
            changed = names[r % len(names)]
            run_node(app, tmp / "sites" / changed, 10, f"r{r}")
            replicate_once(tmp / "sites" / changed / "edge.db", site_target(direct, changed),
                           tmp / "ls" / changed)
            one = measure("refresh, one site changed", fleet.read_all)
            assert [s["site"] for s in one["sites"] if s["read"]["restored"]] == [changed]
            out = tmp / f"alone-{r}" / "edge.db"
            measure("baseline: one litestream restore alone",
                    lambda out=out, name=names[-1]: restore(
                        site_target(parse_replica_url(counted), name), out))
            if ext is None:
                continue
            from concurrent.futures import ThreadPoolExecutor

            hyd = tmp / f"hydration-{r}"
            hyd.mkdir()

            def vfs_all(hyd: Path = hyd) -> None:
                with ThreadPoolExecutor(args.parallel) as pool:
                    list(pool.map(lambda n: vfs_read(ext, bucket, proxy.port, n,
                                                     hyd / f"{n}.hydrated"), names))

            measure("VFS: read every site (empty hydration)", vfs_all)
            changed = names[(r + 1) % len(names)]
            run_node(app, tmp / "sites" / changed, 10, f"v{r}")
            replicate_once(tmp / "sites" / changed / "edge.db", site_target(direct, changed),
                           tmp / "ls" / changed)
            measure("VFS: read the one changed site",
                    lambda n=changed, hyd=hyd: vfs_read(ext, bucket, proxy.port, n,
                                                        hyd / f"{n}.hydrated"))
            measure("restore-into-cache: read the one changed site",
                    lambda n=changed, fleet=fleet: fleet.read_site(n))

        print(f"{args.sites} sites, {args.workflows + 1} workflows each ({db_bytes / 1024:.0f} "
              f"KiB database), built in {build:.1f} s; {args.parallel} sites read at once; "
              f"median of {args.repeat} (min, max)")
        print(f"{'measure':42} {'seconds':>22} {'requests':>9} {'LISTs':>6} {'KiB down':>10} "
              f"{'ms/site':>8} {'req/site':>8} {'KiB/site':>8}")
        medians: dict[str, tuple[float, float, float]] = {}
        for label, samples in rows.items():
            med, lo, hi = stats([s[0] for s in samples])
            req = statistics.median(s[1] for s in samples)
            lists = statistics.median(s[3] for s in samples)
            down = statistics.median(s[2] for s in samples) / 1024
            per = 1 if ("one" in label and "refresh" not in label) else args.sites
            medians[label] = (med, req, down)
            print(f"{label:42} {med:7.3f} ({lo:6.3f}, {hi:6.3f}) {req:9.0f} {lists:6.0f} "
                  f"{down:10.1f} "
                  f"{med / per * 1000:8.1f} {req / per:8.2f} {down / per:8.2f}")
        first_m = medians["first read (empty cache)"]
        same_m = medians["refresh, nothing changed"]
        one_m = medians["refresh, one site changed"]
        print(f"refresh (nothing changed) / first read: time {same_m[0] / first_m[0]:.3f}, "
              f"bytes {same_m[2] / first_m[2]:.3f}")
        print(f"refresh (one changed) - refresh (none): {one_m[0] - same_m[0]:+.3f} s, "
              f"{one_m[1] - same_m[1]:+.0f} requests, {one_m[2] - same_m[2]:+.1f} KiB")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
