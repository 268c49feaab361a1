"""Durable time: sleep_until, timers that never fire early (clock jumps), and deadlines
that end parked workflows through the timer loop. Time is a FakeClock throughout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import edge
from edge.timers import Timers
from tests.conftest import wait_until


def status(node: edge.Node, wid: str) -> str:
    return node.store.get_workflow(wid).status


def test_sleep_until_parks_until_the_time_and_not_a_second_before(make_node):
    clock = edge.FakeClock()
    app = edge.App("until")
    start = datetime.fromtimestamp(clock.time(), UTC)

    @app.workflow()
    def wf() -> float:
        edge.sleep_until(start + timedelta(hours=1))
        return edge.now()

    node = make_node(app, clock=clock)
    h = app.start(wf, id="u1")
    wait_until(lambda: status(node, "u1") == "SLEEPING", what="SLEEPING")
    view = node.verbs.describe("u1")
    assert view["wake_at"] == (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert [(s["kind"], s["name"], s["status"]) for s in view["steps"]] == [
        ("sleep", "sleep_until", "RUNNING")]
    clock.advance(3599)
    assert node.timers.tick(clock.time()) == []
    assert status(node, "u1") == "SLEEPING"
    clock.advance(1)
    node.timers.tick(clock.time())
    assert h.result(timeout=10) == start.timestamp() + 3600


def test_sleep_until_a_past_time_returns_at_once_and_is_recorded(make_node):
    clock = edge.FakeClock()
    app = edge.App("past")

    @app.workflow()
    def wf() -> str:
        edge.sleep_until(clock.time() - 10)  # epoch seconds work too
        return "done"

    node = make_node(app, clock=clock)
    assert app.start(wf, id="p").result(timeout=10) == "done"
    (op,) = node.verbs.describe("p")["steps"]
    assert (op["kind"], op["status"]) == ("sleep", "SUCCEEDED")


@pytest.mark.parametrize("call, needle", [
    (lambda: edge.sleep(-1), "must be a finite number >= 0"),
    (lambda: edge.sleep(float("nan")), "must be a finite number >= 0"),
    (lambda: edge.sleep(True), "must be a finite number >= 0"),
    (lambda: edge.sleep_until(datetime(2030, 1, 1)), "has no time zone"),
    (lambda: edge.sleep_until("tomorrow"), "expected an aware datetime"),
])
def test_bad_sleeps_fail_the_workflow_with_a_clear_error(make_node, call, needle):
    app = edge.App("badsleep")

    @app.workflow()
    def wf() -> None:
        call()

    make_node(app)
    with pytest.raises(edge.WorkflowFailed) as err:
        app.start(wf, id="b").result(timeout=10)
    assert err.value.error["type"] == "UsageError"
    assert needle in err.value.error["message"]


def test_a_wall_clock_jump_forward_never_fires_a_timer_early():
    clock = edge.FakeClock()
    fired: list[tuple[str, str]] = []
    timers = Timers(clock, lambda kind, key, now: fired.append((kind, key)))
    timers.add(clock.time() + 60, "w")
    clock.jump(3600)  # NTP step: wall time says it is long past due
    assert timers.tick(clock.time()) == [] and fired == []
    clock.advance(59)
    assert timers.tick(clock.time()) == []
    clock.advance(1)  # 60 s really elapsed
    assert timers.tick(clock.time()) == [("wake", "w")]


def test_a_wall_clock_jump_backwards_delays_but_never_fires_early():
    clock = edge.FakeClock()
    timers = Timers(clock, lambda kind, key, now: None)
    at = clock.time() + 60
    timers.add(at, "w")
    clock.jump(-600)
    clock.advance(60)  # 60 s elapsed, but the wall clock is 10 minutes behind the wake time
    assert timers.tick(clock.time()) == []
    clock.jump(600)
    assert timers.tick(clock.time()) == [("wake", "w")]


def test_a_sleeping_workflow_past_its_deadline_ends_cancelled_with_timeout(make_node):
    clock = edge.FakeClock()
    app = edge.App("deadline")

    @app.workflow(timeout=30)
    def wf() -> str:
        edge.sleep(3600)
        return "woke"

    node = make_node(app, clock=clock)
    h = app.start(wf, id="d1")
    wait_until(lambda: status(node, "d1") == "SLEEPING", what="SLEEPING")
    clock.advance(29)
    node.timers.tick(clock.time())
    assert status(node, "d1") == "SLEEPING"
    clock.advance(2)
    node.timers.tick(clock.time())
    with pytest.raises(edge.WorkflowCancelled) as err:
        h.result(timeout=10)
    assert err.value.error["type"] == "TimeoutError"
    assert "deadline" in err.value.error["message"]
    row = node.store.get_workflow("d1")
    assert row.status == "CANCELLED" and row.wake_at is None


def test_a_waiting_parent_past_its_deadline_cancels_its_child_too(make_node):
    clock = edge.FakeClock()
    app = edge.App("deadline-tree")

    @app.workflow()
    def child() -> str:
        return edge.wait_event("never")

    @app.workflow()
    def parent() -> str:
        return app.start(child).result()

    node = make_node(app, clock=clock)
    app.start(parent, id="p", timeout=60)
    wait_until(lambda: status(node, "p") == "WAITING" and status(node, "p:1") == "WAITING",
               what="parent and child parked")
    assert node.verbs.describe("p")["waiting_for"] == "child:p:1"
    clock.advance(61)
    node.timers.tick(clock.time())
    wait_until(lambda: status(node, "p") == "CANCELLED", what="parent cancelled")
    assert node.verbs.describe("p")["error"]["type"] == "TimeoutError"
    assert status(node, "p:1") == "CANCELLED"
    assert "ran past its deadline" in node.verbs.describe("p:1")["error"]["message"]


def test_sleepers_and_deadlines_that_passed_while_down_fire_at_boot(data_dir):
    clock = edge.FakeClock()
    app = edge.App("boot")

    @app.workflow()
    def nap() -> str:
        edge.sleep(60)
        return "rested"

    node = edge.Node(app, data_dir=data_dir, workers=2, clock=clock, listen=None).start()
    app.start(nap, id="sleeper")
    app.start(nap, id="late", timeout=30)
    wait_until(lambda: status(node, "sleeper") == status(node, "late") == "SLEEPING",
               what="both asleep")
    node.stop()
    clock.advance(120)  # the node is down while both timers pass
    node = edge.Node(app, data_dir=data_dir, workers=2, clock=clock, listen=None).start()
    try:
        node.timers.tick(clock.time())
        assert app.handle("sleeper").result(timeout=10) == "rested"
        wait_until(lambda: status(node, "late") == "CANCELLED", what="deadline at boot")
        assert node.verbs.describe("late")["error"]["type"] == "TimeoutError"
    finally:
        node.stop()


def test_identical_timers_are_kept_once():
    clock = edge.FakeClock()
    timers = Timers(clock, lambda kind, key, now: None)
    for _ in range(3):
        timers.add(clock.time() + 5, "w", "deadline")
    timers.add(clock.time() + 5, "w")  # another kind is another timer
    assert len(timers) == 2
    clock.advance(5)
    assert sorted(timers.tick(clock.time())) == [("deadline", "w"), ("wake", "w")]
    timers.add(clock.time() + 5, "w", "deadline")  # after firing it can be armed again
    assert len(timers) == 1
