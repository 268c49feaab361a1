"""Replay: recorded outcomes return without running bodies; divergence is loud."""

from __future__ import annotations

import pytest

import edge
from tests.conftest import wait_until


def test_replay_returns_recorded_values_without_running_bodies(make_node):
    app = edge.App("replay")
    calls: list[str] = []

    @app.step()
    def a(x: int) -> dict:
        calls.append("a")
        return {"v": x * 2}

    @app.step()
    def b(v: int) -> int:
        calls.append("b")
        return v + 1

    @app.workflow()
    def wf(x: int) -> list:
        r = a(x)
        got = edge.wait_event("go")  # parks: the next run replays a() from its record
        return [r, b(r["v"]), got]

    node = make_node(app)
    h = app.start(wf, 4, id="r1")
    wait_until(lambda: node.store.get_workflow("r1").status == "WAITING", what="WAITING")
    assert calls == ["a"]
    node.verbs.send_event("r1", "go", {"ok": True})
    assert h.result(timeout=10) == [{"v": 8}, 9, {"ok": True}]
    assert calls == ["a", "b"], "a() ran again on replay"
    kinds = [(s["seq"], s["kind"], s["name"].rsplit(".", 1)[-1])
             for s in node.verbs.describe("r1")["steps"]]
    assert kinds == [(1, "step", "a"), (2, "wait_event", "go"), (3, "step", "b")]


def test_resume_after_failure_keeps_successful_checkpoints(make_node):
    app = edge.App("resume")
    calls: list[str] = []
    broken = {"on": True}

    @app.step()
    def charge() -> str:
        calls.append("charge")
        return "receipt-1"

    @app.step(name="ship")
    def ship(r: str) -> str:
        calls.append("ship")
        if broken["on"]:
            raise RuntimeError("carrier down")
        return f"shipped {r}"

    @app.workflow()
    def order() -> str:
        return ship(charge())

    node = make_node(app)
    with pytest.raises(edge.WorkflowFailed) as err:
        app.start(order, id="o1").result(timeout=10)
    assert err.value.error == {"type": "StepFailed",
                               "message": "step ship failed: RuntimeError: carrier down"}
    broken["on"] = False
    node.verbs.resume("o1")
    assert app.handle("o1").result(timeout=10) == "shipped receipt-1"
    assert calls == ["charge", "ship", "ship"]


def test_kind_or_name_mismatch_fails_with_nondeterminism_error(make_node):
    app = edge.App("nd")
    version = {"new": False}

    @app.step()
    def old_step() -> int:
        return 1

    @app.step()
    def new_step() -> int:
        return 2

    @app.workflow()
    def wf() -> int:
        try:
            (new_step if version["new"] else old_step)()
        except Exception:
            pass  # user code swallowing errors must not hide the divergence
        edge.wait_event("go")
        return 0

    node = make_node(app)
    h = app.start(wf, id="nd1")
    wait_until(lambda: node.store.get_workflow("nd1").status == "WAITING", what="WAITING")
    version["new"] = True  # a deploy changed the code while the run was parked
    node.verbs.send_event("nd1", "go")
    with pytest.raises(edge.WorkflowFailed) as err:
        h.result(timeout=10)
    assert err.value.error["type"] == "NonDeterminismError"
    msg = err.value.error["message"]
    assert "nd1" in msg and "seq 1" in msg and "old_step" in msg and "new_step" in msg


def test_patched_lets_old_runs_take_the_old_branch(make_node):
    app = edge.App("patch")
    version = {"new": False}
    seen: list[str] = []

    @app.step()
    def extra() -> str:
        seen.append("extra")
        return "x"

    @app.workflow()
    def wf() -> str:
        if version["new"] and edge.patched("add-extra"):
            extra()
        edge.wait_event("go")
        return "done"

    node = make_node(app)
    old = app.start(wf, id="old")
    wait_until(lambda: node.store.get_workflow("old").status == "WAITING", what="WAITING")
    version["new"] = True
    new = app.start(wf, id="new")
    wait_until(lambda: node.store.get_workflow("new").status == "WAITING", what="WAITING")
    node.verbs.send_event("old", "go")
    node.verbs.send_event("new", "go")
    assert old.result(timeout=10) == "done"
    assert new.result(timeout=10) == "done"
    assert seen == ["extra"]  # only the new run took the patched branch


def test_json_roundtrip_on_first_run_too(make_node):
    app = edge.App("json")
    seen = []

    @app.step()
    def pair() -> tuple:
        return (1, "a")

    @app.workflow()
    def wf(t: list) -> str:
        p = pair()
        seen.append((type(p).__name__, type(t).__name__))
        return "ok"

    make_node(app)
    assert app.start(wf, (1, 2), id="j1").result(timeout=10) == "ok"
    assert seen == [("list", "list")]


def test_workflow_id_is_an_idempotency_key(make_node):
    app = edge.App("ids")
    runs = []

    @app.workflow()
    def wf(x: int) -> int:
        runs.append(x)
        return x

    node = make_node(app)
    assert app.start(wf, 1, id="same").result(timeout=10) == 1
    assert app.start(wf, 2, id="same").result(timeout=10) == 1
    assert node.verbs.start_workflow(wf.__edge_workflow__, [3], id="same") == ("same", False)
    assert runs == [1]


def test_context_gives_idempotency_key_and_attempt(make_node):
    app = edge.App("ctx")
    seen = []

    @app.step(retries=2, initial_delay=0.0)
    def flaky() -> str:
        c = edge.context()
        seen.append((c.workflow_id, c.seq, c.attempt, c.idempotency_key))
        if c.attempt < 3:
            raise ConnectionError("flaky")
        return c.idempotency_key

    @app.workflow()
    def wf() -> str:
        edge.now()
        return flaky()

    make_node(app)
    assert app.start(wf, id="c1").result(timeout=10) == "c1:2"
    assert seen == [("c1", 2, 1, "c1:2"), ("c1", 2, 2, "c1:2"), ("c1", 2, 3, "c1:2")]
    with pytest.raises(edge.NotInWorkflow):
        edge.context()


def test_reserved_parameter_names_are_refused():
    app = edge.App("reserved")
    with pytest.raises(edge.EdgeError, match="reserved"):
        @app.workflow()
        def wf(id: str) -> None: ...


def test_unknown_code_version_stays_pending_and_resumes_later(make_node, data_dir):
    old_app = edge.App("v1")

    @old_app.workflow(name="legacy")
    def legacy() -> str:
        edge.wait_event("go")
        return "ran"

    node = make_node(old_app)
    old_app.start(legacy, id="L1")
    wait_until(lambda: node.store.get_workflow("L1").status == "WAITING", what="WAITING")
    node.stop()

    # v2 dropped the workflow: the run must stay, not fail.
    new_app = edge.App("v2")
    n2 = edge.Node(new_app, data_dir=data_dir, workers=2).start()
    n2.verbs.send_event("L1", "go")
    wait_until(lambda: n2.store.get_workflow("L1").blocked_on, what="blocked_on")
    row = n2.store.get_workflow("L1")
    assert row.status == "PENDING" and "unknown workflow" in row.blocked_on
    n2.stop()

    # v3 brings it back: recovery resumes it.
    n3 = make_node(old_app)
    assert old_app.handle("L1").result(timeout=10) == "ran"
    assert n3.store.get_workflow("L1").blocked_on is None
