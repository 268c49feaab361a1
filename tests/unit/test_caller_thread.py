"""A locally started workflow whose result is awaited runs on the waiting thread
(``Workers.run_here``), with every promise a worker's run keeps.

Each test keeps the node's only worker busy on a ``blocker`` workflow first, so a fresh
start can only run on the caller's thread (no race with the worker decides it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import edge
from tests.conftest import wait_until

BIG = 40_000  # a step output that needs fresh pages


def make_app(gate: threading.Event, threads: list[tuple[str, int]],
             delay: float = 0.0) -> edge.App:
    app = edge.App("caller-thread")

    @app.step(name="hold")
    def hold() -> str:
        gate.wait(30)
        return "released"

    @app.workflow(name="blocker")
    def blocker() -> str:
        return str(hold())

    @app.step(name="work")
    def work(i: int) -> dict:
        threads.append((threading.current_thread().name, i))
        if delay:
            time.sleep(delay)
        return {"i": i}

    @app.workflow(name="ten")
    def ten() -> int:
        return sum(work(i)["i"] for i in range(10))

    return app


def busy_worker(app: edge.App, node: edge.Node) -> edge.Handle:
    h = app.start("blocker", id="blocker")
    wait_until(lambda: (r := node.store.get_workflow("blocker")) is not None
               and r.status == "RUNNING", what="the worker to take the blocker")
    return h


def test_an_awaited_local_start_runs_on_the_callers_thread(
        make_node: Callable[..., edge.Node]) -> None:
    gate, threads = threading.Event(), []
    app = make_app(gate, threads)
    node = make_node(app, workers=1)
    blocker = busy_worker(app, node)
    me = threading.current_thread().name
    assert app.start("ten", id="w").result(timeout=30) == 45
    assert threads == [(me, i) for i in range(10)]
    ops = node.store.load_ops("w")
    assert [(op.seq, op.status) for op in ops] == [(s, "SUCCEEDED") for s in range(1, 11)]
    row = node.store.get_workflow("w")
    assert row is not None and row.status == "SUCCEEDED" and row.run_token is None
    assert node.store.get_workflow("blocker").status == "RUNNING"  # type: ignore[union-attr]
    gate.set()
    assert blocker.result(timeout=30) == "released"


def test_a_workflow_a_worker_took_is_not_run_again_here(
        make_node: Callable[..., edge.Node]) -> None:
    gate, threads = threading.Event(), []
    app = make_app(gate, threads)
    node = make_node(app, workers=1)
    gate.set()
    h = app.start("ten", id="w")
    wait_until(lambda: node.store.get_workflow("w").status == "SUCCEEDED",  # type: ignore[union-attr]
               what="the worker to finish it")
    assert h.result(timeout=30) == 45
    assert [t for t, _ in threads] == ["edge-worker-0"] * 10  # ran once, by the worker


def test_a_timeout_hands_the_run_back_to_the_workers_without_rerunning_steps(
        make_node: Callable[..., edge.Node]) -> None:
    gate, threads = threading.Event(), []
    app = make_app(gate, threads, delay=0.05)
    node = make_node(app, workers=1)
    busy_worker(app, node)
    h = app.start("ten", id="w")
    with pytest.raises(TimeoutError):
        h.result(timeout=0.12)
    row = node.store.get_workflow("w")
    assert row is not None and row.status == "PENDING"  # given back, claim released
    here = [i for t, i in threads if t == threading.current_thread().name]
    assert here and len(here) < 10
    gate.set()  # the worker is free: it replays the checkpoints and runs the rest
    assert h.result(timeout=30) == 45
    assert [i for _, i in threads] == list(range(10))  # no step body ran twice
    assert {t for t, i in threads if i not in here} == {"edge-worker-0"}


def test_a_step_calling_result_does_not_run_the_workflow_inside_itself(
        make_node: Callable[..., edge.Node]) -> None:
    gate, threads = threading.Event(), []
    app = make_app(gate, threads)

    @app.step(name="outer")
    def outer() -> int:
        # Inside a step: the run context of this thread must stay the outer run's.
        return int(app.start("ten", id="inner").result(timeout=30))

    @app.workflow(name="parent")
    def parent() -> int:
        return outer() + 1

    node = make_node(app, workers=2)
    assert app.start("parent", id="p").result(timeout=30) == 46
    assert "MainThread" not in {t for t, _ in threads}
    assert node.store.get_workflow("inner").status == "SUCCEEDED"  # type: ignore[union-attr]


def test_a_failed_checkpoint_on_the_callers_thread_holds_the_run(
        make_node: Callable[..., edge.Node], data_dir: Path) -> None:
    gate, threads = threading.Event(), []
    app = make_app(gate, threads)
    full = threading.Event()

    def cap(conn: sqlite3.Connection) -> None:
        n = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {n}")

    @app.step(name="produce")
    def produce() -> str:
        threads.append((threading.current_thread().name, -1))
        if not full.is_set():
            full.set()
            node.store.write(cap)  # the disk is now full for anything that grows the file
        return "x" * BIG

    @app.workflow(name="big")
    def big() -> int:
        return len(produce())

    node = make_node(app, workers=1)
    busy_worker(app, node)
    h = app.start("big", id="b")
    with pytest.raises(TimeoutError):
        h.result(timeout=0.5)  # the caller ran it: its checkpoint failed, nothing acked
    assert threads == [(threading.current_thread().name, -1)]
    row = node.store.get_workflow("b")
    # Held, not lost and not failed: under its claim until write recovery's retry
    # gives it back (PENDING) for the (busy) worker.
    assert row is not None and row.status in ("RUNNING", "PENDING"), row
    assert node.store.load_ops("b") == []

    def uncap(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA max_page_count = 1000000")

    node.store.write(uncap)
    gate.set()
    assert h.result(timeout=30) == BIG  # write recovery re-ran it on a worker
    assert [t for t, _ in threads] == [threading.current_thread().name, "edge-worker-0"]


def test_stop_drains_a_run_on_a_callers_thread(make_node: Callable[..., edge.Node]) -> None:
    gate, threads = threading.Event(), []
    app = make_app(gate, threads, delay=0.05)
    node = make_node(app, workers=1)
    busy_worker(app, node)
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            app.start("ten", id="w").result()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=caller, name="caller")
    t.start()
    wait_until(lambda: len(threads) >= 2, what="the caller's run to start")
    gate.set()
    node.stop(grace=10)
    t.join(10)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], edge.NotReady), errors
    with edge.Node(app, data_dir=node.settings.data_dir, workers=1):
        row = wait_until(lambda: (r := app.runtime().store.get_workflow("w")) is not None
                         and r.status == "SUCCEEDED" and r, what="the resumed run")
    assert row.status == "SUCCEEDED"
    done = [i for _, i in threads]
    assert done == list(range(10)), done  # drained between steps: none ran twice


def test_a_crash_on_the_callers_thread_before_the_claim_leaves_it_to_the_workers(
        make_node: Callable[..., edge.Node], monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.worker as worker

    gate, threads = threading.Event(), []
    app = make_app(gate, threads)
    node = make_node(app, workers=1)
    busy_worker(app, node)
    real = worker.execute

    def broken_on_the_caller(rt: object, wid: str, *args: object, **kw: object) -> None:
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("a bug on the caller's path")
        real(rt, wid, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "execute", broken_on_the_caller)
    h = app.start("ten", id="w")
    with pytest.raises(TimeoutError):
        h.result(timeout=0.2)  # the caller's run crashed; the worker is still busy
    assert node.store.get_workflow("w").status == "PENDING"  # type: ignore[union-attr]
    gate.set()  # the worker is free: it was handed the workflow back
    assert h.result(timeout=30) == 45
    assert {t for t, _ in threads} == {"edge-worker-0"}
