"""A damaged local file with a replica configured is quarantined and replaced from
the replica (real litestream, a file:// replica); no committed step runs again."""

from __future__ import annotations

from pathlib import Path

import pytest

import edge
from tests.conftest import wait_until
from tests.corruption import find_in, flip
from tests.unit.test_corruption import digest, make_app


@pytest.mark.parametrize("damage", ["index", "row"])
def test_a_damaged_local_file_is_quarantined_and_restored_from_the_replica(tmp_path, damage):
    data, replica = tmp_path / "data", f"file://{tmp_path / 'replica'}"
    app, ran = make_app()
    node = edge.Node(app, data_dir=data, replica=replica, workers=2).start()
    try:
        for wid in ("wf-a", "wf-b"):
            app.start(app.workflows["chain"].fn, wid, id=wid)
        wait_until(lambda: all(node.store.get_workflow(w).status == "WAITING"
                               for w in ("wf-a", "wf-b")), what="parked", timeout=20)
        node.verbs.send_event("wf-a", "go", 1)
        node.verbs.result("wf-a", timeout=10)
    finally:
        node.stop()  # flushes the replica
    db = data / "edge.db"
    if damage == "index":  # the rows and their checksums intact, the structure not
        flip(db, find_in(db, b"wf-b", "sqlite_autoindex_workflows_1") + 2, 0)
    else:  # a committed step's output: only its row checksum can tell
        flip(db, find_in(db, b'"WF-B-2"', "operations") + 4, 0)
    damaged = digest(db)
    ran.clear()
    node = edge.Node(app, data_dir=data, replica=replica, workers=2).start()
    try:
        held = sorted((data / "quarantine").glob("*damaged*/edge.db"))
        assert len(held) == 1 and digest(held[0]) == damaged  # kept as it was, for review
        assert node.store.integrity_check() == "ok"
        assert node.store.get_workflow("wf-a").status == "SUCCEEDED"
        assert node.store.get_workflow("wf-b").status == "WAITING"
        node.verbs.send_event("wf-b", "go", 2)
        assert node.verbs.result("wf-b", timeout=10) == ["WF-B-1", "WF-B-2", "WF-B-3", "WF-B-AFTER",
                                                          "2"]
    finally:
        node.stop()
    assert ran == ["wf-b-after"]  # the restored checkpoints held: nothing before ran again


def test_without_a_replica_edge_run_refuses_a_damaged_file_with_exit_4(tmp_path):
    import subprocess

    from tests.integration.test_cli import EDGE, ROOT, assert_clean_error, clean_env
    from tests.unit.test_corruption import build

    data = tmp_path / "data"
    build(data)
    db = data / "edge.db"
    flip(db, find_in(db, b"wf-a", "sqlite_autoindex_workflows_1") + 2, 0)
    before = digest(db)
    # Its own port: the HTTP server binds before the check, and 8080 may be another
    # test's (the other Pythons' suites run beside this one).
    res = subprocess.run([EDGE, "run", "--app", "tests.unit.test_corruption:APP",
                          "--data-dir", str(data), "--listen", "127.0.0.1:0"], cwd=ROOT,
                         env=clean_env(),
                         capture_output=True, text=True, timeout=60)
    assert_clean_error(res, 4, "integrity_check", logs_ok=True)
    assert "edge restore" in res.stderr and "--data-dir" in res.stderr
    assert digest(db) == before and not (data / "quarantine").exists()
    assert not Path(str(db) + "-wal").exists()
