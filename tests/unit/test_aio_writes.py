"""The async executor's checkpoint batch (edge/aio_writes.py over Store.record_ops).

The checkpoints issued on the loop in one tick are one transaction; an item fenced out
by its run token (StaleRun) or refused (Conflict) fails alone and its neighbours commit;
a failed transaction (a full disk) fails every item, commits nothing, and the runs are
held by write recovery until space returns, then finish with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import edge
from edge.aio_writes import CheckpointWrites
from edge.errors import Conflict, WriteFailed
from edge.store import OpRow, StaleRun, Store, WorkflowRow, recovery
from edge.testing import TestNode
from tests.conftest import wait_until

BIG = 40_000  # an output that needs fresh pages


def _op(wid: str, seq: int, output: str = '{"n":1}') -> OpRow:
    return OpRow(wid, seq, "step", "s", "SUCCEEDED", 1, output, None, 1.0, 2.0)


def _running(s: Store, *ids: str) -> None:
    for wid in ids:
        s.insert_workflow(wid, "wf", "{}", 1.0)
        assert s.claim(wid, f"tok-{wid}", 1.0)


def _taken_over(s: Store, wid: str) -> None:
    """Run ``wid`` under a newer token: its ``tok-<wid>`` writes are now stale."""
    assert recovery.release(s, wid, f"tok-{wid}", 1.0) and s.claim(wid, "newer", 1.0)


def _row(s: Store, wid: str) -> WorkflowRow:
    row = s.get_workflow(wid)
    assert row is not None
    return row


def _cap_pages(s: Store, pages: int | None) -> None:
    """Cap the file at its current size (``None``: full for anything that grows it)."""

    def fn(conn: sqlite3.Connection) -> None:
        n = pages if pages is not None else int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {n}")

    s.write(fn)


# ---- Store.record_ops ----------------------------------------------------------------


def test_record_ops_isolates_each_items_error_in_one_transaction(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "e.db")
    _running(s, "a", "stale", "done", "b")
    s.record_op(_op("done", 1), "tok-done", 1.0)
    _taken_over(s, "stale")
    before = s.commit_stats
    errors = s.record_ops([(_op("a", 1), "tok-a"), (_op("stale", 1), "tok-stale"),
                           (_op("done", 1, '{"n":2}'), "tok-done"), (_op("b", 1), "tok-b")])
    after = s.commit_stats
    assert errors[0] is None and errors[3] is None
    assert isinstance(errors[1], StaleRun)
    assert isinstance(errors[2], Conflict) and not isinstance(errors[2], StaleRun)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 4)  # one commit, four writes
    assert [o.output for o in s.load_ops("a")] == ['{"n":1}']
    assert [o.output for o in s.load_ops("b")] == ['{"n":1}']
    assert s.load_ops("stale") == []  # fenced out: nothing of the stale run written
    assert [o.output for o in s.load_ops("done")] == ['{"n":1}']  # never overwritten
    s.close()


def test_record_ops_on_a_full_disk_commits_nothing_then_everything(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "e.db")
    _running(s, "a", "b", "c")
    items = [(_op(w, 1, '"' + "x" * BIG + '"'), f"tok-{w}") for w in ("a", "b", "c")]
    _cap_pages(s, None)
    # SQLITE_FULL aborts the statement, not the transaction: each item fails with its
    # own classified WriteFailed (as in a group-commit batch), none is written.
    errors = s.record_ops(items)
    assert [type(e) for e in errors] == [WriteFailed] * 3
    assert all(isinstance(e, WriteFailed) and e.code == "disk_full" for e in errors)
    assert s.write_fault is not None
    assert [s.load_ops(w) for w in ("a", "b", "c")] == [[], [], []]  # nothing committed
    _cap_pages(s, 1_000_000)
    assert s.record_ops(items) == [None, None, None]
    assert [len(s.load_ops(w)) for w in ("a", "b", "c")] == [1, 1, 1]
    assert s.write_fault is None
    s.close()


def test_write_batch_finishes_runs_beside_checkpoints_each_on_its_own_token(
        tmp_path: Path) -> None:
    s = Store.open(tmp_path / "e.db")
    _running(s, "a", "b", "stale", "c")
    _taken_over(s, "stale")
    rows = {w: _row(s, w) for w in ("a", "b", "stale")}
    before = s.commit_stats
    errors, finished = s.write_batch(
        [(_op("c", 1), "tok-c")],
        [(rows[w], f"tok-{w}", "SUCCEEDED", '"out"', None, 3.0)
         for w in ("a", "stale", "b")])
    after = s.commit_stats
    assert errors == [None]
    assert finished[0] == "SUCCEEDED" and finished[2] == "SUCCEEDED"
    assert isinstance(finished[1], StaleRun)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 4)
    for w, status in (("a", "SUCCEEDED"), ("b", "SUCCEEDED"), ("stale", "RUNNING"),
                      ("c", "RUNNING")):
        row = s.get_workflow(w)
        assert row is not None and row.status == status, (w, row)
    assert len(s.load_ops("c")) == 1
    s.close()


# ---- CheckpointWrites on a real loop and a real store --------------------------------


def test_checkpoints_issued_in_one_tick_share_one_batch_and_failures_stay_their_own(
        tmp_path: Path) -> None:
    s = Store.open(tmp_path / "e.db")
    _running(s, "a", "b", "c", "d")
    _taken_over(s, "b")
    pool = ThreadPoolExecutor(2)

    async def main() -> tuple[list[Any], list[Any], int, int]:
        cw = CheckpointWrites(asyncio.get_running_loop(), lambda: s, pool)
        first = [cw.record(_op(w, 1), f"tok-{w}") for w in ("a", "b", "c")]  # one tick
        wave1 = await asyncio.gather(*first, return_exceptions=True)
        after_one = cw.batches
        second = [cw.record(_op(w, 2), f"tok-{w}") for w in ("a", "c", "d")]
        third = cw.record(_op("d", 1), "tok-d")  # same tick as the second wave
        wave2 = await asyncio.gather(*second, third, return_exceptions=True)
        return wave1, wave2, after_one, cw.batches

    try:
        wave1, wave2, after_one, batches = asyncio.run(main())
    finally:
        pool.shutdown()
    assert wave1[0] is None and wave1[2] is None and isinstance(wave1[1], StaleRun)
    assert wave2 == [None, None, None, None]
    assert (after_one, batches) == (1, 2)
    assert [o.seq for o in s.load_ops("a")] == [1, 2]
    assert [o.seq for o in s.load_ops("d")] == [1, 2]
    assert s.load_ops("b") == []
    s.close()


def test_a_failed_batch_fails_every_checkpoint_in_it(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "e.db")
    _running(s, "a", "b")
    _cap_pages(s, None)
    pool = ThreadPoolExecutor(1)

    async def main() -> list[Any]:
        cw = CheckpointWrites(asyncio.get_running_loop(), lambda: s, pool)
        futs = [cw.record(_op(w, 1, '"' + "x" * BIG + '"'), f"tok-{w}") for w in ("a", "b")]
        return list(await asyncio.gather(*futs, return_exceptions=True))

    try:
        out = asyncio.run(main())
    finally:
        pool.shutdown()
    assert [type(e) for e in out] == [WriteFailed, WriteFailed]
    assert s.load_ops("a") == [] and s.load_ops("b") == []
    s.close()


# ---- through a node ---------------------------------------------------------------------


class Gate:
    """Holds async step bodies until ``open``: released in one loop callback, so every
    held body finishes (and checkpoints) in the same loop tick."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.event: asyncio.Event | None = None
        self.entered: list[str] = []
        self.lock = threading.Lock()

    async def wait(self) -> None:
        with self.lock:
            if self.event is None:
                self.loop, self.event = asyncio.get_running_loop(), asyncio.Event()
            self.entered.append(edge.context().workflow_id)
        await self.event.wait()

    def open(self) -> None:
        assert self.loop is not None and self.event is not None
        self.loop.call_soon_threadsafe(self.event.set)


