"""The verbs (edge/verbs.py) are their own object, built from explicit parts.

``Verbs`` is built here the way the Node builds it, from a Runtime, the app, the
executors it asks and a ``NodeState`` stand-in, so these tests see what the verbs do
with exactly those parts: they check readiness before the store is touched, answer
``status`` in every state, and refuse a replicated ack without a replica before
anything is written. ``Node`` keeps no forward of any verb.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import edge
from edge.errors import Conflict, CorruptDatabase, NotReady
from edge.metrics import Metrics
from edge.retention import Retention
from edge.runtime import Runtime
from edge.scheduler import Scheduler
from edge.store import Store
from edge.timers import Timers
from edge.tracing import Tracing
from edge.verbs import Replica, Verbs
from edge.worker import Workers


class Health:
    """A NodeState: a node in ``state``, ready or not, with no replica."""

    def __init__(self, state: str, ready: bool) -> None:
        self.state, self.ready, self.node_id, self.leader = state, ready, "n-1", False
        self.replication: Replica | None = None

    def require_ready(self) -> None:
        if not self.ready:
            raise NotReady(f"the stand-in node is {self.state}", "wait")

    def require_writable(self) -> None:
        pass

    def damage(self) -> CorruptDatabase | None:
        return None

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return False


class Hooks:
    state = "ready"
    ready = True

    def fire_timer(self, kind: str, key: str, now: float) -> None:
        raise AssertionError("no timer fires here")

    def replicated(self, wid: str | None) -> bool:
        return True


def build(tmp_path: Path, health: Health, store: Callable[[], Store]) -> Verbs:
    app = edge.App("verbs-parts")

    @app.workflow(name="w")
    def w(x: int = 0) -> int:
        return x

    clock = edge.FakeClock()
    rt = Runtime(app, edge.Settings(data_dir=tmp_path), clock, Metrics(CollectorRegistry()),
                 Tracing(None), store, Hooks(), Timers(clock, lambda *a: None))
    workers = rt.workers = Workers(rt, 1)
    return Verbs(rt, app, health, workers=workers, scheduler=Scheduler(rt),
                 retention=Retention(rt))


def untouchable(reached: list[str]) -> Callable[[], Store]:
    def store() -> Store:
        reached.append("store")
        raise AssertionError("the store was reached")

    return store


CALLS: dict[str, Callable[[Verbs], Any]] = {
    "start_workflow": lambda v: v.start_workflow("w", [1]),
    "start_many": lambda v: v.start_many("w", [([1], {}, None)]),
    "describe": lambda v: v.describe("x"),
    "list_workflows": lambda v: v.list_workflows(),
    "send_event": lambda v: v.send_event("x", "go", 1),
    "cancel": lambda v: v.cancel("x"),
    "resume": lambda v: v.resume("x"),
    "get_event": lambda v: v.get_event("x", "k"),
    "get_events": lambda v: v.get_events("x"),
    "fork": lambda v: v.fork("x", 1),
    "queue_info": lambda v: v.queue_info(),
    "set_priority": lambda v: v.set_priority("x", 1),
    "schedules": lambda v: v.schedules(),
    "pause_schedule": lambda v: v.pause_schedule("nightly"),
    "trigger_schedule": lambda v: v.trigger_schedule("nightly", "1h"),
    "prune": lambda v: v.prune(60.0),
    "step": lambda v: v.step("x", 1),
}


@pytest.mark.parametrize("verb", sorted(CALLS))
def test_a_verb_asks_readiness_before_it_reaches_the_store(tmp_path: Path, verb: str) -> None:
    reached: list[str] = []
    verbs = build(tmp_path, Health("standby", ready=False), untouchable(reached))
    with pytest.raises(NotReady, match="the stand-in node is standby"):
        CALLS[verb](verbs)
    assert reached == []


def test_every_database_verb_is_in_the_readiness_table() -> None:
    # A new verb must join CALLS (and so be checked) unless it answers in every state.
    always = {"status", "workflow_names", "handle", "result", "expire"}
    public = {n for n, f in inspect.getmembers(Verbs, inspect.isfunction)
              if not n.startswith("_")}
    assert public - always == set(CALLS)


def test_status_answers_before_the_database_is_open(tmp_path: Path) -> None:
    def no_store() -> Store:
        raise NotReady("the node is booting", "wait")

    out = build(tmp_path, Health("booting", ready=False), no_store).status()
    assert (out["state"], out["ready"], out["node_id"], out["leader"]) == (
        "booting", False, "n-1", False)
    assert set(out["workflows"].values()) == {0} and out["write_fault"] is None
    assert out["replication"] is None and out["damage"] is None


def test_a_replicated_ack_without_a_replica_writes_nothing(tmp_path: Path) -> None:
    reached: list[str] = []
    verbs = build(tmp_path, Health("ready", ready=True), untouchable(reached))
    for call in (lambda: verbs.start_workflow("w", [1], ack="replicated"),
                 lambda: verbs.send_event("x", "go", ack="replicated")):
        with pytest.raises(Conflict) as err:
            call()
        assert err.value.code == "no_replica"
    assert reached == []


def test_the_node_keeps_no_forward_of_a_verb() -> None:
    verbs = {n for n, _ in inspect.getmembers(Verbs, inspect.isfunction)
             if not n.startswith("_")}
    assert [n for n in sorted(verbs) if hasattr(edge.Node, n)] == []
    # What is left on the Node: its lifecycle, its readiness, the runtime's hooks.
    methods = {n for n, _ in inspect.getmembers(edge.Node, inspect.isfunction)
               if not n.startswith("_")}
    assert methods == {"start", "stop", "fail", "wait_stopped", "require_ready",
                       "require_writable", "damage", "fire_timer", "replicated"}


def test_a_node_serves_its_verbs_and_the_api_reads_its_health(make_node: Any) -> None:
    app = edge.App("verbs-node")

    @app.workflow(name="echo")
    def echo(x: int) -> int:
        return x

    node = make_node(app, listen="127.0.0.1:0")
    assert node.verbs.health is node and node.http.verbs is node.verbs
    wid, created = node.verbs.start_workflow("echo", [7], id="e-1")
    assert created and node.verbs.result(wid, timeout=10) == 7
    assert edge.Client(node.http.url).status()["state"] == "ready"
