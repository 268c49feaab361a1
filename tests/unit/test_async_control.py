"""Control of async runs: a cancel cancels the running async step, a step timeout really
stops the coroutine, retries back off on the injected clock, durable sleeps and event
timeouts park and wake, and TestNode drives all of it on its FakeClock."""

from __future__ import annotations

import asyncio

import pytest

import edge
from edge.testing import TestNode
from tests.conftest import wait_until


def test_cancelling_a_workflow_cancels_its_running_async_step(make_node):
    app = edge.App("async-cancel")
    seen: list[str] = []
    never = asyncio.Event()

    @app.step()
    async def forever() -> str:
        seen.append("started")
        try:
            await never.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "done"

    @app.workflow()
    async def wf() -> str:
        return await forever()

    node = make_node(app)
    h = app.start(wf, id="c")
    wait_until(lambda: seen == ["started"], what="the step to start")
    node.verbs.cancel("c")
    with pytest.raises(edge.WorkflowCancelled):
        h.result(timeout=10)
    assert seen == ["started", "cancelled"]
    assert node.verbs.describe("c")["status"] == "CANCELLED"
    assert node.verbs.describe("c")["steps"] == [], "a cancelled step must not be checkpointed"


def test_an_async_step_timeout_stops_the_coroutine_and_the_retry_wins(make_node):
    app = edge.App("async-timeout")
    seen: list[tuple[int, str]] = []
    never = asyncio.Event()

    @app.step(timeout=0.2, retries=1, initial_delay=0.0)
    async def fetch() -> str:
        attempt = edge.context().attempt
        seen.append((attempt, "start"))
        if attempt == 1:
            try:
                await never.wait()
            except asyncio.CancelledError:
                seen.append((attempt, "stopped"))
                raise
        return f"attempt {attempt}"

    @app.workflow()
    async def wf() -> str:
        return await fetch()

    node = make_node(app)
    assert app.start(wf, id="t").result(timeout=10) == "attempt 2"
    assert seen == [(1, "start"), (1, "stopped"), (2, "start")]
    (op,) = node.verbs.describe("t")["steps"]
    assert op["attempts"] == 2 and op["output"] == "attempt 2"


def test_an_async_step_timeout_without_retries_fails_the_step(make_node):
    app = edge.App("async-timeout2")

    @app.step(timeout=0.1)
    async def hang() -> None:
        await asyncio.Event().wait()

    @app.workflow()
    async def wf() -> dict:
        try:
            await hang()
        except edge.StepFailed as exc:
            return {"type": exc.type, "message": exc.message}
        return {}

    make_node(app)
    out = app.start(wf, id="t2").result(timeout=10)
    assert out["type"] == "TimeoutError" and "overran its 0.1 s timeout" in out["message"]


def _retry_app() -> tuple[edge.App, list[int], object]:
    app = edge.App("async-retry")
    attempts: list[int] = []

    @app.step(retries=3, initial_delay=1.0, backoff=2.0, jitter=False)
    async def flaky() -> int:
        ctx = edge.context()
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"try {ctx.attempt}")
        return ctx.attempt

    @app.workflow()
    async def wf() -> int:
        return await flaky()

    return app, attempts, wf


def test_async_retries_back_off_on_the_fake_clock():
    app, attempts, wf = _retry_app()
    with TestNode(app) as t:
        h = t.start(wf, id="r")
        assert t.result(h.id) == 3
        assert attempts == [1, 2, 3]
        assert t.clock.slept == [1.0, 2.0]
        (op,) = t.describe("r")["steps"]
        assert op["attempts"] == 3


def test_testnode_runs_async_sleeps_events_and_timeouts_on_its_fake_clock():
    app = edge.App("async-testnode")

    @app.step()
    async def note(s: str) -> str:
        return s

    @app.workflow()
    async def wf() -> list:
        t0 = await edge.now_async()
        await edge.sleep_async(3600)
        t1 = await edge.now_async()
        try:
            await edge.wait_event_async("approve", timeout=60)
            outcome = "approved"
        except TimeoutError:
            outcome = "timed out"
        got = await edge.wait_event_async("final")
        return [t1 - t0, outcome, await note(got)]

    with TestNode(app) as t:
        h = t.start(wf, id="tn")
        assert t.status(h.id) == "SLEEPING"
        t.advance(3599)
        assert t.status(h.id) == "SLEEPING"
        t.advance(1)
        assert t.status(h.id) == "WAITING"
        t.advance(60)  # the event timeout fires
        assert t.status(h.id) == "WAITING"
        t.send(h.id, "final", "ok")
        assert t.result(h.id) == [3600.0, "timed out", "ok"]
        assert t.step_names(h.id) == ["now", "sleep", "now", "wait_event:approve",
                                      "wait_event:final", "note"]