def test_many_async_workflows_checkpoint_in_one_transaction(make_node: Any) -> None:
    app = edge.App("aio-batch-many")
    gate = Gate()
    n = 60

    @app.step()
    async def held(i: int) -> int:
        await gate.wait()
        return i

    @app.workflow()
    async def wf(i: int) -> int:
        return await held(i) + 1

    node = make_node(app, workers=8)
    handles = [app.start(wf, i, id=f"m{i}") for i in range(n)]
    wait_until(lambda: len(gate.entered) == n, what="every step body to start")
    batches0, (tx0, writes0) = node.aio.checkpoint_batches, node.store.commit_stats
    gate.open()
    assert [h.result(timeout=30) for h in handles] == [i + 1 for i in range(n)]
    tx, writes = node.store.commit_stats[0] - tx0, node.store.commit_stats[1] - writes0
    # The n checkpoints: one batch; the n finishes they led to: the next one.
    assert node.aio.checkpoint_batches - batches0 == 2
    assert writes >= 2 * n  # n checkpoints and n finishes, each counted
    assert tx <= 4, (tx, writes)  # two commits (room for a stray write of the node's own)
    for i in range(n):
        steps = node.verbs.describe(f"m{i}")["steps"]
        assert [(s["seq"], s["status"]) for s in steps] == [(1, "SUCCEEDED")]


