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
            for s in node.verbs.describe(wid)["steps"]]


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
    node2.verbs.send_event("a1", "go", 10)
    assert node2.verbs.handle("a1").result(timeout=10) == [{"v": 8, "key": "a1:1"}, 18]
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
    node.verbs.send_event("v", "go")
    out = h.result(timeout=10)
    assert len(seen) == 2 and seen[0] == seen[1] == tuple(out), "replay changed a value"
    assert [k for _, k, _ in _history(node, "v")] == [
        "now", "uuid4", "random", "patch", "set_event", "wait_event"]


def test_step_failed_json_roundtrip_and_sticky_nondeterminism_match_sync(make_node):
    app = edge.App("async-semantics")
    bodies: list[str] = []
    version = {"new": False}

    @app.step()
    async def pair() -> tuple:
        bodies.append("pair")
        return (1, 2)

    @app.step()
    async def broken() -> None:
        bodies.append("broken")
        raise ValueError("no stock")

    @app.step()
    async def other() -> int:
        return 0

    @app.workflow()
    async def wf() -> list:
        p = await pair()
        try:
            await broken()
            failed = None
        except edge.StepFailed as exc:
            failed = [exc.type, exc.message, exc.seq]
        if version["new"]:
            try:
                await other()  # seq 3 was recorded as wait_event "go": a divergence
            except edge.NonDeterminismError:
                return ["swallowed"]  # user code cannot hide it
        await edge.wait_event_async("go")
        return [p, failed]

    node = make_node(app)
    h = app.start(wf, id="sem")
    wait_until(lambda: node.store.get_workflow("sem").status == "WAITING", what="WAITING")
    node.verbs.send_event("sem", "go")
    out = h.result(timeout=10)
    assert out[0] == [1, 2], "a tuple must come back as a list on the first run too"
    assert out[1][0] == "ValueError" and "no stock" in out[1][1] and out[1][2] == 2
    assert bodies == ["pair", "broken"], "a replayed StepFailed ran its body again"

    h2 = app.start(wf, id="sem2")
    wait_until(lambda: node.store.get_workflow("sem2").status == "WAITING", what="WAITING")
    version["new"] = True
    node.verbs.send_event("sem2", "go")
    with pytest.raises(edge.WorkflowFailed) as err:
        h2.result(timeout=10)
    assert err.value.error["type"] == "NonDeterminismError"
    assert "seq 3" in err.value.error["message"]


def test_start_and_result_from_a_foreign_event_loop_do_not_block_it(make_node):
    app = edge.App("async-outside")
    gate = threading.Event()

    @app.step()
    def wait_gate() -> str:
        gate.wait(10)
        return "opened"

    @app.workflow()
    async def wf(x: int) -> list:
        return [x, await wait_gate()]

    @app.workflow()
    async def never() -> None:
        await edge.wait_event_async("nothing")

    make_node(app)

    async def web_handler() -> tuple[list, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 20:
                    gate.set()  # the caller's loop kept running while we waited
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        h = await app.start_async(wf, 7, id="web-1")
        out = await h.result_async(timeout=10)
        t.cancel()
        return out, ticks

    out, ticks = asyncio.run(web_handler())
    assert out == [7, "opened"] and ticks >= 20

    async def impatient() -> None:
        h = await app.start_async(never, id="never-1")
        await h.result_async(timeout=0.2)

    with pytest.raises(TimeoutError):
        asyncio.run(impatient())


def test_an_async_workflow_whose_input_no_longer_fits_its_code_fails_not_hangs(make_node,
                                                                               data_dir):
    old = edge.App("async-sig")

    @old.workflow(name="wf")
    async def wf_old(a: int) -> int:
        await edge.wait_event_async("go")
        return a

    node = make_node(old)
    old.start(wf_old, 1, id="sig")
    wait_until(lambda: node.store.get_workflow("sig").status == "WAITING", what="WAITING")
    node.stop()

    new = edge.App("async-sig")

    @new.workflow(name="wf")
    async def wf_new(a: int, b: int) -> int:  # a deploy changed the signature
        return a + b

    node2 = make_node(new)
    node2.verbs.send_event("sig", "go")
    with pytest.raises(edge.WorkflowFailed) as err:
        node2.verbs.handle("sig").result(timeout=10)
    assert err.value.error["type"] == "TypeError"


def test_patched_async_lets_old_runs_take_the_old_branch(make_node):
    app = edge.App("async-patch")
    deployed = {"v2": False}

    @app.step()
    async def old_tax() -> str:
        return "old"

    @app.step()
    async def new_tax() -> str:
        return "new"

    @app.workflow()
    async def wf() -> str:
        await edge.wait_event_async("go")
        if deployed["v2"] and await edge.patched_async("new-tax"):
            tax = await new_tax()
        else:
            tax = await old_tax()
        await edge.wait_event_async("done")
        return tax

    node = make_node(app)
    old_run = app.start(wf, id="old")
    wait_until(lambda: node.store.get_workflow("old").status == "WAITING", what="WAITING")
    node.verbs.send_event("old", "go")
    wait_until(lambda: len(node.verbs.describe("old")["steps"]) == 3, what="old_tax recorded")
    deployed["v2"] = True  # the new code is deployed while the old run is parked
    node.verbs.send_event("old", "done")
    assert old_run.result(timeout=10) == "old"
    assert _history(node, "old") == [(1, "wait_event", "go"), (2, "step", "old_tax"),
                                     (3, "wait_event", "done")]
    new_run = app.start(wf, id="new")
    wait_until(lambda: node.store.get_workflow("new").status == "WAITING", what="WAITING")
    node.verbs.send_event("new", "go")
    node.verbs.send_event("new", "done")
    assert new_run.result(timeout=10) == "new"
    assert _history(node, "new") == [(1, "wait_event", "go"), (2, "patch", "new-tax"),
                                     (3, "step", "new_tax"), (4, "wait_event", "done")]
