"""Bad replica input through the CLI: one clear line, the documented exit code, no
traceback, the local database untouched. And `edge restore` for forensics."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

from tests.dr.conftest import EDGE, ROOT, free_port

VENV_SITE = next((Path(sys.executable).parent.parent / "lib").glob("python3*/site-packages"))


def run(args: list[str], env: dict[str, str] | None = None, exe: list[str] | None = None,
        timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(exe or [EDGE]), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def edge_run(data: Path, replica: str, *extra: str, **kw) -> subprocess.CompletedProcess[str]:
    return run(["run", "--app", "tests.dr.site_app:app", "--data-dir", str(data), "--replica",
                replica, "--listen", f"127.0.0.1:{free_port()}", "--lease-ttl", "3",
                "--lease-renew", "1", *extra], **kw)


def one_clear_error(p: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)


def digest(data: Path) -> str:
    h = hashlib.sha256()
    for name in ("edge.db", "edge.db-wal"):
        f = data / name
        if f.exists():
            h.update(f.read_bytes())
    return h.hexdigest()


def make_local_db(data: Path) -> None:
    import edge
    from tests.dr import site_app

    with edge.Node(site_app.app, data_dir=data, workers=1):
        site_app.app.start(site_app.job, 1, id="local-1").result(timeout=30)


def test_malformed_replica_url_exits_2(tmp_path):
    data = tmp_path / "d"
    make_local_db(data)
    before = digest(data)
    p = edge_run(data, "ftp://bucket/x")
    one_clear_error(p, 2, "--replica")
    assert digest(data) == before


def test_missing_bucket_with_no_local_file_refuses(tmp_path, moto_endpoint):
    p = edge_run(tmp_path / "d", f"s3://no-such-bucket/x?endpoint={moto_endpoint}")
    one_clear_error(p, 1, "no-such-bucket")
    assert not (tmp_path / "d" / "edge.db").exists()


def test_missing_litestream_binary(tmp_path, bucket, moto_endpoint):
    data = tmp_path / "d"
    make_local_db(data)
    before = digest(data)
    # A python outside the venv's bin directory, and a PATH without litestream.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").symlink_to(Path(sys.executable).resolve())
    env = {"PATH": f"{fake}:/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{VENV_SITE}"}
    p = edge_run(data, f"s3://{bucket}/x?endpoint={moto_endpoint}", env=env,
                 exe=[str(fake / "python"), "-c", "from edge.cli import main; main()"])
    one_clear_error(p, 1, "litestream")
    assert digest(data) == before


def test_corrupt_replica_is_refused_and_nothing_local_is_created(tmp_path, bucket,
                                                                  moto_endpoint, site):
    a = site.node("a")
    a.wait_ready()
    a.start("job", 1, "c1")
    a.wait_all(["c1"])
    assert a.term() == 0
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="site/e1/")["Contents"]]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(4096))
    p = edge_run(tmp_path / "new-box", site.replica, timeout=120)
    one_clear_error(p, 4)
    assert not (tmp_path / "new-box" / "edge.db").exists()


def test_edge_restore_makes_a_copy_that_show_reads(tmp_path, site):
    a = site.node("a")
    a.wait_ready()
    a.start("job", 7, "r7")
    a.wait_all(["r7"])
    assert a.term() == 0
    copy = tmp_path / "forensics"
    p = run(["restore", "--replica", site.replica, "--output", str(copy / "edge.db")])
    assert p.returncode == 0, p.stderr
    assert "restored epoch 1" in p.stdout
    assert "restoring the newest epoch with data" in p.stderr  # the progress line
    shown = run(["show", "r7", "--data-dir", str(copy), "--json"])
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "SUCCEEDED"
    again = run(["restore", "--replica", site.replica, "--output", str(copy / "edge.db")])
    one_clear_error(again, 2, "already exists")


def test_a_lease_nested_too_deep_is_a_data_error(tmp_path):
    # json.loads raised RecursionError: "bug in edge", exit 1. It is the replica's fault.
    replica = tmp_path / "replica"
    replica.mkdir()
    (replica / "lease.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    p = edge_run(tmp_path / "d", f"file://{replica}")
    one_clear_error(p, 4, "lease", "nests too deep")
    assert "bug in edge" not in p.stderr
    assert not (tmp_path / "d" / "edge.db").exists()
