"""A queue slot is for running: a parked workflow (waiting for an event) gives its slot
back, so two workflows waiting for an approval do not starve a concurrency-2 queue; when
one wakes it waits for a slot again, in the queue's order (priority, then creation: before
work started after it). ``hold_slot_while_parked=True`` keeps the slot through the park.
Both rules, for sync and async workflows (the parked hook differs: worker thread, loop)."""

from __future__ import annotations

import threading

import pytest

import edge
from tests.conftest import wait_until


def parking_app(kind: str, hold: bool) -> tuple[edge.App, dict[str, threading.Event], list[str]]:
    """Queue ``q`` (concurrency 2): ``approval`` waits for event ``go``; ``busy`` runs until
    its gate opens; ``nightly`` runs at once. ``order`` records who ran past which point."""
    app = edge.App(f"parking-{kind}")
    app.queue("q", concurrency=2, hold_slot_while_parked=hold)
    gates: dict[str, threading.Event] = {}
    order: list[str] = []
    lock = threading.Lock()

    @app.step(name="mark")
    def mark(what: str) -> None:
        with lock:
            order.append(what)

    @app.step(name="hold")
    def hold_open(tag: str) -> None:
        assert gates.setdefault(tag, threading.Event()).wait(30), f"{tag} never released"

    if kind == "sync":
        @app.workflow(name="approval", queue="q")
        def approval(tag: str) -> str:
            edge.wait_event("go")
            mark(f"approved {tag}")
            return tag

        @app.workflow(name="busy", queue="q")
        def busy(tag: str) -> str:
            hold_open(tag)
            return tag

        @app.workflow(name="nightly", queue="q")
        def nightly(tag: str) -> str:
            mark(tag)
            return tag
    else:
        @app.workflow(name="approval", queue="q")
        async def approval_async(tag: str) -> str:
            await edge.wait_event_async("go")
            await mark(f"approved {tag}")  # type: ignore[misc]
            return tag

        @app.workflow(name="busy", queue="q")
        async def busy_async(tag: str) -> str:
            await hold_open(tag)  # type: ignore[misc]
            return tag

        @app.workflow(name="nightly", queue="q")
        async def nightly_async(tag: str) -> str:
            await mark(tag)  # type: ignore[misc]
            return tag

    return app, gates, order


def status(node: edge.Node, wid: str) -> str:
    row = node.store.get_workflow(wid)
    assert row is not None
    return row.status


def park_two_approvals(app: edge.App, node: edge.Node) -> None:
    for wid in ("a1", "a2"):
        app.start("approval", wid, id=wid)
    wait_until(lambda: [status(node, w) for w in ("a1", "a2")] == ["WAITING"] * 2,
               what="both approvals parked")


def depth(node: edge.Node) -> tuple[int, int]:
    q = node.verbs.queue_info("q")["queues"][0]
    return q["waiting"], q["active"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_parked_workflows_give_their_slots_back_and_queue_again_when_woken(make_node, kind):
    app, gates, order = parking_app(kind, hold=False)
    node = make_node(app)
    park_two_approvals(app, node)
    # Both wait for a human: the nightly job still runs, and nobody holds a slot.
    assert app.start("nightly", "n1", id="n1").result(timeout=10) == "n1"
    wait_until(lambda: depth(node) == (0, 0), what="no slot held by parked workflows")

    # Fill both slots with running work, and queue one more behind it.
    for wid in ("b1", "b2"):
        gates[wid] = threading.Event()
        app.start("busy", wid, id=wid)
    wait_until(lambda: [status(node, w) for w in ("b1", "b2")] == ["RUNNING"] * 2,
               what="two running")
    app.start("nightly", "n2", id="n2")
    assert status(node, "n2") == "PENDING"
    # A woken workflow needs a slot again before it runs: both are taken.
    node.verbs.send_event("a1", "go")
    wait_until(lambda: status(node, "a1") == "PENDING", what="a1 woken")
    assert depth(node) == (2, 2)  # a1 and n2 wait; b1 and b2 run
    assert status(node, "a1") == "PENDING" and "approved a1" not in order

    # One slot frees: a1 (created before n2, same priority) goes first.
    gates["b1"].set()
    assert app.handle("a1").result(timeout=10) == "a1"
    assert app.handle("n2").result(timeout=10) == "n2"
    assert order.index("approved a1") < order.index("n2")
    gates["b2"].set()
    node.verbs.send_event("a2", "go")
    assert app.handle("a2").result(timeout=10) == "a2"
    assert app.handle("b2").result(timeout=10) == "b2"
    assert depth(node) == (0, 0)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_hold_slot_while_parked_keeps_the_slot_until_the_workflow_is_final(make_node, kind):
    app, _, order = parking_app(kind, hold=True)
    node = make_node(app)
    park_two_approvals(app, node)
    app.start("nightly", "n1", id="n1")  # admission is decided inside the start
    assert status(node, "n1") == "PENDING"
    assert depth(node) == (1, 2)
    assert node.verbs.queue_info("q")["queues"][0]["hold_slot_while_parked"] is True
    node.verbs.send_event("a1", "go")
    # a1 kept its slot: it runs at once on waking, then its end frees the slot for n1.
    assert app.handle("a1").result(timeout=10) == "a1"
    assert app.handle("n1").result(timeout=10) == "n1"
    assert order == ["approved a1", "n1"]
    node.verbs.send_event("a2", "go")
    assert app.handle("a2").result(timeout=10) == "a2"
