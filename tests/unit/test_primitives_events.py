"""Published values: edge.set_event inside a workflow, read with app.get_event, the
HTTP route and Client.get_event; a replay never publishes again."""

from __future__ import annotations

import threading

import pytest

import edge
from edge.errors import NotFound, UsageError
from edge.store import messages
from tests.conftest import wait_until


def make_app() -> tuple[edge.App, list[str]]:
    app = edge.App("progress")
    ran: list[str] = []

    @app.step()
    def work(i: int) -> int:
        ran.append(f"work{i}")
        return i

    @app.workflow(name="job")
    def job(n: int) -> str:
        for i in range(1, n + 1):
            work(i)
            edge.set_event("progress", {"done": i, "of": n})
        edge.set_event("phase", "waiting")
        edge.wait_event("go")  # parks: the next run replays every set_event
        edge.set_event("phase", "finished")
        return "ok"

    return app, ran


def test_set_event_publishes_the_latest_value_and_replay_does_not_republish(make_node):
    app, ran = make_app()
    node = make_node(app)
    h = app.start(app.workflows["job"].fn, 3, id="j")
    wait_until(lambda: node.store.get_workflow("j").status == "WAITING", what="WAITING")
    assert app.get_event("j", "progress") == {"done": 3, "of": 3}
    assert app.get_event("j", "phase") == "waiting"
    first = node.verbs.get_event("j", "progress")
    assert first["published"] and first["seq"] == 6  # work, set, work, set, work, set
    node.verbs.send_event("j", "go")
    assert h.result(timeout=10) == "ok"
    assert app.get_event("j", "phase") == "finished"
    assert node.verbs.get_event("j", "progress") == first  # the replay did not write it again
    assert ran == ["work1", "work2", "work3"]
    kinds = [(s["kind"], s["name"]) for s in node.verbs.describe("j")["steps"]]
    assert kinds.count(("set_event", "progress")) == 3
    assert node.verbs.get_events("j")["values"] == {"progress": {"done": 3, "of": 3},
                                                    "phase": "finished"}


def test_get_event_waits_for_a_first_value_and_gives_up_at_once_when_final(make_node):
    app = edge.App("waiter")

    @app.workflow()
    def wf() -> None:
        edge.wait_event("go")
        edge.set_event("result", 42)

    @app.workflow()
    def quiet() -> None:
        return None

    node = make_node(app)
    app.start(wf, id="w")
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(app.get_event("w", "result", timeout=10)))
    t.start()
    wait_until(lambda: node.store.get_workflow("w").status == "WAITING", what="WAITING")
    node.verbs.send_event("w", "go")
    t.join(10)
    assert got == [42]
    app.start(quiet, id="q").result(timeout=10)
    assert app.get_event("q", "never", timeout=30, default="none") == "none"  # final: no wait
    assert app.get_event("w", "other", timeout=0.0) is None


def test_bad_input_gets_a_clear_error(make_node):
    app = edge.App("bad")

    @app.workflow()
    def wf() -> None:
        edge.set_event("", 1)

    node = make_node(app)
    with pytest.raises(NotFound, match="no workflow with id 'nope'"):
        app.get_event("nope", "k")
    with pytest.raises(UsageError, match="invalid timeout"):
        node.verbs.get_event("x", "k", timeout=-1)
    with pytest.raises(edge.WorkflowFailed) as err:
        app.start(wf, id="b").result(timeout=10)
    assert "1..200 characters" in err.value.error["message"]
    with pytest.raises(edge.NotInWorkflow):
        edge.set_event("k", 1)


def test_http_route_and_client(make_node):
    app, _ = make_app()
    node = make_node(app, listen="127.0.0.1:0")
    client = edge.Client(node.http.url)
    app.start(app.workflows["job"].fn, 2, id="h")
    wait_until(lambda: node.store.get_workflow("h").status == "WAITING", what="WAITING")
    assert client.get_event("h", "progress") == {"done": 2, "of": 2}
    assert client.get_event("h", "missing", timeout=0.2, default="d") == "d"
    assert client.get_events("h") == {"progress": {"done": 2, "of": 2}, "phase": "waiting"}
    status, body = client.request("GET", "/v1/workflows/h/values/phase")
    assert status == 200 and body["published"] and body["value"] == "waiting"
    with pytest.raises(NotFound):
        client.get_event("nope", "progress")
    with pytest.raises(UsageError, match="timeout"):
        client.request("GET", "/v1/workflows/h/values/phase", query={"timeout": "99"})
    with pytest.raises(UsageError, match="unknown query parameter"):
        client.request("GET", "/v1/workflows/h/values/phase", query={"wait": "1"})


def test_events_to_unknown_or_finished_workflows_are_refused_clearly(make_node):
    from edge.errors import Conflict

    app = edge.App("finished")

    @app.workflow(name="done")
    def done() -> str:
        return "ok"

    node = make_node(app)
    app.start("done", id="d").result(timeout=10)
    with pytest.raises(NotFound, match="no workflow with id 'ghost'") as err:
        node.verbs.send_event("ghost", "go")
    assert "edge list" in err.value.hint
    with pytest.raises(Conflict, match="already SUCCEEDED; the event would never be read"):
        node.verbs.send_event("d", "go")
    assert messages.pending_events(node.store, "d") == []
