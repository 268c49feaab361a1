"""Queues: concurrency limits (slots held until final with hold_slot_while_parked, also
across a restart; the default rule, parking gives the slot back, is in
test_queue_parking.py), priority,
rate limits on an injected clock, dedup keys, deadlines while waiting for a slot, the
HTTP routes and `edge list --queue`."""

from __future__ import annotations

import sys
import threading

import pytest

import edge
from edge.cli import main as cli_main
from edge.errors import ConfigError
from tests.conftest import wait_until


def statuses(node: edge.Node, ids: list[str]) -> list[str]:
    return [node.store.get_workflow(i).status for i in ids]


def gated_app(concurrency: int | None = 2, rate: tuple[int, float] | None = None,
              hold: bool = True) -> tuple[edge.App, dict[str, int], list[str]]:
    """A queue ``q`` whose workflows wait for event ``go`` between two steps; ``gauge``
    counts those between the steps (holding their slot when ``hold``)."""
    app = edge.App("queued")
    app.queue("q", concurrency=concurrency, rate=rate, hold_slot_while_parked=hold)
    lock = threading.Lock()
    gauge = {"now": 0, "max": 0}
    order: list[str] = []

    @app.step(name="enter")
    def enter(tag: str) -> None:
        with lock:
            order.append(tag)
            gauge["now"] += 1
            gauge["max"] = max(gauge["max"], gauge["now"])

    @app.step(name="leave")
    def leave() -> None:
        with lock:
            gauge["now"] -= 1

    @app.workflow(name="gated", queue="q")
    def gated(tag: str) -> str:
        enter(tag)
        edge.wait_event("go")  # parked, still holding its slot
        leave()
        return tag

    return app, gauge, order


def test_concurrency_is_never_exceeded_and_a_parked_workflow_keeps_its_slot(make_node):
    app, gauge, _ = gated_app(concurrency=2)
    node = make_node(app)
    ids = [app.start("gated", f"t{i}", id=f"g{i}").id for i in range(6)]
    wait_until(lambda: statuses(node, ids).count("WAITING") == 2, what="two admitted")
    assert statuses(node, ids).count("PENDING") == 4
    info = node.verbs.queue_info("q")
    assert info["queues"][0] == {"name": "q", "concurrency": 2, "rate": None,
                                 "hold_slot_while_parked": True, "declared": True,
                                 "waiting": 4, "active": 2}
    assert {w["id"] for w in info["workflows"]} == set(ids)
    for _ in range(6):
        waiting = wait_until(lambda: [i for i, st in zip(ids, statuses(node, ids), strict=True)
                                      if st == "WAITING"], what="an admitted workflow")
        assert len(waiting) <= 2
        node.verbs.send_event(waiting[0], "go")
        app.handle(waiting[0]).result(timeout=10)
    assert gauge["max"] == 2 and gauge["now"] == 0
    assert node.verbs.queue_info("q")["queues"][0]["active"] == 0


def test_higher_priority_is_admitted_first(make_node):
    app, _, order = gated_app(concurrency=1)
    q = app.queues["q"]
    node = make_node(app)
    app.start("gated", "blocker", id="b")
    wait_until(lambda: statuses(node, ["b"]) == ["WAITING"], what="blocker admitted")
    for tag, prio in (("low", 0), ("high", 5), ("mid", 1)):
        app.start("gated", tag, id=tag, queue=q.options(priority=prio))
    for wid in ("b", "high", "mid", "low"):
        wait_until(lambda w=wid: statuses(node, [w]) == ["WAITING"], what=f"{wid} admitted")
        node.verbs.send_event(wid, "go")
        app.handle(wid).result(timeout=10)
    assert order == ["blocker", "high", "mid", "low"]


def test_rate_limit_admits_n_per_period_on_the_injected_clock(make_node):
    clock = edge.FakeClock()
    app = edge.App("rated")
    app.queue("r", rate=(2, 60.0))

    @app.workflow(name="quick", queue="r")
    def quick(i: int) -> int:
        return i

    node = make_node(app, clock=clock)
    ids = [app.start("quick", i, id=f"r{i}").id for i in range(5)]
    wait_until(lambda: statuses(node, ids).count("SUCCEEDED") == 2, what="two ran")
    assert statuses(node, ids).count("PENDING") == 3
    clock.advance(59)
    node.timers.tick(clock.time())
    assert statuses(node, ids).count("PENDING") == 3
    clock.advance(1)
    node.timers.tick(clock.time())
    wait_until(lambda: statuses(node, ids).count("SUCCEEDED") == 4, what="two more")
    clock.advance(60)
    node.timers.tick(clock.time())
    wait_until(lambda: statuses(node, ids).count("SUCCEEDED") == 5, what="the last")


