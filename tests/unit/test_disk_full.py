"""A full disk (a deterministic SQLITE_FULL from PRAGMA max_page_count) never strands work.

While writes fail: the runs whose checkpoints failed stay claimed, not lost; the API
answers 503 with code ``disk_full`` and a hint naming the data directory; /readyz is 503;
edge_write_errors_total{kind="disk_full"} counts the refused writes. Once the disk takes
writes again, every stuck workflow finishes on its own (write_recovery retries it with
back-off), without a restart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.error
import urllib.request
from typing import Any

import edge
from edge.store import recovery
from edge.testing import TestNode
from tests.conftest import wait_until

BIG = 40_000  # a step output that needs fresh pages


def http(t: TestNode, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    assert t.node.http is not None
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{t.node.http.url}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def write_errors(t: TestNode, kind: str) -> float:
    value = t.node.metrics.registry.get_sample_value("edge_write_errors_total", {"kind": kind})
    return float(value or 0.0)


def set_max_pages(t: TestNode, pages: int | None) -> None:
    """Cap the file at its current size (``None``) or at ``pages``."""

    def fn(conn: sqlite3.Connection) -> None:
        n = pages if pages is not None else int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {n}")

    t.node.store.write(fn)


def test_a_full_disk_strands_nothing_and_recovers_without_a_restart() -> None:
    clock = edge.FakeClock()
    app = edge.App("disk-full")
    gate = threading.Event()
    entered: list[str] = []
    held: list[str] = []

    @app.step()
    def produce() -> str:
        entered.append(edge.context().workflow_id)
        gate.wait(30)  # real time: lets the test fill the disk while the steps run
        return "x" * BIG

    @app.step()
    def hold() -> str:
        held.append(edge.context().workflow_id)
        return "small"

    @app.workflow(name="big")
    def big(pad: str = "") -> int:
        return len(produce())  # its checkpoint fails

    @app.workflow(name="big_result")
    def big_result() -> str:
        out = hold()  # checkpointed before the disk fills
        entered.append(edge.context().workflow_id)
        gate.wait(30)
        return out + "y" * BIG  # its finish fails

    with TestNode(app, clock=clock, listen="127.0.0.1:0", workers=8) as t:
        ids = [app.start(big, id=f"w{i}").id for i in range(5)]  # acknowledged
        ids += [app.start(big_result, id=f"r{i}").id for i in range(3)]
        wait_until(lambda: len(set(entered)) == 8, what="every step to start")
        set_max_pages(t, None)  # the disk is now full for anything that grows the file
        before = write_errors(t, "disk_full")
        gate.set()
        t.run_until_idle()

        # Nothing lost, nothing finished: each run is held, its claim kept.
        assert {t.node.store.get_workflow(i).status for i in ids} == {"RUNNING"}
        assert t.node.writes.pending() == 8
        assert write_errors(t, "disk_full") >= before + 8
        status, body = http(t, "GET", "/readyz")
        assert status == 503 and body["code"] == "disk_full", body
        assert str(t.data_dir) in body["hint"], body
        assert t.node.verbs.status()["write_fault"]["code"] == "disk_full"

        # A start while full: 503 with a code and a hint naming the data directory.
        late = {"workflow": "big", "id": "late", "input": {"pad": "p" * BIG}}
        status, body = http(t, "POST", "/v1/workflows", late)
        assert status == 503, body
        assert body["error"]["code"] == "disk_full"
        assert str(t.data_dir) in body["error"]["hint"]
        assert t.node.store.get_workflow("late") is None  # refused, not half-written

        # Retries while still full back off and keep everything held.
        t.advance(1)
        assert {t.node.store.get_workflow(i).status for i in ids} <= {"RUNNING", "PENDING"}
        metrics = http(t, "GET", "/metrics")[1]
        assert 'edge_write_errors_total{kind="disk_full"}' in metrics

        # Space comes back: no restart, only time for the back-off.
        set_max_pages(t, 1_000_000)
        t.advance(5)
        for i in ids:
            assert t.status(i) == "SUCCEEDED", t.describe(i)
            assert t.result(i) == (BIG if i.startswith("w") else "small" + "y" * BIG)
        # The finish re-ran from the checkpoint: hold's body ran once per workflow.
        assert sorted(held) == ["r0", "r1", "r2"]
        assert t.node.writes.pending() == 0
        status, body = http(t, "GET", "/readyz")
        assert status == 200, body
        assert t.node.verbs.status()["write_fault"] is None
        status, body = http(t, "POST", "/v1/workflows", late)
        assert status == 201, body
        t.advance(1)
        assert t.status("late") == "SUCCEEDED"


def test_the_probe_brings_readiness_back_when_nothing_is_stranded() -> None:
    """Only an API write failed: nothing to retry, yet /readyz must not stay 503."""
    app = edge.App("disk-full-probe")

    @app.workflow(name="noop")
    def noop(pad: str) -> int:
        return len(pad)

    with TestNode(app, listen="127.0.0.1:0") as t:
        set_max_pages(t, None)
        status, body = http(t, "POST", "/v1/workflows",
                            {"workflow": "noop", "input": {"pad": "p" * 50_000}})
        assert status == 503 and body["error"]["code"] == "disk_full", body
        assert http(t, "GET", "/readyz")[0] == 503
        t.advance(1)  # the probe still fails: still not ready
        assert http(t, "GET", "/readyz")[0] == 503
        # Space back: the probe succeeds. (Raise the cap on the writer connection
        # without a write of our own, which would clear the fault by itself.)
        t.node.store._writer_conn.execute("PRAGMA max_page_count = 1000000")  # type: ignore[union-attr]
        t.advance(5)
        assert http(t, "GET", "/readyz")[0] == 200
        assert t.node.store.write_fault is None


def failing_then_ok(monkeypatch: Any, obj: object, name: str, failures: int) -> list[int]:
    """Make ``obj.name`` refuse ``failures`` calls the way Store.write does on a full disk
    (a classified SQLITE_FULL), then behave again. Returns the call counter."""
    from edge.store.faults import classify

    real = getattr(obj, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= failures:
            err = classify(sqlite3.OperationalError("database or disk is full"), "/x/edge.db")
            assert err is not None
            raise err
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return calls


def test_a_failed_claim_and_a_failed_wake_are_retried(monkeypatch: Any) -> None:
    clock = edge.FakeClock()
    app = edge.App("disk-full-paths")

    @app.workflow(name="nap")
    def nap() -> str:
        edge.sleep(10)
        return "rested"

    with TestNode(app, clock=clock) as t:
        claims = failing_then_ok(monkeypatch, t.node.store, "claim", 2)
        h = t.start(nap)
        assert t.status(h.id) == "PENDING" and claims[0] == 1  # held, not dropped
        t.advance(0.1)
        assert claims[0] == 2 and t.status(h.id) == "PENDING"
        t.advance(1)
        assert t.status(h.id) == "SLEEPING"

        wakes = failing_then_ok(monkeypatch, recovery, "wake", 1)
        t.advance(10)
        assert wakes[0] >= 1
        t.advance(1)
        assert t.status(h.id) == "SUCCEEDED"
        assert t.result(h.id) == "rested"


def test_a_batch_whose_transaction_sqlite_rolled_back_fails_whole_with_the_disk_error(
        tmp_path: Any) -> None:
    """Group commit: SQLITE_FULL in one request of a batch rolls the whole transaction
    back; every request then carries that error (classified as disk_full), never a
    'no such savepoint' bug, and nothing of the batch is committed."""
    from edge.errors import WriteFailed
    from edge.store.faults import classify
    from edge.store.writer import GroupCommitWriter, _Request

    conn = sqlite3.connect(tmp_path / "b.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    writer = GroupCommitWriter(conn)

    def small(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1)")

    def big(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (?)", ("x" * BIG,))

    batch = [_Request(small), _Request(big), _Request(small)]
    writer._commit(batch)
    for req in batch:
        assert req.done and req.error is not None
        assert isinstance(classify(req.error, tmp_path / "b.db"), WriteFailed), req.error
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    conn.close()