def test_a_fenced_checkpoint_in_a_batch_does_not_fail_its_neighbours(make_node: Any) -> None:
    app = edge.App("aio-batch-fenced")
    gate = Gate()
    after: list[str] = []

    @app.step()
    async def held() -> str:
        await gate.wait()
        return edge.context().workflow_id

    @app.workflow()
    async def wf() -> str:
        out = await held()
        after.append(out)  # only past a committed checkpoint
        return out

    node = make_node(app, workers=4)
    ids = ["f0", "f1", "f2", "f3"]
    handles = {i: app.start(wf, id=i) for i in ids}
    wait_until(lambda: len(gate.entered) == 4, what="every step body to start")

    def steal(conn: sqlite3.Connection) -> None:
        # Another run took f1 over (as a resume after a lost claim would): its token changed.
        cur = conn.execute("UPDATE workflows SET run_token = 'someone-else' "
                           "WHERE id = 'f1' AND status = 'RUNNING'")
        assert cur.rowcount == 1

    node.store.write(steal)
    batches0 = node.aio.checkpoint_batches
    gate.open()
    for i in ("f0", "f2", "f3"):
        assert handles[i].result(timeout=30) == i
    wait_until(lambda: node.aio.running == 0, what="the fenced run to end")
    assert node.aio.checkpoint_batches - batches0 == 2  # the checkpoints, then the finishes
    assert sorted(after) == ["f0", "f2", "f3"]  # the fenced run never went past its step
    assert node.store.load_ops("f1") == []
    row = node.store.get_workflow("f1")
    assert row is not None and row.status == "RUNNING" and row.run_token == "someone-else"


def test_a_full_disk_under_a_batch_holds_every_run_and_loses_nothing() -> None:
    app = edge.App("aio-batch-full")
    gate = Gate()
    runs: dict[str, int] = {}
    n = 6

    @app.step()
    async def produce() -> str:
        wid = edge.context().workflow_id
        runs[wid] = runs.get(wid, 0) + 1
        if runs[wid] == 1:
            await gate.wait()
        return "x" * BIG  # its checkpoint needs fresh pages

    @app.step()
    async def small() -> str:
        wid = edge.context().workflow_id
        runs[wid] = runs.get(wid, 0) + 1
        await gate.wait()
        return "s"

    @app.workflow()
    async def big() -> int:
        return len(await produce())

    @app.workflow()
    async def big_out() -> str:
        return await small() + "y" * BIG  # checkpointed; its finish needs fresh pages

    with TestNode(app, clock=edge.FakeClock(), workers=4) as t:
        ids = [app.start(big, id=f"d{i}").id for i in range(n)]
        outs = [app.start(big_out, id=f"o{i}").id for i in range(2)]
        wait_until(lambda: len(gate.entered) == n + 2, what="every step body to start")
        _cap_pages(t.node.store, None)
        batches0 = t.node.aio.checkpoint_batches
        gate.open()
        wait_until(lambda: t.node.writes.pending() == n + 2, what="every run to be held")
        t.run_until_idle()
        # The checkpoints in one batch (6 refused, 2 committed), the 2 finishes in one.
        assert t.node.aio.checkpoint_batches - batches0 == 2
        for i in ids + outs:
            row = t.node.store.get_workflow(i)
            assert row is not None and row.status == "RUNNING"  # held, its claim kept
            assert row.output is None  # nothing acknowledged
        assert all(t.node.store.load_ops(i) == [] for i in ids)
        assert all(len(t.node.store.load_ops(i)) == 1 for i in outs)
        _cap_pages(t.node.store, 1_000_000)
        t.advance(5)  # write recovery's back-off: the runs re-run from their checkpoints
        t.run_until_idle()
        for i in ids:
            assert t.status(i) == "SUCCEEDED", t.describe(i)
            assert t.result(i) == BIG
        for i in outs:
            assert t.status(i) == "SUCCEEDED", t.describe(i)
            assert t.result(i) == "s" + "y" * BIG
        # The uncommitted step ran again, once; the committed one never did.
        assert runs == {**{i: 2 for i in ids}, **{i: 1 for i in outs}}
        assert t.node.writes.pending() == 0


