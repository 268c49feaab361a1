"""Async workflows and steps end to end: run on the node's loop, checkpoint, replay after a
restart, mix with sync workflows, and refuse blocking calls."""

from __future__ import annotations

import asyncio
import threading

import pytest

import edge
from edge.errors import UsageError
from tests.conftest import wait_until


def _history(node: edge.Node, wid: str) -> list[tuple[int, str, str]]:
    return [(s["seq"], s["kind"], s["name"].rsplit(".", 1)[-1])
            for s in node.describe(wid)["steps"]]


def test_async_workflow_runs_steps_and_replays_after_restart(make_node, data_dir):
    app = edge.App("async-e2e")
    calls: list[str] = []

    @app.step()
    async def fetch(x: int) -> dict:
        calls.append(f"fetch {x}")
        await asyncio.sleep(0)
        return {"v": x * 2, "key": edge.context().idempotency_key}

    @app.step()
    def add(a: int, b: int) -> int:
        calls.append("add")
        assert threading.current_thread().name.startswith("edge-aio-step")
        return a + b

    @app.workflow()
    async def wf(x: int) -> list:
        r = await fetch(x)
        got = await edge.wait_event_async("go")  # parks: the next run replays fetch()
        return [r, await add(r["v"], got)]

    node = make_node(app)
    h = app.start(wf, 4, id="a1")
    wait_until(lambda: node.store.get_workflow("a1").status == "WAITING", what="WAITING")
    assert calls == ["fetch 4"]
    node.stop()
    node2 = make_node(app)  # a fresh node on the same file: the run replays from its record
    node2.send_event("a1", "go", 10)
    assert node2.handle("a1").result(timeout=10) == [{"v": 8, "key": "a1:1"}, 18]
    assert calls == ["fetch 4", "add"], "a checkpointed async step ran again on replay"
    assert _history(node2, "a1") == [(1, "step", "fetch"), (2, "wait_event", "go"),
                                     (3, "step", "add")]
    assert h.id == "a1"


def test_an_async_workflow_does_not_hold_a_worker_thread(make_node):
    app = edge.App("async-free")
    release = asyncio.Event()
    started = threading.Event()
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    @app.step()
    async def wait_for_release() -> str:
        holder["loop"] = asyncio.get_running_loop()
        started.set()
        await release.wait()
        return "released"

    @app.workflow()
    async def slow() -> str:
        return await wait_for_release()

    @app.workflow()
    def quick() -> str:
        return "quick"

    make_node(app, workers=1)
    h = app.start(slow, id="slow")
    assert started.wait(10)
    # The one worker thread handed the async run to the loop: a sync workflow still runs.
    assert app.start(quick, id="q").result(timeout=10) == "quick"
    holder["loop"].call_soon_threadsafe(release.set)
    assert h.result(timeout=10) == "released"


def test_sync_and_async_workflows_mix_as_parent_and_child(make_node):
    app = edge.App("async-mix")

    @app.step()
    def double(x: int) -> int:
        return 2 * x

    @app.workflow()
    def sync_child(x: int) -> int:
        return double(x)

    @app.workflow()
    async def async_child(x: int) -> int:
        return await double(x) + 1

    @app.workflow()
    async def async_parent(x: int) -> list:
        a = await app.start_async(sync_child, x)
        b = await app.start_async(async_child, x)
        return [await a.result_async(), await b.result_async()]

    @app.workflow()
    def sync_parent(x: int) -> int:
        return int(app.start(async_child, x).result())

    node = make_node(app)
    assert app.start(async_parent, 5, id="ap").result(timeout=10) == [10, 11]
    assert app.start(sync_parent, 7, id="sp").result(timeout=10) == 15
    assert _history(node, "ap") == [(1, "child", "sync_child"), (2, "child", "async_child"),
                                    (3, "child_result", "sync_child"),
                                    (4, "child_result", "async_child")]


@pytest.mark.parametrize("call, form", [
    (lambda app, wf: edge.sleep(1), "edge.sleep_async"),
    (lambda app, wf: edge.wait_event("x"), "edge.wait_event_async"),
    (lambda app, wf: edge.now(), "edge.now_async"),
    (lambda app, wf: edge.set_event("k", 1), "edge.set_event_async"),
    (lambda app, wf: app.start(wf), "app.start_async"),
    (lambda app, wf: app.handle("x").result(), "handle.result_async"),
])
def test_a_blocking_call_in_an_async_workflow_is_refused_naming_the_async_form(
        make_node, call, form):
    app = edge.App("async-refuse")

    @app.workflow()
    def other() -> None:
        return None

    @app.workflow()
    async def wf() -> dict:
        try:
            call(app, other)
        except UsageError as exc:
            return {"code": exc.code, "message": exc.message, "hint": exc.hint}
        return {}

    make_node(app)
    out = app.start(wf, id="b").result(timeout=10)
    assert out["code"] == "blocking_call"
    assert "cannot be called in an async workflow" in out["message"]
    assert f"await {form}(" in out["hint"]


def test_async_forms_are_refused_in_a_sync_workflow_and_async_steps_too(make_node):
    app = edge.App("async-refuse-sync")

    @app.step()
    async def astep() -> int:
        return 1

    @app.workflow()
    def wf() -> list:
        out = []
        for call in (lambda: edge.sleep_async(1), lambda: astep()):
            try:
                call()
            except UsageError as exc:
                out.append(exc.message)
        return out

    make_node(app)
    msgs = app.start(wf, id="s").result(timeout=10)
    assert len(msgs) == 2 and msgs[0] == "edge.sleep_async() is for async workflows"
    assert msgs[1].startswith("async step ") and msgs[1].endswith(
        "astep called from the sync workflow " + app.resolve(wf).name)


def test_durable_calls_inside_an_async_step_are_refused(make_node):
    app = edge.App("async-in-step")

    @app.step()
    async def bad() -> str:
        try:
            await edge.sleep_async(1)
        except UsageError as exc:
            return exc.message
        return "ran"

    @app.workflow()
    async def wf() -> str:
        return await bad()

    make_node(app)
    assert app.start(wf, id="x").result(timeout=10) == \
        "edge.sleep_async() cannot be called inside a step"


def test_recorded_values_and_events_replay_in_async_workflows(make_node):
    app = edge.App("async-values")
    seen: list[tuple] = []

    @app.workflow()
    async def wf() -> list:
        t = await edge.now_async()
        u = await edge.uuid4_async()
        r = await edge.random_async()
        p = await edge.patched_async("v2")
        await edge.set_event_async("progress", 0.5)
        seen.append((t, u, r, p))
        await edge.wait_event_async("go")
        return [t, u, r, p]

    node = make_node(app)
    h = app.start(wf, id="v")
    wait_until(lambda: node.store.get_workflow("v").status == "WAITING", what="WAITING")
    assert app.get_event("v", "progress") == 0.5
    node.send_event("v", "go")
    out = h.result(timeout=10)
    assert len(seen) == 2 and seen[0] == seen[1] == tuple(out), "replay changed a value"
    assert [k for _, k, _ in _history(node, "v")] == [
        "now", "uuid4", "random", "patch", "set_event", "wait_event"]