def test_sync_and_async_workflows_share_one_testnode():
    app = edge.App("async-testnode-mix")

    @app.workflow()
    def sync_wf() -> str:
        edge.sleep(10)
        return "sync"

    @app.workflow()
    async def async_wf() -> str:
        await edge.sleep_async(10)
        return "async"

    with TestNode(app) as t:
        hs, ha = t.start(sync_wf), t.start(async_wf)
        assert t.status(hs.id) == t.status(ha.id) == "SLEEPING"
        t.advance(10)
        assert [t.result(hs.id), t.result(ha.id)] == ["sync", "async"]


def test_a_deadline_ends_a_sleeping_async_workflow():
    app = edge.App("async-deadline")

    @app.workflow(timeout=30)
    async def wf() -> str:
        await edge.sleep_async(3600)
        return "woke"

    with TestNode(app) as t:
        h = t.start(wf)
        t.advance(31)
        assert t.status(h.id) == "CANCELLED"
        with pytest.raises(edge.WorkflowCancelled):
            t.result(h.id)


def test_the_loop_pools_are_bounded_daemon_threads_that_hand_back_errors():
    import threading

    from edge.aio import DaemonPool

    pool = DaemonPool(2, "t-pool")
    gate = threading.Event()
    names: list[tuple[str, bool]] = []

    def work(x: int) -> int:
        names.append((threading.current_thread().name, threading.current_thread().daemon))
        gate.wait(10)
        if x < 0:
            raise ValueError("negative")
        return x * 2

    futs = [pool.submit(work, i) for i in (1, 2, 3, -1)]
    wait_until(lambda: len(names) == 2, what="two bodies running")
    assert len(names) == 2, "more threads than the bound"  # 3 and -1 are queued
    gate.set()
    assert [f.result(10) for f in futs[:3]] == [2, 4, 6]
    with pytest.raises(ValueError):
        futs[3].result(10)
    assert all(daemon for _, daemon in names) and {n for n, _ in names} <= {"t-pool-0",
                                                                            "t-pool-1"}
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(work, 1)


def test_a_running_async_workflow_past_its_deadline_ends_cancelled_at_its_next_operation():
    app = edge.App("async-deadline-running")
    holder: dict[str, TestNode] = {}

    @app.step()
    async def long_call() -> str:
        holder["t"].clock.advance(31)  # the step took 31 s of (fake) time
        return "late"

    @app.workflow(timeout=30)
    async def wf() -> str:
        await long_call()
        await edge.now_async()  # the deadline is checked here
        return "in time"

    with TestNode(app) as t:
        holder["t"] = t
        h = t.start(wf)
        assert t.status(h.id) == "CANCELLED"
        with pytest.raises(edge.WorkflowCancelled) as err:
            t.result(h.id)
        assert err.value.error["type"] == "TimeoutError"


def test_a_sync_step_timeout_in_an_async_workflow_fails_the_attempt(make_node):
    import threading

    app = edge.App("async-sync-timeout")
    gate = threading.Event()

    @app.step(timeout=0.1)
    def blocking() -> str:
        gate.wait(10)  # its thread cannot be stopped: released below
        return "late"

    @app.workflow()
    async def wf() -> str:
        try:
            return await blocking()
        except edge.StepFailed as exc:
            return exc.type

    node = make_node(app)
    assert app.start(wf, id="st").result(timeout=10) == "TimeoutError"
    gate.set()
    (op,) = node.verbs.describe("st")["steps"]
    assert op["status"] == "FAILED" and op["output"] is None


def test_a_cancellation_raised_by_the_workflow_itself_fails_it_instead_of_stranding_it(
        make_node):
    app = edge.App("async-self-cancel")

    @app.workflow()
    async def wf() -> None:
        raise asyncio.CancelledError()

    make_node(app)
    with pytest.raises(edge.WorkflowFailed) as err:
        app.start(wf, id="sc").result(timeout=10)
    assert err.value.error["type"] == "CancelledError"


def test_cancelling_a_workflow_running_a_sync_step_ends_it_at_once(make_node):
    import threading

    app = edge.App("async-cancel-sync")
    gate, inside, returned = threading.Event(), threading.Event(), threading.Event()

    @app.step()
    def blocking() -> str:
        inside.set()
        gate.wait(10)
        returned.set()
        return "late"

    @app.workflow()
    async def wf() -> str:
        return await blocking()

    node = make_node(app)
    h = app.start(wf, id="cs")
    assert inside.wait(10)
    node.verbs.cancel("cs")
    with pytest.raises(edge.WorkflowCancelled):
        h.result(timeout=5)
    gate.set()
    assert returned.wait(10)
    wait_until(lambda: node.aio.running == 0, what="the run to end on the loop")
    assert node.verbs.describe("cs")["steps"] == [], "the discarded late result was recorded"
    assert node.verbs.describe("cs")["status"] == "CANCELLED"