def test_a_lone_run_writes_on_the_loop_and_concurrent_runs_on_store_threads(
        make_node: Any, monkeypatch: Any) -> None:
    app = edge.App("aio-batch-solo")
    gate = Gate()

    @app.step()
    async def one(i: int) -> int:
        return i

    @app.step()
    async def held() -> int:
        await gate.wait()
        return 1

    @app.workflow()
    async def lone() -> int:
        return await one(1) + await one(2)

    @app.workflow()
    async def pair() -> int:
        return await held()

    node = make_node(app)
    threads: list[tuple[str, int]] = []
    real = node.store.write_batch

    def spy(ops: Any, finishes: Any) -> Any:
        threads.append((threading.current_thread().name, len(ops) + len(finishes)))
        return real(ops, finishes)

    monkeypatch.setattr(node.store, "write_batch", spy)
    assert app.start(lone, id="lone").result(timeout=30) == 3
    # Two checkpoints and the finish, each a batch of one, none handed to a thread.
    assert threads == [("edge-loop", 1)] * 3
    threads.clear()
    handles = [app.start(pair, id=f"p{i}") for i in range(2)]
    wait_until(lambda: len(gate.entered) == 2, what="both step bodies to start")
    gate.open()
    assert [h.result(timeout=30) for h in handles] == [1, 1]
    assert threads and all(name.startswith("edge-aio-store") for name, _ in threads), threads
    assert threads[0][1] == 2  # the two checkpoints in one batch


# ---- an async step body in the awaiting task (aio_run.AsyncRun._body) -----------------

_mark: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="workflow")


def test_a_step_body_keeps_its_own_context_across_awaits(make_node: Any) -> None:
    app = edge.App("aio-body-ctx")
    seen: list[tuple[str, int, str]] = []

    @app.step()
    async def body(tag: str) -> str:
        _mark.set(tag)  # never visible to the workflow, as in a task of its own
        for _ in range(3):
            await asyncio.sleep(0)  # resumed in the body's own context each time
            seen.append((tag, edge.context().seq, _mark.get()))
        return tag

    @app.workflow()
    async def wf() -> list[str]:
        one = await body("one")
        both = await asyncio.gather(body("two"), body("three"))
        return [one, *both, _mark.get()]

    make_node(app)
    assert app.start(wf, id="ctx").result(timeout=30) == ["one", "two", "three", "workflow"]
    assert sorted(set(seen)) == [("one", 1, "one"), ("three", 3, "three"), ("two", 2, "two")]


def test_a_stray_waiting_step_body_is_cancelled_when_its_run_ends(make_node: Any) -> None:
    app = edge.App("aio-body-stray")
    cancelled = threading.Event()
    started = threading.Event()

    @app.step()
    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @app.workflow()
    async def wf() -> str:
        asyncio.get_running_loop().create_task(forever())  # never awaited
        await asyncio.sleep(0.05)
        return "done"

    node = make_node(app)
    assert app.start(wf, id="stray").result(timeout=30) == "done"
    assert started.is_set()
    wait_until(cancelled.is_set, what="the stray body to be cancelled")
    assert node.verbs.describe("stray")["steps"] == []  # never checkpointed
