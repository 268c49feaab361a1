"""The runtime seam (edge/runtime.py): the replication barrier reports, the engine decides.

``Runtime.wait_replicated`` returns False when the node stops before the replica
confirmed; the engine then unwinds the run (Drain), it is released PENDING and the next
boot resumes it from its checkpoint: the replicated step's body never runs twice.
The node's ``replicated`` hook is replaced by one that behaves like a replica that never
confirms (it returns False once the node drains), so no bucket is needed here; the real
barrier is covered by tests/dr/test_outage.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import edge
from edge.runtime import Runtime
from edge.store import Store
from tests.conftest import wait_until


def unconfirmed(node: edge.Node, asked: list[str | None]) -> Callable[[str | None], bool]:
    def replicated(wid: str | None) -> bool:
        asked.append(wid)
        return not node.draining.wait(30)  # False: the node stopped before a confirmation

    return replicated


@pytest.mark.parametrize("kind", ["sync", "async", "explicit", "explicit-async"])
def test_a_stop_during_the_barrier_unwinds_and_the_next_boot_resumes(
        make_node: Any, kind: str) -> None:
    app = edge.App(f"seam-{kind}")
    bodies: list[str] = []

    if kind == "sync":
        @app.step(replicated=True)
        def pay(x: int) -> int:
            bodies.append("pay")
            return x + 1

        @app.workflow()
        def wf(x: int) -> int:
            return pay(x) * 10
    elif kind == "explicit":
        @app.step()
        def pay(x: int) -> int:
            bodies.append("pay")
            return x + 1

        @app.workflow()
        def wf(x: int) -> int:
            y = pay(x)
            edge.wait_replicated()
            return y * 10
    elif kind == "explicit-async":
        @app.step()
        async def pay(x: int) -> int:  # type: ignore[misc]
            bodies.append("pay")
            return x + 1

        @app.workflow()
        async def wf(x: int) -> int:  # type: ignore[misc]
            y = await pay(x)  # type: ignore[misc]
            await edge.wait_replicated_async()
            return y * 10  # type: ignore[no-any-return]
    else:
        @app.step(replicated=True)
        async def pay(x: int) -> int:  # type: ignore[misc]
            bodies.append("pay")
            return x + 1

        @app.workflow()
        async def wf(x: int) -> int:  # type: ignore[misc]
            return await pay(x) * 10  # type: ignore[misc, no-any-return]

    node = make_node(app)
    asked: list[str | None] = []
    node.replicated = unconfirmed(node, asked)  # what Runtime.wait_replicated asks
    h = app.start(wf, 4, id="w1")
    wait_until(lambda: asked == ["w1"], what="the step to reach the barrier")
    assert node.verbs.describe("w1")["status"] == "RUNNING"
    node.stop(grace=5.0)
    assert bodies == ["pay"]
    store = Store.open(node.settings.db_path)  # between the two nodes
    try:
        row = store.get_workflow("w1")
        assert row is not None and row.status == "PENDING"  # unwound, not finished
        assert [o.status for o in store.load_ops("w1")] == ["SUCCEEDED"]
    finally:
        store.close()

    node2 = make_node(app)  # no replica: the barrier passes at once
    assert h.id == "w1" and node2.verbs.result("w1", timeout=10) == 50
    assert bodies == ["pay"]  # checkpointed before the barrier: replayed, not re-run


def test_the_engine_sees_a_runtime_and_the_app_holds_it_only_while_running(
        make_node: Any) -> None:
    app = edge.App("seam-rt")
    seen: list[object] = []

    @app.workflow()
    def wf() -> str:
        from edge.engine import current_run

        run = current_run()
        assert run is not None
        seen.append(run.rt)
        return threading.current_thread().name

    with pytest.raises(edge.errors.NotReady):
        app.runtime()
    node = make_node(app)
    assert app.runtime() is node.rt and isinstance(node.rt, Runtime)
    # Run by a worker, or by this thread when it waits before a worker took it
    # (Workers.run_here): the same runtime either way.
    ran_on = app.start(wf).result(timeout=10)
    assert ran_on == threading.current_thread().name or ran_on.startswith("edge-worker")
    assert seen == [node.rt]
    node.stop()
    with pytest.raises(edge.errors.NotReady):
        app.runtime()
