"""The Litestream supervisor: the real binary against moto S3 (or a directory)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge.errors import ReplicationError
from edge.replication import ReplicaTarget, Sidecar, open_store, parse_replica_url, restore

REPO = Path(__file__).resolve().parents[2]


def make_sidecar(db: Path, target: ReplicaTarget, run_dir: Path, **kw: Any) -> Sidecar:
    kw.setdefault("sync_interval", 0.2)
    kw.setdefault("shutdown_sync_timeout", 2.0)
    kw.setdefault("restart_backoff", (0.1, 1.0))
    return Sidecar(db_path=db, target=target, epoch=kw.pop("epoch", 1), run_dir=run_dir, **kw)


@pytest.fixture
def running(tmp_path, s3_target, add_rows):
    """A started sidecar on a small WAL database; stopped at teardown."""
    db = tmp_path / "data" / "edge.db"
    db.parent.mkdir()
    add_rows(db, 5)
    events: list[tuple[str, dict[str, Any]]] = []
    sc = make_sidecar(db, s3_target, tmp_path / "run", on_event=lambda n, d: events.append((n, d)))
    sc.start()
    yield sc, db, events
    sc.stop(flush=False)


def litestream_pids(config: Path) -> list[int]:
    """Processes whose command line names ``config`` (scanning /proc)."""
    pids = []
    needle = str(config).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and b"replicate" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("which", ["s3", "file"])
def test_replicates_syncs_flushes_on_stop_and_restores(
    tmp_path, request, which, add_rows, count_rows, integrity
):
    target = request.getfixturevalue(f"{which}_target")
    db = tmp_path / "data" / "edge.db"
    db.parent.mkdir()
    add_rows(db, 20)
    sc = make_sidecar(db, target, tmp_path / "run")
    sc.start()
    try:
        assert sc.up and sc.pid is not None
        res = sc.sync(timeout=10)
        assert res.status in ("synced", "no_change") and res.replicated_txid == res.txid >= 1
        assert sc.last_sync_at is not None
        keys = [o.key for o in open_store(target).list_keys("e1/")]
        assert keys and all(k.startswith("e1/") for k in keys)
        assert sc.refresh() is not None  # litestream's own last_sync_at, via GET /list
        assert sc.txid() >= res.txid
        add_rows(db, 7)  # never synced explicitly: the stop must flush it
    finally:
        sc.stop(flush=True)
    assert not sc.up and not litestream_pids(sc.config_path)
    out = tmp_path / "restored" / "edge.db"
    result = restore(target, out)
    assert result.epoch == 1 and result.path == out
    assert count_rows(out) == 27 and integrity(out) == "ok"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700


def test_litestream_writes_private_files_even_beside_a_readable_database(
        tmp_path, file_target, add_rows):
    """The child runs under umask 0077: Litestream gives its files the database's
    mode, and a 0644 file (an older edge's, or one chmod-ed by hand) must not make
    the replica readable to others."""
    db = tmp_path / "data" / "edge.db"
    db.parent.mkdir(mode=0o700)
    add_rows(db, 5)
    os.chmod(db, 0o644)
    sc = make_sidecar(db, file_target, tmp_path / "run")
    sc.start()
    try:
        sc.sync(timeout=10)
    finally:
        sc.stop(flush=True)
    roots = [db.parent / ".edge.db-litestream", Path(file_target.prefix)]
    made = [p for root in roots for p in [root, *root.rglob("*")]]
    assert any(p.is_file() for p in made), made
    readable = [f"{oct(stat.S_IMODE(p.stat().st_mode))} {p}" for p in made
                if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert not readable, "\n".join(readable)


def test_config_is_private_and_names_the_epoch_path(running):
    sc, db, _ = running
    assert stat.S_IMODE(sc.config_path.stat().st_mode) == 0o600
    text = sc.config_path.read_text()
    assert "site-a/e1" in text and '"shutdown-sync-timeout": "2000ms"' in text
    status = sc.status()
    assert status["up"] and status["epoch"] == 1 and status["restarts"] == 0


def test_long_run_dir_gets_a_short_socket_path(tmp_path, s3_target, add_rows):
    db = tmp_path / "edge.db"
    add_rows(db, 1)
    run_dir = tmp_path / ("d" * 60) / ("e" * 60)
    sc = make_sidecar(db, s3_target, run_dir)
    sc.start()
    try:
        assert len(sc.socket_path) < 100 and sc.sync().replicated_txid >= 1
    finally:
        sc.stop()
    assert not Path(sc.socket_path).parent.exists()


def test_concurrent_syncs_are_batched(running, add_rows):
    sc, db, _ = running
    add_rows(db, 3)
    gate = threading.Barrier(16)
    results: list[Any] = []

    def call() -> None:
        gate.wait(timeout=10)
        results.append(sc.sync(timeout=10))

    before = sc.sync_requests
    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 16
    assert sc.sync_requests - before <= 4  # typically 2: one in flight, one for the rest


def test_restarts_with_backoff_after_the_child_is_killed(running, wait_for, add_rows):
    sc, db, events = running
    old = sc.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: sc.restarts >= 1 and sc.up and sc.pid != old, 10, "a restarted litestream")
    assert "exited with status" in (sc.last_error or "")
    add_rows(db, 2)
    assert sc.sync(timeout=10).replicated_txid >= 1
    second = sc.pid
    assert second is not None
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: sc.restarts >= 2 and sc.up and sc.pid != second, 10, "a second restart")
    delays = [d["delay"] for n, d in events if n == "restart_scheduled"]
    assert delays == [0.1, 0.2]  # exponential backoff from restart_backoff=(0.1, 1.0)
    assert [n for n, _ in events].count("ready") == 3


def test_fence_stops_replicating_until_unfenced(running, wait_for):
    sc, _, _ = running
    old = sc.pid
    sc.fence()
    assert not sc.up and sc.pid is None and sc.fenced
    assert not litestream_pids(sc.config_path)
    with pytest.raises(ReplicationError) as err:
        sc.sync(timeout=1)
    assert "fenced" in err.value.message
    assert sc.restarts == 0  # a fence is not a crash
    sc.unfence()
    assert sc.wait_ready(10) and sc.pid != old
    assert sc.sync(timeout=10).replicated_txid >= 1


def test_child_dies_with_a_sigkilled_parent(tmp_path, s3_target, add_rows, wait_for):
    db = tmp_path / "edge.db"
    add_rows(db, 1)
    run_dir = tmp_path / "run"
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            sys.path.insert(0, {str(REPO)!r})
            from pathlib import Path
            from edge.replication import Sidecar, parse_replica_url
            sc = Sidecar(db_path=Path({str(db)!r}), target=parse_replica_url({s3_target.url!r}),
                         epoch=1, run_dir=Path({str(run_dir)!r}), sync_interval=0.2)
            sc.start()
            print("READY", sc.pid, flush=True)
            time.sleep(600)
            """
        )
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().decode()  # the child prints READY within seconds
        assert line.startswith("READY"), line + parent.stderr.read().decode()
        child = int(line.split()[1])
        assert litestream_pids(run_dir / "litestream.yml") == [child]
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait(timeout=10)
        wait_for(lambda: not litestream_pids(run_dir / "litestream.yml"), 10, "orphan to die")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_aws_ca_bundle_is_dropped_for_a_plain_http_endpoint(tmp_path, s3_target, add_rows):
    db = tmp_path / "edge.db"
    add_rows(db, 3)
    env = dict(os.environ, AWS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt")
    sc = make_sidecar(db, s3_target, tmp_path / "run", env=env)
    sc.start()
    try:
        assert sc.sync(timeout=10).replicated_txid >= 1
    finally:
        sc.stop()


def test_aws_ca_bundle_with_https_endpoint_is_a_clear_error(tmp_path, bucket, add_rows):
    db = tmp_path / "edge.db"
    add_rows(db, 1)
    target = parse_replica_url(f"s3://{bucket}/p?endpoint=https://127.0.0.1:9")
    env = dict(os.environ, AWS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt")
    sc = make_sidecar(db, target, tmp_path / "run", env=env)
    with pytest.raises(ReplicationError) as err:
        sc.start()
    assert "AWS_CA_BUNDLE" in err.value.message and "AWS_CA_BUNDLE" in err.value.hint
    assert not sc.up and not litestream_pids(sc.config_path)


def test_missing_binary_is_a_clear_error(tmp_path, s3_target):
    sc = make_sidecar(
        tmp_path / "edge.db",
        s3_target,
        tmp_path / "run",
        litestream_bin=str(tmp_path / "nope" / "litestream"),
    )
    with pytest.raises(ReplicationError) as err:
        sc.start()
    assert "not found" in err.value.message and "litestream-bin" in err.value.hint


def test_sync_on_a_stopped_sidecar_is_a_clear_error(tmp_path, s3_target):
    sc = make_sidecar(tmp_path / "edge.db", s3_target, tmp_path / "run")
    with pytest.raises(ReplicationError) as err:
        sc.sync(timeout=1)
    assert "not running" in err.value.message


def test_outage_makes_sync_fail_in_time_and_stop_stays_bounded(tmp_path, add_rows):
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="outage"
    )
    db = tmp_path / "edge.db"
    add_rows(db, 3)
    sc = make_sidecar(
        db,
        parse_replica_url(f"s3://outage/p?endpoint={endpoint}"),
        tmp_path / "run",
        shutdown_sync_timeout=1.0,
    )
    sc.start()
    try:
        assert sc.sync(timeout=10).replicated_txid >= 1
    finally:
        server.stop()
    add_rows(db, 3)
    started = time.monotonic()
    with pytest.raises(ReplicationError):
        sc.sync(timeout=1.0)
    assert time.monotonic() - started < 3.0
    assert sc.up  # litestream itself keeps running (and retrying) through an outage
    started = time.monotonic()
    sc.stop(flush=True)
    assert time.monotonic() - started < 1.0 + 2.0 + 1.0
    assert not litestream_pids(sc.config_path)
