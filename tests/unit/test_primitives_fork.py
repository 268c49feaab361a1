"""Fork: a new workflow reusing the checkpoints before seq N (the repair tool after a bug
fix); the source is untouched; bad N, unknown ids and unfinished checkpoints are refused."""

from __future__ import annotations

import pytest

import edge
from edge.errors import Conflict, NotFound, UsageError
from tests.conftest import run_cli, wait_until


def make_app() -> tuple[edge.App, list[str], dict[str, bool]]:
    app = edge.App("forky")
    ran: list[str] = []
    bug = {"on": True}

    @app.step(name="charge")
    def charge() -> str:
        ran.append("charge")
        return "receipt"

    @app.step(name="ship")
    def ship(r: str) -> str:
        ran.append("ship")
        if bug["on"]:
            raise ValueError("bad address format")
        return f"shipped {r}"

    @app.workflow(name="order")
    def order() -> str:
        r = charge()
        edge.set_event("charged", r)
        return ship(r)

    return app, ran, bug


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return run_cli(argv, capsys)


def test_fork_reuses_checkpoints_before_n_and_leaves_the_source_alone(make_node):
    app, ran, bug = make_app()
    node = make_node(app)
    with pytest.raises(edge.WorkflowFailed):
        app.start("order", id="o1").result(timeout=10)
    assert ran == ["charge", "ship"]
    bug["on"] = False  # the fix is deployed
    out = node.verbs.fork("o1", 3, id="o1-fixed")  # seq 1 charge, 2 set_event, 3 ship
    assert out == {"id": "o1-fixed", "forked_from": "o1", "from_step": 3, "reused": 2,
                   "status": "PENDING"}
    assert app.handle("o1-fixed").result(timeout=10) == "shipped receipt"
    assert ran == ["charge", "ship", "ship"]  # charge was reused, not run again
    assert node.store.get_workflow("o1").status == "FAILED"
    assert app.get_event("o1-fixed", "charged") == "receipt"  # published before N: copied
    from_scratch = node.verbs.fork("o1", 1)
    assert from_scratch["id"].startswith("o1:fork:") and from_scratch["reused"] == 0
    assert app.handle(from_scratch["id"]).result(timeout=10) == "shipped receipt"
    assert ran == ["charge", "ship", "ship", "charge", "ship"]


def test_bad_fork_requests_get_clear_errors(make_node):
    app, _, _ = make_app()
    node = make_node(app)
    with pytest.raises(edge.WorkflowFailed):
        app.start("order", id="o").result(timeout=10)
    with pytest.raises(NotFound, match="no workflow with id 'nope'"):
        node.verbs.fork("nope", 1)
    with pytest.raises(UsageError, match=r"out of range: workflow o has operations 1\.\.3"):
        node.verbs.fork("o", 9)
    with pytest.raises(UsageError, match="whole number >= 1"):
        node.verbs.fork("o", 0)
    with pytest.raises(Conflict, match="already exists"):
        node.verbs.fork("o", 1, id="o")


def test_a_step_without_a_final_outcome_cannot_be_reused(make_node):
    app = edge.App("parked")

    @app.workflow(name="nap")
    def nap() -> str:
        edge.sleep(3600)
        return "done"

    node = make_node(app)
    app.start("nap", id="n")
    wait_until(lambda: node.store.get_workflow("n").status == "SLEEPING", what="SLEEPING")
    with pytest.raises(UsageError, match="seq 1 .*no final outcome"):
        node.verbs.fork("n", 2)


def test_fork_over_http_and_the_cli(make_node, capsys):
    app, _, bug = make_app()
    node = make_node(app, listen="127.0.0.1:0")
    url = node.http.url
    with pytest.raises(edge.WorkflowFailed):
        app.start("order", id="c1").result(timeout=10)
    bug["on"] = False
    h = edge.Client(url).fork("c1", 3, new_id="c1-http")
    assert h.result(timeout=10) == "shipped receipt"
    code, out, _ = run(["fork", "c1", "--from-step", "3", "--id", "c1-cli", "--url", url],
                       capsys)
    assert code == 0 and out.strip() == "c1-cli"
    assert app.handle("c1-cli").result(timeout=10) == "shipped receipt"
    code, _, err = run(["fork", "c1", "--from-step", "42", "--url", url], capsys)
    assert code == 1 and "out of range" in err and "hint:" in err
    code, _, err = run(["fork", "ghost", "--from-step", "1", "--url", url], capsys)
    assert code == 1 and "no workflow with id 'ghost'" in err
