"""Parallel steps in one async workflow: seq in program order whatever the completion
order, replay of the same history, divergence detected, a stop mid-gather re-runs only
the branches without a checkpoint, parking under gather, and the fan-out rule."""

from __future__ import annotations

import asyncio

import pytest

import edge
from tests.conftest import wait_until


def _history(node: edge.Node, wid: str) -> list[tuple[int, str, str]]:
    return [(s["seq"], s["kind"], s["name"].rsplit(".", 1)[-1])
            for s in node.verbs.describe(wid)["steps"]]


class Turns:
    """Makes async step bodies finish in a chosen order (yields only, no sleeps)."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.finished: list[str] = []

    async def wait(self, name: str) -> None:
        for _ in range(100_000):
            if self.order and self.order[0] == name:
                self.order.pop(0)
                self.finished.append(name)
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{name} never got its turn")


@pytest.mark.parametrize("order", [["a", "b", "c0", "c1"], ["c1", "c0", "b", "a"],
                                   ["b", "c1", "a", "c0"]])
def test_gather_takes_seq_in_program_order_whatever_the_completion_order(make_node, data_dir,
                                                                         order):
    app = edge.App("gather-order")
    turns = Turns()
    runs: list[str] = []

    @app.step()
    async def a(x: int) -> str:
        runs.append("a")
        await turns.wait("a")
        return f"a{x}"

    @app.step()
    async def b(x: int) -> str:
        runs.append("b")
        await turns.wait("b")
        return f"b{x}"

    @app.step()
    def c(i: int) -> str:  # a sync step: its body runs on a step thread
        runs.append(f"c{i}")
        return f"c{i}"

    @app.step()
    async def slow_c(i: int) -> str:
        await turns.wait(f"c{i}")
        return await asyncio.sleep(0, result=f"c{i}")

    @app.workflow()
    async def wf() -> list:
        got = await asyncio.gather(a(1), b(2), *(slow_c(i) for i in range(2)), c(9))
        await edge.wait_event_async("go")
        return list(got)

    turns.order = list(order)
    node = make_node(app)
    h = app.start(wf, id="g")
    wait_until(lambda: node.store.get_workflow("g").status == "WAITING", what="WAITING")
    assert turns.finished == order  # the bodies really completed in this order
    assert _history(node, "g") == [(1, "step", "a"), (2, "step", "b"), (3, "step", "slow_c"),
                                   (4, "step", "slow_c"), (5, "step", "c"),
                                   (6, "wait_event", "go")]
    node.stop()
    node2 = make_node(app)  # replay after a restart: every branch comes from its record
    node2.verbs.send_event("g", "go")
    assert node2.verbs.handle("g").result(timeout=10) == ["a1", "b2", "c0", "c1", "c9"]
    assert sorted(runs) == ["a", "b", "c9"], "a checkpointed branch ran again"
    assert h.id == "g"


def test_a_changed_fan_out_fails_with_nondeterminism_error(make_node):
    app = edge.App("gather-nd")
    version = {"new": False}

    @app.step()
    async def a() -> int:
        return 1

    @app.step()
    async def b() -> int:
        return 2

    @app.workflow()
    async def wf() -> list:
        branches = (b(), a()) if version["new"] else (a(), b())
        got = await asyncio.gather(*branches)
        await edge.wait_event_async("go")
        return list(got)

    node = make_node(app)
    h = app.start(wf, id="nd")
    wait_until(lambda: node.store.get_workflow("nd").status == "WAITING", what="WAITING")
    version["new"] = True
    node.verbs.send_event("nd", "go")
    with pytest.raises(edge.WorkflowFailed) as err:
        h.result(timeout=10)
    assert err.value.error["type"] == "NonDeterminismError"
    assert "seq 1" in err.value.error["message"]


def test_a_stop_mid_gather_reruns_only_the_branches_without_a_checkpoint(make_node):
    app = edge.App("gather-crash")
    bodies: list[str] = []
    hang = {"on": True}
    hung = asyncio.Event()

    @app.step()
    async def quick(i: int) -> int:
        bodies.append(f"quick{i}")
        return i * 10

    @app.step()
    async def stuck() -> str:
        bodies.append("stuck")
        if hang["on"]:
            await hung.wait()  # never set: only the stop's cancellation ends it
        return "unstuck"

    @app.workflow()
    async def wf() -> list:
        return list(await asyncio.gather(quick(1), stuck(), quick(2)))

    node = make_node(app)
    app.start(wf, id="mid")
    wait_until(lambda: len([s for s in node.verbs.describe("mid")["steps"]
                            if s["status"] == "SUCCEEDED"]) == 2, what="two checkpoints")
    node.stop(grace=0.2)  # the stuck branch is cancelled; the run is handed back PENDING
    hang["on"] = False
    node2 = make_node(app)
    assert node2.verbs.handle("mid").result(timeout=10) == [10, "unstuck", 20]
    assert sorted(bodies) == ["quick1", "quick2", "stuck", "stuck"], bodies


def test_a_branch_that_parks_lets_running_branches_checkpoint_first(make_node):
    app = edge.App("gather-park")
    bodies: list[str] = []
    turns = Turns()

    @app.step()
    async def work(name: str) -> str:
        bodies.append(name)
        await turns.wait(name)
        return name

    @app.workflow()
    async def wf() -> list:
        got = await asyncio.gather(work("x"), edge.wait_event_async("go"), work("y"))
        return list(got)

    turns.order = ["y", "x"]
    node = make_node(app)
    h = app.start(wf, id="p")
    wait_until(lambda: node.store.get_workflow("p").status == "WAITING", what="WAITING")
    ops = {s["seq"]: (s["kind"], s["status"]) for s in node.verbs.describe("p")["steps"]}
    assert ops == {1: ("step", "SUCCEEDED"), 2: ("wait_event", "RUNNING"),
                   3: ("step", "SUCCEEDED")}, "a running branch lost its checkpoint at park"
    node.verbs.send_event("p", "go", 7)
    assert h.result(timeout=10) == ["x", 7, "y"]
    assert sorted(bodies) == ["x", "y"]


def test_parallel_children_start_and_finish_with_seq_in_program_order(make_node):
    app = edge.App("gather-children")

    @app.step()
    async def square(i: int) -> int:
        await asyncio.sleep(0.001 * (5 - i))  # later children finish first
        return i * i

    @app.workflow()
    async def child(i: int) -> int:
        return await square(i)

    @app.workflow()
    async def parent(n: int) -> list:
        hs = await asyncio.gather(*(app.start_async(child, i) for i in range(n)))
        return list(await asyncio.gather(*(h.result_async() for h in hs)))

    node = make_node(app)
    assert app.start(parent, 4, id="pc").result(timeout=10) == [0, 1, 4, 9]
    assert _history(node, "pc") == ([(i + 1, "child", "child") for i in range(4)]
                                    + [(i + 5, "child_result", "child") for i in range(4)])
    assert [node.store.get_workflow(f"pc:{i + 1}").status for i in range(4)] == \
        ["SUCCEEDED"] * 4


def test_a_multi_step_branch_racing_another_branch_is_refused_before_recording(make_node):
    app = edge.App("gather-rule")

    @app.step()
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.001 * i)
        return i

    @app.step()
    async def save(i: int) -> int:
        return i

    async def process(i: int) -> int:
        return await save(await fetch(i))  # the second op depends on completion order

    @app.workflow()
    async def wf() -> list:
        return list(await asyncio.gather(process(0), process(1)))

    @app.workflow()
    async def sequential_in_one_branch() -> list:
        # One task issuing in its own program order stays allowed, tasks or not.
        t = asyncio.ensure_future(fetch(3))
        first = await save(await fetch(1))
        return [first, await t]

    node = make_node(app)
    with pytest.raises(edge.WorkflowFailed) as err:
        app.start(wf, id="rule").result(timeout=10)
    assert err.value.error["type"] == "UsageError"
    assert "concurrent branch" in err.value.error["message"]
    assert [k for _, k, n in _history(node, "rule") if n == "save"] == []
    assert app.start(sequential_in_one_branch, id="ok").result(timeout=10) == [1, 3]


def test_a_drain_lets_a_running_branch_checkpoint_before_the_run_is_handed_back(make_node):
    import threading

    app = edge.App("gather-drain")
    bodies: list[str] = []
    release = threading.Event()

    @app.step(retries=5, initial_delay=30.0, jitter=False)
    async def flaky() -> str:
        bodies.append("flaky")
        if len(bodies) < 3:
            raise ConnectionError("down")  # its 30 s backoff is cut short by the drain
        return "flaky ok"

    @app.step()
    def blocking() -> str:  # a sync step on a step thread: cannot be cancelled
        bodies.append("blocking")
        release.wait(10)
        return "blocking ok"

    @app.workflow()
    async def wf() -> list:
        return list(await asyncio.gather(blocking(), flaky()))

    node = make_node(app)
    app.start(wf, id="dr")
    wait_until(lambda: sorted(bodies) == ["blocking", "flaky"], what="both bodies running")

    def release_once_draining() -> None:
        wait_until(node.draining.is_set, what="the drain")
        release.set()

    threading.Thread(target=release_once_draining, daemon=True).start()
    node.stop(grace=5.0)
    node2 = make_node(app)
    assert node2.verbs.handle("dr").result(timeout=10) == ["blocking ok", "flaky ok"]
    assert bodies.count("blocking") == 1, "the drain lost a running branch's checkpoint"


def test_seq_is_taken_when_an_operation_is_called_not_when_it_is_awaited(make_node):
    app = edge.App("gather-call-time")

    @app.step()
    async def first() -> str:
        return "first"

    @app.step()
    async def second() -> str:
        return "second"

    @app.workflow()
    async def wf() -> list:
        one, two = first(), edge.now_async()
        three = second()
        return [await three, await one, isinstance(await two, float)]

    node = make_node(app)
    assert app.start(wf, id="ct").result(timeout=10) == ["second", "first", True]
    assert _history(node, "ct") == [(1, "step", "first"), (2, "now", "now"),
                                    (3, "step", "second")]


def test_a_park_swallowed_by_return_exceptions_still_parks_the_workflow(make_node):
    app = edge.App("gather-swallow")

    @app.step()
    async def work() -> str:
        return "w"

    @app.workflow()
    async def wf() -> list:
        got = await asyncio.gather(work(), edge.wait_event_async("go"),
                                   return_exceptions=True)
        return [type(x).__name__ if isinstance(x, BaseException) else x for x in got]

    node = make_node(app)
    h = app.start(wf, id="sw")
    wait_until(lambda: node.store.get_workflow("sw").status == "WAITING", what="WAITING")
    wait_until(lambda: node.aio.running == 0, what="the run to end")
    assert node.store.get_workflow("sw").status == "WAITING", "a swallowed park finished it"
    node.verbs.send_event("sw", "go", 1)
    assert h.result(timeout=10) == ["w", 1]


def test_two_branches_that_park_park_the_workflow_once_and_both_resume(make_node):
    app = edge.App("gather-two-parks")

    @app.workflow()
    async def wf() -> list:
        got = await asyncio.gather(edge.wait_event_async("a"), edge.wait_event_async("b"))
        return list(got)

    node = make_node(app)
    h = app.start(wf, id="tp")
    wait_until(lambda: node.store.get_workflow("tp").status == "WAITING", what="WAITING")
    wait_until(lambda: node.aio.running == 0, what="the run to end")
    node.verbs.send_event("tp", "b", 2)  # the second branch's event first: kept for it
    wait_until(lambda: node.store.get_workflow("tp").status == "WAITING"
               and node.aio.running == 0, what="parked again on a")
    node.verbs.send_event("tp", "a", 1)
    assert h.result(timeout=10) == [1, 2]
    assert [(s["seq"], s["name"], s["status"]) for s in node.verbs.describe("tp")["steps"]] == [
        (1, "a", "SUCCEEDED"), (2, "b", "SUCCEEDED")]


def test_parallel_checkpoints_are_each_recorded_and_share_commits(make_node):
    app = edge.App("gather-batch")

    @app.step()
    async def one(i: int) -> int:
        return i

    @app.workflow()
    async def wf(n: int) -> int:
        return sum(await asyncio.gather(*(one(i) for i in range(n))))

    node = make_node(app)
    before = node.store.commit_stats
    assert app.start(wf, 100, id="gb").result(timeout=30) == sum(range(100))
    after = node.store.commit_stats
    steps = node.verbs.describe("gb")["steps"]
    assert [s["seq"] for s in steps] == list(range(1, 101))
    assert all(s["status"] == "SUCCEEDED" for s in steps)
    batches, writes = after[0] - before[0], after[1] - before[1]
    assert writes >= 100 and batches < writes, (batches, writes)  # group commit batched them