def test_a_dedup_key_returns_the_live_workflow_instead_of_a_second_one(make_node):
    app, _, _ = gated_app(concurrency=5)
    q = app.queues["q"]
    node = make_node(app)
    first = app.start("gated", "a", id="d1", queue=q.options(dedup="order-7"))
    again = node.verbs.start_workflow("gated", ["b"], id="d2", queue=q.options(dedup="order-7"))
    assert again == ("d1", False)
    assert node.store.get_workflow("d2") is None
    wait_until(lambda: statuses(node, ["d1"]) == ["WAITING"], what="admitted")
    node.verbs.send_event("d1", "go")
    first.result(timeout=10)
    # The key is free again once the holder is final.
    assert node.verbs.start_workflow("gated", ["c"], id="d3", queue=q.options(dedup="order-7")) == (
        "d3", True)


def test_slots_survive_a_restart_and_cancel_frees_one(data_dir):
    app, _, _ = gated_app(concurrency=2)
    node = edge.Node(app, data_dir=data_dir, workers=4, listen=None).start()
    ids = [app.start("gated", f"t{i}", id=f"s{i}").id for i in range(4)]
    wait_until(lambda: statuses(node, ids).count("WAITING") == 2, what="two admitted")
    holders = [i for i in ids if statuses(node, [i]) == ["WAITING"]]
    node.stop()
    node = edge.Node(app, data_dir=data_dir, workers=4, listen=None).start()
    try:
        assert statuses(node, ids).count("WAITING") == 2  # no third admitted at boot
        node.verbs.cancel(holders[0])
        wait_until(lambda: statuses(node, ids).count("WAITING") == 2, what="slot reused")
        assert statuses(node, ids).count("PENDING") == 1
    finally:
        node.stop()


def test_a_workflow_waiting_for_a_slot_past_its_deadline_is_cancelled(make_node):
    clock = edge.FakeClock()
    app, _, _ = gated_app(concurrency=1)
    node = make_node(app, clock=clock)
    app.start("gated", "holder", id="h")
    wait_until(lambda: statuses(node, ["h"]) == ["WAITING"], what="holder admitted")
    app.start("gated", "late", id="late", timeout=30)
    clock.advance(31)
    node.timers.tick(clock.time())
    assert statuses(node, ["late"]) == ["CANCELLED"]
    assert node.verbs.describe("late")["error"]["type"] == "TimeoutError"


def test_bad_queue_declarations_are_refused():
    app = edge.App("badq")
    with pytest.raises(ConfigError, match="concurrency"):
        app.queue("q", concurrency=0)
    with pytest.raises(ConfigError, match="rate"):
        app.queue("q", rate=(0, 60))
    app.queue("q", concurrency=1)
    with pytest.raises(ConfigError, match="declared twice"):
        app.queue("q", concurrency=2)


def test_http_enqueue_and_edge_list_queue(make_node, capsys):
    app, _, _ = gated_app(concurrency=1)
    node = make_node(app, listen="127.0.0.1:0")
    client = edge.Client(node.http.url)
    a = client.enqueue("q", "gated", ["a"], id="h1")
    b = client.enqueue("q", "gated", ["b"], id="h2", priority=3, dedup="k")
    assert a.created and b.created
    assert client.enqueue("q", "gated", ["c"], dedup="k").id == "h2"
    wait_until(lambda: statuses(node, ["h1"]) == ["WAITING"], what="admitted")
    assert [q["name"] for q in client.queues()["queues"]] == ["q"]
    old = sys.argv
    sys.argv = ["edge", "list", "--queue", "q", "--url", node.http.url]
    try:
        cli_main()
    except SystemExit as exc:
        assert not exc.code
    finally:
        sys.argv = old
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("queue q: 1 waiting, 1 active, concurrency 1, "
                                   "slots held while parked")
    assert "h1" in out and "h2" in out


def test_edge_list_queue_reads_a_stopped_nodes_file(data_dir, capsys):
    app, _, _ = gated_app(concurrency=1)
    node = edge.Node(app, data_dir=data_dir, workers=2, listen=None).start()
    for i in range(3):
        app.start("gated", f"t{i}", id=f"f{i}")
    wait_until(lambda: statuses(node, ["f0", "f1", "f2"]).count("WAITING") == 1,
               what="one admitted")
    node.stop()
    old = sys.argv
    sys.argv = ["edge", "list", "--queue", "q", "--data-dir", str(data_dir), "--json"]
    try:
        cli_main()
    except SystemExit as exc:
        assert not exc.code
    finally:
        sys.argv = old
    import json

    got = json.loads(capsys.readouterr().out)
    assert got["queue"]["waiting"] == 2 and got["queue"]["active"] == 1
    assert sorted(w["id"] for w in got["workflows"]) == ["f0", "f1", "f2"]
