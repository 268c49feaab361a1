"""A workflow that ends FAILED or CANCELLED shows no operation RUNNING: what was still
open (a wait_event, a sleep) is closed (FAILED, error type ``WorkflowEnded``,
``finished_at`` set) in the transaction
that ends the workflow (cancel while waiting, deadline while sleeping, a failure while a
wait was open), its checksum intact; a resume reopens it where it was."""

from __future__ import annotations

from pathlib import Path

import edge
from edge.store.store import Store
from tests.conftest import run_cli, wait_until


def steps(node: edge.Node, wid: str) -> list[dict]:
    return node.verbs.describe(wid)["steps"]  # type: ignore[no-any-return]


def status(node: edge.Node, wid: str) -> str:
    return str(node.verbs.describe(wid)["status"])


def assert_closed(view_steps: list[dict], kind: str) -> None:
    assert not [s for s in view_steps if s["status"] == "RUNNING"], view_steps
    (cut,) = [s for s in view_steps if s["kind"] == kind]
    assert cut["status"] == "FAILED" and cut["finished_at"] is not None, cut
    assert cut["error"]["type"] == "WorkflowEnded", cut


def test_cancel_while_waiting_closes_the_wait_and_resume_reopens_it(make_node, data_dir,
                                                                     capsys) -> None:
    app = edge.App("closed-cancel")

    @app.workflow(name="approval")
    def approval() -> object:
        return edge.wait_event("approved")

    node = make_node(app)
    h = app.start(approval, id="w1")
    wait_until(lambda: status(node, "w1") == "WAITING", what="parked")
    assert steps(node, "w1")[0]["status"] == "RUNNING"
    node.verbs.cancel("w1")
    assert status(node, "w1") == "CANCELLED"
    assert_closed(steps(node, "w1"), "wait_event")

    # Resumed: the wait is open again where it was, and takes the event.
    node.verbs.resume("w1")
    wait_until(lambda: status(node, "w1") == "WAITING", what="parked again")
    assert steps(node, "w1")[0]["status"] == "RUNNING"
    node.verbs.send_event("w1", "approved", "yes")
    assert h.result(timeout=10) == "yes"

    app.start(approval, id="w2")
    wait_until(lambda: status(node, "w2") == "WAITING", what="parked")
    node.verbs.cancel("w2")
    node.stop()
    # `edge show` of the stopped node's file: no RUNNING step, and every row verifies.
    code, out, err = run_cli(["show", "w2", "--data-dir", str(data_dir), "--json"], capsys)
    assert code == 0, err
    import json

    assert_closed(json.loads(out)["steps"], "wait_event")
    store = Store.inspect(data_dir / "edge.db")
    try:
        assert [op.status for op in store.load_ops("w2")] == ["FAILED"]  # checksum verified
    finally:
        store.close()


def test_deadline_while_sleeping_closes_the_sleep(make_node) -> None:
    clock = edge.FakeClock()
    app = edge.App("closed-deadline")

    @app.workflow(name="napper", timeout=60)
    def napper() -> None:
        edge.sleep(3600)

    node = make_node(app, clock=clock)
    app.start(napper, id="n1")
    wait_until(lambda: status(node, "n1") == "SLEEPING", what="asleep")
    clock.advance(61)
    node.timers.tick(clock.time())
    wait_until(lambda: status(node, "n1") == "CANCELLED", what="past its deadline")
    assert node.verbs.describe("n1")["error"]["type"] == "TimeoutError"
    assert_closed(steps(node, "n1"), "sleep")


def test_a_failure_with_a_wait_open_closes_the_wait(data_dir: Path) -> None:
    # The code changed under a parked workflow: the replay diverges at the open wait's
    # seq and the run FAILS (NonDeterminismError) with that wait still open.
    old = edge.App("closed-fail")

    @old.workflow(name="flow")
    def flow_v1() -> object:
        return edge.wait_event("go")

    node = edge.Node(old, data_dir=data_dir, workers=2, listen=None).start()
    try:
        old.start(flow_v1, id="f1")
        wait_until(lambda: status(node, "f1") == "WAITING", what="parked")
    finally:
        node.stop()

    new = edge.App("closed-fail")

    @new.step(name="added")
    def added() -> int:
        return 1

    @new.workflow(name="flow")
    def flow_v2() -> object:
        added()  # seq 1 is now a step: the recorded wait_event diverges
        return edge.wait_event("go")

    node = edge.Node(new, data_dir=data_dir, workers=2, listen=None).start()
    try:
        node.verbs.send_event("f1", "go", 1)  # wakes it: the replay meets the divergence
        wait_until(lambda: status(node, "f1") == "FAILED", what="diverged")
        assert node.verbs.describe("f1")["error"]["type"] == "NonDeterminismError"
        assert_closed(steps(node, "f1"), "wait_event")
    finally:
        node.stop()
