"""``app.start_many``: many starts in one transaction, all or nothing.

Each test runs a real node on a real SQLite file. What is promised (edge/starting.py):
one store write (one commit) for the batch; every call checked before the store is
touched, a refusal naming the call; an id of another workflow, or a disk fault, creates
none of the batch; an existing id is returned and never re-run; queues and dedup keys
behave as with ``app.start``; not inside a workflow.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import pytest

import edge
from edge import starting
from edge.errors import Conflict, UsageError, WriteFailed
from edge.store import listing
from tests.conftest import wait_until


def make_app() -> tuple[edge.App, list[int]]:
    app = edge.App("startmany")
    ran: list[int] = []

    @app.step(name="double")
    def double(x: int) -> int:
        ran.append(x)
        return x * 2

    @app.workflow(name="calc")
    def calc(x: int) -> int:
        return double(x) + 1

    @app.workflow(name="other")
    def other() -> str:
        return "other"

    return app, ran


def ids_in(node: edge.Node) -> set[str]:
    rows, _ = listing.list_workflows(node.store, limit=1000)
    return {r.id for r in rows}


def count_writes(node: edge.Node, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Store writes made by this thread (a worker's claims and checkpoints not counted)."""
    mine: list[int] = []
    real = node.store.write
    me = threading.get_ident()

    def write(fn: Callable[[sqlite3.Connection], Any], atomic: bool = False) -> Any:
        if threading.get_ident() == me:
            mine.append(1)
        return real(fn, atomic)

    monkeypatch.setattr(node.store, "write", write)
    return mine


def test_a_batch_is_one_write_and_every_workflow_runs(make_node, monkeypatch):
    app, ran = make_app()
    node = make_node(app)
    writes = count_writes(node, monkeypatch)
    handles = app.start_many("calc", [(i,) for i in range(200)])
    assert len(writes) == 1  # one transaction, one commit, for the 200 inserts
    assert [h.result(timeout=30) for h in handles] == [2 * i + 1 for i in range(200)]
    assert sorted(ran) == list(range(200))
    assert len({h.id for h in handles}) == 200


def test_a_bad_call_refuses_the_batch_naming_it_and_writes_nothing(make_node, monkeypatch):
    app, _ = make_app()
    node = make_node(app)
    writes = count_writes(node, monkeypatch)
    with pytest.raises(UsageError, match=r"^start 3 of 5: wrong arguments for workflow calc"):
        app.start_many("calc", [(1,), (2,), (3,), (4, 5), (6,)])
    with pytest.raises(UsageError, match="start 1 of start_many is not a tuple"):
        app.start_many("calc", [(1,), 2])  # type: ignore[list-item]
    with pytest.raises(UsageError, match="2 calls but 1 ids"):
        app.start_many("calc", [(1,), (2,)], ids=["x"])
    with pytest.raises(UsageError, match="workflow id"):
        app.start_many("calc", [(1,), (2,)], ids=["ok", "bad\x00id"])
    with pytest.raises(UsageError, match=r"^tags\[.k.\] holds a control"):  # shared: once
        app.start_many("calc", [(1,), (2,)], tags={"k": "bad\x00"})
    with pytest.raises(UsageError, match=f"at most {starting.MAX_BATCH}"):
        app.start_many("calc", [(1,)] * (starting.MAX_BATCH + 1))
    assert writes == [] and ids_in(node) == set()


def test_an_existing_id_is_returned_not_rerun(make_node):
    app, ran = make_app()
    node = make_node(app)
    first = app.start("calc", 1, id="a")
    assert first.result(timeout=10) == 3
    handles = app.start_many("calc", [(100,), (2,)], ids=["a", "b"])
    assert [h.result(timeout=10) for h in handles] == [3, 5]  # "a" kept its input: 1
    assert sorted(ran) == [1, 2]
    assert ids_in(node) == {"a", "b"}


def test_an_id_of_another_workflow_refuses_the_whole_batch(make_node):
    app, ran = make_app()
    node = make_node(app)
    assert app.start("other", id="taken").result(timeout=10) == "other"
    with pytest.raises(Conflict, match="'taken' already belongs to a other workflow"):
        app.start_many("calc", [(1,), (2,), (3,)], ids=["n1", "taken", "n3"])
    assert ids_in(node) == {"taken"} and ran == []
    with pytest.raises(Conflict, match="'taken' already belongs to a other workflow"):
        app.start("calc", 1, id="taken")  # one start: the same check, the same refusal
    assert ids_in(node) == {"taken"} and ran == []


def test_a_disk_fault_creates_none_of_the_batch(make_node):
    app, ran = make_app()
    node = make_node(app, workers=1)

    def cap(conn: sqlite3.Connection) -> None:
        n = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {n}")

    node.store.write(cap)
    big = "x" * 20_000  # the batch needs new pages: SQLITE_FULL partway through it
    with pytest.raises(WriteFailed):
        app.start_many("calc", [(1,), (big,), (3,)], ids=["w1", "w2", "w3"])
    node.store.write(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))
    assert ids_in(node) == set() and ran == []
    handles = app.start_many("calc", [(1,), (2,)])  # the node goes on after the fault
    assert [h.result(timeout=10) for h in handles] == [3, 5]


def test_queued_starts_respect_the_queue_and_its_dedup_key(make_node):
    app, ran = make_app()
    q = app.queue("one-at-a-time", concurrency=1)
    node = make_node(app)
    handles = app.start_many("calc", [(i,) for i in range(5)], queue=q)
    assert [h.result(timeout=20) for h in handles] == [1, 3, 5, 7, 9]
    dup = app.start_many("calc", [(10,), (11,), (12,)], queue=q.options(dedup="k"))
    assert len({h.id for h in dup}) == 1  # one live workflow per dedup key
    assert dup[0].result(timeout=10) == 21
    assert sorted(ran) == [0, 1, 2, 3, 4, 10]
    assert len(ids_in(node)) == 6


def test_timeout_and_tags_apply_to_every_start(make_node):
    app, _ = make_app()
    node = make_node(app)
    handles = app.start_many("calc", [(1,), (2,)], timeout=60, tags={"batch": "b1"})
    wait_until(lambda: all(h.status() == "SUCCEEDED" for h in handles), what="finished")
    tags = listing.tags_for(node.store, [h.id for h in handles])
    assert tags == {h.id: {"batch": "b1"} for h in handles}
    rows = [node.store.get_workflow(h.id) for h in handles]
    assert all(r is not None and r.deadline is not None
               and 59 < r.deadline - r.created_at <= 60 for r in rows)


def test_not_inside_a_workflow(make_node):
    app, _ = make_app()

    @app.workflow(name="fan")
    def fan() -> int:
        return len(app.start_many("calc", [(1,)]))

    @app.workflow(name="afan")
    async def afan() -> int:
        return len(app.start_many("calc", [(1,)]))

    make_node(app)
    for name in ("fan", "afan"):
        with pytest.raises(edge.WorkflowFailed, match="outside a workflow"):
            app.start(name).result(timeout=10)
