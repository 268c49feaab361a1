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
