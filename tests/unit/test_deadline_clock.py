"""Workflow deadlines follow the timers' rule: a wall clock stepped forward (NTP, a resumed
VM) cannot end a workflow early, neither inside a run (RunContext.guard) nor while it is
parked (the deadline timer and store/lifecycle.expire); the deadline still fires once as
much monotonic time has passed as it was away. FakeClock.jump moves wall time only."""

from __future__ import annotations

import edge
from edge.testing import TestNode

HOUR = 3600.0


def make_app(clock: edge.FakeClock) -> edge.App:
    app = edge.App("deadline-clock")

    @app.step()
    def jump(seconds: float) -> None:
        clock.jump(seconds)  # the wall clock steps while the workflow runs

    @app.step()
    def pass_time(seconds: float) -> None:
        clock.advance(seconds)  # real (monotonic and wall) time passes

    @app.step()
    def work() -> str:
        return "worked"

    @app.workflow(name="jumps_while_running", timeout=600)
    def jumps_while_running() -> str:
        jump(HOUR)
        return str(work())

    @app.workflow(name="runs_too_long", timeout=600)
    def runs_too_long() -> str:
        pass_time(601)
        return str(work())

    @app.workflow(name="waits", timeout=600)
    def waits() -> str:
        edge.wait_event("go")
        return str(work())

    @app.workflow(name="sleeps", timeout=600)
    def sleeps() -> str:
        edge.sleep(10)
        return str(work())

    return app


def test_a_forward_jump_inside_a_run_does_not_end_it() -> None:
    clock = edge.FakeClock()
    with TestNode(make_app(clock), clock=clock) as t:
        h = t.start("jumps_while_running")
        assert t.status(h.id) == "SUCCEEDED", t.describe(h.id).get("error")
        assert t.result(h.id) == "worked"


def test_a_run_past_its_deadline_in_monotonic_time_still_ends_cancelled() -> None:
    clock = edge.FakeClock()
    with TestNode(make_app(clock), clock=clock) as t:
        h = t.start("runs_too_long")
        view = t.describe(h.id)
        assert view["status"] == "CANCELLED"
        assert view["error"]["type"] == "TimeoutError"


def test_a_forward_jump_while_parked_neither_expires_it_nor_its_next_run() -> None:
    clock = edge.FakeClock()
    with TestNode(make_app(clock), clock=clock) as t:
        h = t.start("waits")
        assert t.status(h.id) == "WAITING"
        clock.jump(HOUR)
        t.advance(3)  # the deadline timer comes due in wall time only: held
        assert t.status(h.id) == "WAITING"
        t.send(h.id, "go")  # a new run, 3 s after the start in monotonic time
        assert t.status(h.id) == "SUCCEEDED", t.describe(h.id).get("error")


def test_a_forward_jump_while_sleeping_does_not_end_the_woken_run() -> None:
    clock = edge.FakeClock()
    with TestNode(make_app(clock), clock=clock) as t:
        h = t.start("sleeps")
        assert t.status(h.id) == "SLEEPING"
        clock.jump(HOUR)
        t.advance(10)
        assert t.status(h.id) == "SUCCEEDED", t.describe(h.id).get("error")


def test_the_parked_deadline_fires_once_the_monotonic_time_has_passed() -> None:
    clock = edge.FakeClock()
    with TestNode(make_app(clock), clock=clock) as t:
        h = t.start("waits")
        clock.jump(HOUR)
        t.advance(599)
        assert t.status(h.id) == "WAITING"
        t.advance(2)
        view = t.describe(h.id)
        assert view["status"] == "CANCELLED"
        assert view["error"]["type"] == "TimeoutError"
