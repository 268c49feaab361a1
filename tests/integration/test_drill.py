"""Restore drills (edge/replication/drill.py): a replica restored into scratch space and
checked (structure, row checksums, the local file's final rows), on file:// and moto S3
replicas written by the real litestream."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest

import edge
from edge.replication import open_store
from edge.replication.drill import drill
from edge.store import Store
from tests.conftest import wait_until
from tests.corruption import find_in, flip
from tests.unit.test_corruption import build


def flip_ltx(target, epoch: int = 1) -> list[str]:
    """Flip one byte in the middle of every LTX object of ``epoch`` (a bucket's bit rot)."""
    store = open_store(target)
    keys = [o.key for o in store.list_keys(f"e{epoch}/") if o.key.endswith(".ltx")]
    for key in keys:
        body = bytearray(store.get(key)[0])
        body[len(body) // 2] ^= 0x20
        store.put(key, bytes(body))
    assert keys
    return keys


def scratch_left() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob("edge-drill-*"))


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """Drills without a scratch argument use the temporary directory: this test's own,
    so that drills of other test runs on the box (the other Pythons' suites run beside
    this one) never appear in, or vanish from, what ``scratch_left`` sees."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))


@pytest.fixture
def replica(tmp_path, target, replicate_once):
    """A stopped node's database (one SUCCEEDED, one WAITING workflow) replicated to e1."""
    build(tmp_path / "data")
    db = tmp_path / "data" / "edge.db"
    replicate_once(db, target, 1, tmp_path / "w")
    return db


def test_a_clean_replica_passes_and_matches_the_local_database(tmp_path, target, replica):
    before = scratch_left()
    res = drill(target)
    assert res.ok and res.kind is None and res.epoch == 1 and res.txid and res.txid >= 1
    assert res.rows > 0 and res.bytes_read > 0 and res.seconds >= 0
    local = Store.inspect(replica)
    try:
        res = drill(target, local=local, scratch=tmp_path / "drill")
    finally:
        local.close()
    assert res.ok and "match the local database" in res.detail, res
    assert not list((tmp_path / "drill").iterdir())  # scratch removed
    assert scratch_left() == before


def test_flipped_bytes_in_an_ltx_object_fail_the_restore(target, replica):
    flip_ltx(target)
    res = drill(target)
    assert not res.ok and res.damaged and res.kind == "restore_failed", res
    assert "failed" in res.detail  # a checksum or lz4 error, in Litestream's words


@pytest.mark.parametrize("damage,kind", [("row", "checksum"), ("index", "structure")])
def test_a_damaged_database_in_the_replica_is_found(tmp_path, target, replicate_once,
                                                    damage, kind):
    build(tmp_path / "data")
    db = tmp_path / "data" / "edge.db"
    if damage == "row":  # litestream ships it faithfully: only the row checksum can tell
        flip(db, find_in(db, b'"WF-B-2"', "operations") + 4, 0)
    else:
        flip(db, find_in(db, b"wf-b", "sqlite_autoindex_workflows_1") + 2, 0)
    replicate_once(db, target, 1, tmp_path / "w")
    res = drill(target)
    assert not res.ok and res.kind == kind, res
    assert res.txid is not None  # it restored; the check found the damage


def _local_sql(db: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    try:
        from edge.store.rows import register

        register(con)  # the checksum triggers call edge_checksum
        con.execute(sql, args)
    finally:
        con.close()


def test_a_final_checkpoint_that_differs_locally_is_divergence(target, replica):
    from edge.store.rows import checksum

    # A SUCCEEDED checkpoint rewritten (with a valid checksum) after the replica took it.
    _local_sql(replica, "UPDATE operations SET output = '\"OTHER\"', checksum = ? "
               "WHERE workflow_id = 'wf-a' AND seq = 1", checksum("x"))
    local = Store.inspect(replica)
    try:
        res = drill(target, local=local)
    finally:
        local.close()
    assert res.kind == "diverged" and "checkpoint 1 of workflow 'wf-a' differs" in res.detail


def test_pruned_workflows_are_not_divergence(target, replica):
    for table, col in (("operations", "workflow_id"), ("events", "workflow_id"),
                       ("published", "workflow_id"), ("workflows", "id")):
        _local_sql(replica, f"DELETE FROM {table} WHERE {col} = 'wf-a'")
    local = Store.inspect(replica)
    try:
        assert drill(target, local=local).ok
    finally:
        local.close()


def test_a_resumed_workflow_is_not_divergence_but_a_changed_failure_is(tmp_path, target,
                                                                       replicate_once):
    app = edge.App("drill-resume")
    fail = {"on": True}

    @app.step(name="flaky")
    def flaky() -> str:
        if fail["on"]:
            raise RuntimeError("boom")
        return "fine"

    @app.workflow(name="once")
    def once() -> str:
        return flaky()

    data = tmp_path / "data"
    node = edge.Node(app, data_dir=data, workers=1).start()
    try:
        app.start(once, id="wf-f")
        wait_until(lambda: node.store.get_workflow("wf-f").status == "FAILED", 10, "failed")
    finally:
        node.stop()
    db = data / "edge.db"
    replicate_once(db, target, 1, tmp_path / "w")
    fail["on"] = False
    node = edge.Node(app, data_dir=data, workers=1).start()
    try:
        node.verbs.resume("wf-f")
        assert node.verbs.result("wf-f", timeout=10) == "fine"
        res = drill(target, local=node.store)  # the live node's store, while it runs
    finally:
        node.stop()
    assert res.ok, res
    # Without a resume, a FAILED checkpoint that changed is divergence.
    from edge.store.rows import checksum

    replicate_once(db, target, 2, tmp_path / "w2")
    _local_sql(db, "UPDATE operations SET error = '{}', checksum = ? WHERE workflow_id = "
               "'wf-f' AND seq = 1", checksum("y"))
    local = Store.inspect(db)
    try:
        assert drill(target, local=local).kind == "diverged"
    finally:
        local.close()


def test_no_data_and_an_unreachable_bucket_are_no_verdict(tmp_path, bucket):
    from edge.replication import parse_replica_url

    res = drill(parse_replica_url(f"file://{tmp_path / 'empty'}"))
    assert not res.ok and res.kind == "no_replica" and not res.damaged
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = parse_replica_url(f"s3://{bucket}/x?endpoint=http://127.0.0.1:{port}")
    res = drill(dead)
    assert res.kind == "unavailable" and not res.damaged


def bucket_state(target) -> dict[str, tuple[int, str]]:
    """Every object of the replica with its size and ETag (moto) or content hash (file)."""
    import hashlib

    store = open_store(target)
    return {o.key: (o.size, hashlib.sha256(store.get(o.key)[0]).hexdigest())
            for o in store.list_keys("")}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    import logging

    from tests.conftest import run_cli

    # The CLI points edge's logger at the (captured) stderr: put it back afterwards,
    # so the nodes of later tests do not log to a closed stream.
    log = logging.getLogger("edge")
    saved = (log.handlers[:], log.level, log.propagate)
    try:
        code, out, err = run_cli(list(argv), capsys)
    finally:
        log.handlers[:], log.level, log.propagate = saved
    assert "Traceback" not in err and "this is a bug" not in err, err
    return code, out, err


def test_verify_replica_exits_0_then_4_after_bit_rot_and_never_writes(
        tmp_path, capsys, s3_target, replicate_once):
    import json

    build(tmp_path / "data")
    replicate_once(tmp_path / "data" / "edge.db", s3_target, 1, tmp_path / "w")

    url = s3_target.url
    before = bucket_state(s3_target)
    code, out, err = cli(capsys, "verify-replica", "--replica", url)
    assert code == 0 and out.count("\n") == 1 and "verified" in out and "TXID" in out, (out, err)
    code, out, _ = cli(capsys, "verify-replica", "--replica", url, "--epoch", "1", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["epoch"] == 1 and doc["bytes_read"] > 0
    assert bucket_state(s3_target) == before  # read-only: not an object added or changed

    flip_ltx(s3_target)
    rotten = bucket_state(s3_target)
    code, out, err = cli(capsys, "verify-replica", "--replica", url)
    assert code == 4 and out == "", (out, err)
    lines = err.splitlines()
    assert lines[0].startswith("error: replica ") and "restore_failed" in lines[0]
    assert lines[1].startswith("hint: ") and "--newest-clean" in lines[1]
    code, out, _ = cli(capsys, "verify-replica", "--replica", url, "--json")
    assert code == 4 and json.loads(out)["kind"] == "restore_failed"
    assert bucket_state(s3_target) == rotten


def test_verify_replica_of_an_unreachable_bucket_exits_1(capsys, bucket):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = cli(capsys, "verify-replica", "--replica",
                         f"s3://{bucket}/x?endpoint=http://127.0.0.1:{port}")
    assert code == 1 and err.startswith("error: ") and "unavailable" in err


def test_restore_newest_clean_returns_an_older_clean_txid_with_the_report(
        tmp_path, capsys, target, replica, replicate_once):
    for i in range(4):  # four more TXIDs, one sync each
        store = Store.open(replica)
        store.set_meta({"drill-test": str(i)})
        store.close()
        replicate_once(replica, target, 1, tmp_path / "w")
    store = open_store(target)
    newest = max((o for o in store.list_keys("e1/") if o.key.endswith(".ltx")),
                 key=lambda o: o.key)
    body = bytearray(store.get(newest.key)[0])
    body[len(body) // 2] ^= 0x20
    store.put(newest.key, bytes(body))

    out_db = tmp_path / "out" / "edge.db"
    code, _, err = cli(capsys, "restore", "--replica", target.url, "--output", str(out_db))
    assert code == 4 and "--newest-clean" in err and not out_db.exists()
    code, out, err = cli(capsys, "restore", "--replica", target.url, "--output", str(out_db),
                         "--newest-clean")
    assert code == 5, (out, err)
    assert "NOT the newest" in out and "lacks 1 TXIDs" in out and "damaged" in out, out
    assert out_db.exists() and oct(out_db.stat().st_mode & 0o777) == "0o600"
    copy = Store.inspect(out_db)
    try:
        assert copy.integrity_check() == "ok" and copy.get_meta("drill-test") == "2"
    finally:
        copy.close()
    assert [p.name for p in out_db.parent.iterdir()] == ["edge.db"]  # probes removed
    # A clean replica: the newest is restored, exit 0.
    code, out, _ = cli(capsys, "restore", "--replica", target.url, "--output",
                       str(tmp_path / "again.db"), "--newest-clean", "--epoch", "1")
    assert code == 5  # same epoch, still damaged: never silently 0
    clean = tmp_path / "clean"
    build(clean)
    replicate_once(clean / "edge.db", target, 2, tmp_path / "w2")
    code, out, _ = cli(capsys, "restore", "--replica", target.url, "--output",
                       str(tmp_path / "new.db"), "--newest-clean")
    assert code == 0 and "(clean)" in out, out


def test_the_boot_path_refuses_a_damaged_replica_and_names_newest_clean(tmp_path, file_target,
                                                                        replicate_once):
    from edge.errors import DataError
    from tests.unit.test_corruption import make_app

    build(tmp_path / "data")
    replicate_once(tmp_path / "data" / "edge.db", file_target, 1, tmp_path / "w")
    flip_ltx(file_target)
    app, _ = make_app()
    with pytest.raises(DataError) as err:
        edge.Node(app, data_dir=tmp_path / "fresh", replica=file_target.url, workers=1).start()
    assert err.value.exit_code == 4 and "edge restore --newest-clean" in err.value.hint
    assert not (tmp_path / "fresh" / "edge.db").exists()


def test_a_drill_never_fills_the_disk_it_would_need(tmp_path, target, replica):
    """Scratch on a filesystem with less room than a copy needs: no verdict, nothing
    written there, a line that says why and what to do."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs",
                           str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is refused here: {proc.stderr.strip()}")
    try:
        with sqlite3.connect(replica) as conn:  # a live file larger than the scratch room
            conn.execute("CREATE TABLE IF NOT EXISTS pad (b BLOB)")
            conn.execute("INSERT INTO pad VALUES (zeroblob(200000))")
        local = Store.inspect(replica)
        try:
            res = drill(target, local=local, scratch=mnt / "drill")
        finally:
            local.close()
        assert not res.ok and res.kind == "unavailable", res
        assert "free disk space" in res.detail
        assert not list((mnt / "drill").iterdir())
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
