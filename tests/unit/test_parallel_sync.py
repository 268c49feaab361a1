"""edge.parallel: a sync workflow's steps run concurrently on threads, seq in argument
order, checkpointed one by one, replayed without running, errors in argument order."""

from __future__ import annotations

import threading
from functools import partial

import pytest

import edge
from edge.errors import UsageError
from tests.conftest import wait_until


def _history(node: edge.Node, wid: str) -> list[tuple[int, str, str, str]]:
    return [(s["seq"], s["kind"], s["name"].rsplit(".", 1)[-1], s["status"])
            for s in node.verbs.describe(wid)["steps"]]


def test_parallel_runs_bodies_concurrently_with_seq_in_argument_order(make_node, data_dir):
    app = edge.App("par")
    all_in = threading.Barrier(3, timeout=10)  # passes only if 3 bodies run at once
    bodies: list[str] = []
    keys: dict[str, str] = {}

    @app.step()
    def fetch(name: str, slow: bool = False) -> str:
        bodies.append(name)
        keys[name] = edge.context().idempotency_key
        all_in.wait()
        return name.upper()

    @app.step()
    def total(xs: list) -> str:
        return "".join(xs)

    @app.workflow()
    def wf() -> str:
        got = edge.parallel(partial(fetch, "a"), partial(fetch, "b", slow=True),
                            partial(fetch, name="c"))
        edge.wait_event("go")
        return total(got)

    node = make_node(app, workers=4)
    h = app.start(wf, id="p")
    wait_until(lambda: node.store.get_workflow("p").status == "WAITING", what="WAITING")
    assert sorted(bodies) == ["a", "b", "c"]
    assert keys == {"a": "p:1", "b": "p:2", "c": "p:3"}
    node.stop()
    node2 = make_node(app, workers=4)
    node2.verbs.send_event("p", "go")
    assert node2.verbs.handle("p").result(timeout=10) == "ABC"
    assert sorted(bodies) == ["a", "b", "c"], "a checkpointed branch ran again"
    assert _history(node2, "p") == [(1, "step", "fetch", "SUCCEEDED"),
                                    (2, "step", "fetch", "SUCCEEDED"),
                                    (3, "step", "fetch", "SUCCEEDED"),
                                    (4, "wait_event", "go", "SUCCEEDED"),
                                    (5, "step", "total", "SUCCEEDED")]
    assert h.id == "p"


def test_a_failing_branch_raises_after_the_others_checkpointed(make_node):
    app = edge.App("par-fail")

    @app.step()
    def ok(x: int) -> int:
        return x

    @app.step()
    def bad() -> None:
        raise ValueError("nope")

    @app.workflow()
    def wf() -> dict:
        try:
            edge.parallel(partial(ok, 1), bad, partial(ok, 3))
        except edge.StepFailed as exc:
            return {"type": exc.type, "seq": exc.seq}
        return {}

    node = make_node(app)
    assert app.start(wf, id="f").result(timeout=10) == {"type": "ValueError", "seq": 2}
    assert [st for *_, st in _history(node, "f")] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]


def test_parallel_refuses_what_is_not_a_step_call_and_async_workflows(make_node):
    app = edge.App("par-refuse")

    @app.workflow()
    def wf() -> str:
        try:
            edge.parallel(lambda: 1)
        except UsageError as exc:
            return exc.message
        return ""

    @app.workflow()
    async def awf() -> str:
        try:
            edge.parallel()
        except UsageError as exc:
            return exc.message
        return ""

    make_node(app)
    assert "is not a step call" in app.start(wf, id="r").result(timeout=10)
    assert app.start(awf, id="ar").result(timeout=10) == "edge.parallel() is for sync workflows"
    with pytest.raises(edge.NotInWorkflow):
        edge.parallel()
