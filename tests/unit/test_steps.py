"""Steps: retries with backoff on an injected clock, non-retryable errors, StepFailed,
JSON-only values with a size limit."""

from __future__ import annotations

import random

import pytest

import edge
from edge.engine import StepDef
from edge.errors import SerializationError
from edge.store import listing
from tests.conftest import wait_until


def test_retries_back_off_exponentially_on_the_injected_clock(make_node):
    clock = edge.FakeClock()
    app = edge.App("retry")
    attempts = []

    @app.step(retries=4, backoff=2.0, initial_delay=1.0, max_delay=5.0, jitter=False)
    def flaky() -> str:
        attempts.append(edge.context().attempt)
        if len(attempts) < 5:
            raise TimeoutError("upstream slow")
        return "ok"

    @app.workflow()
    def wf() -> str:
        return flaky()

    node = make_node(app, clock=clock)
    handle = app.start(wf, id="r")
    # result(timeout=) counts on the node's clock, which the retries' sleeps advance by
    # 12 s at once: wait in real time first, then read the result.
    wait_until(lambda: handle.status() == "SUCCEEDED", what="the retried step to succeed")
    assert handle.result(timeout=10) == "ok"
    assert attempts == [1, 2, 3, 4, 5]
    assert clock.slept == [1.0, 2.0, 4.0, 5.0]  # capped at max_delay
    (step,) = node.verbs.describe("r")["steps"]
    assert step["attempts"] == 5 and step["status"] == "SUCCEEDED"


def test_jitter_stays_within_half_to_full_delay():
    sd = StepDef(fn=lambda: None, name="s", retries=3, backoff=3.0, initial_delay=2.0,
                 max_delay=100.0)
    rng = random.Random(7)
    for attempt in (1, 2, 3):
        base = 2.0 * 3.0 ** (attempt - 1)
        for _ in range(50):
            assert base / 2 <= sd.delay(attempt, rng) <= base


def test_non_retryable_errors_fail_at_once_and_reach_the_workflow_as_step_failed(make_node):
    clock = edge.FakeClock()
    app = edge.App("nonretry")
    calls = []

    @app.step(retries=5, non_retryable=(ValueError,))
    def validate(x: int) -> int:
        calls.append(x)
        raise ValueError(f"bad order {x}")

    @app.workflow()
    def wf() -> dict:
        try:
            validate(3)
        except edge.StepFailed as exc:
            return {"type": exc.type, "message": exc.message}
        return {}

    node = make_node(app, clock=clock)
    assert app.start(wf, id="n").result(timeout=10) == {"type": "ValueError",
                                                         "message": "bad order 3"}
    assert calls == [3] and clock.slept == []
    (step,) = node.verbs.describe("n")["steps"]
    assert step["status"] == "FAILED" and step["error"] == {"type": "ValueError",
                                                            "message": "bad order 3"}


def test_step_failed_is_the_same_on_replay(make_node):
    app = edge.App("failreplay")
    seen = []

    @app.step()
    def boom() -> None:
        raise KeyError("k")

    @app.workflow()
    def wf() -> str:
        try:
            boom()
        except edge.StepFailed as exc:
            seen.append((exc.type, exc.message))
        edge.wait_event("go")  # park, so the next run replays boom()'s failure
        return "done"

    node = make_node(app)
    h = app.start(wf, id="f")
    from tests.conftest import wait_until

    wait_until(lambda: node.store.get_workflow("f").status == "WAITING", what="WAITING")
    node.verbs.send_event("f", "go")
    assert h.result(timeout=10) == "done"
    assert seen == [("KeyError", "'k'"), ("KeyError", "'k'")]


def test_non_json_step_output_fails_the_workflow_naming_the_step(make_node):
    app = edge.App("nonjson")

    @app.step(name="make_set")
    def make_set() -> object:
        return object()

    @app.workflow()
    def wf() -> None:
        try:
            make_set()
        except Exception:
            pass  # cannot be swallowed
        return None

    make_node(app)
    with pytest.raises(edge.WorkflowFailed) as err:
        app.start(wf, id="x").result(timeout=10)
    assert err.value.error["type"] == "SerializationError"
    assert "output of step make_set is not JSON" in err.value.error["message"]


def test_oversized_values_are_refused_with_the_limit(make_node):
    app = edge.App("big")

    @app.step(name="big")
    def big() -> str:
        return "x" * 5000

    @app.workflow()
    def wf(blob: str) -> str:
        return big()

    make_node(app, max_value_bytes=4096)
    with pytest.raises(SerializationError, match="over the 4096-byte limit"):
        app.start(wf, "y" * 5000, id="in")
    with pytest.raises(edge.WorkflowFailed) as err:
        app.start(wf, "small", id="out").result(timeout=10)
    assert "output of step big" in err.value.error["message"]
    assert "4096" in err.value.error["message"]


def test_non_json_input_and_wrong_arguments_are_refused(make_node):
    app = edge.App("args")

    @app.workflow()
    def wf(a: int, b: int = 2) -> int:
        return a + b

    node = make_node(app)
    with pytest.raises(SerializationError, match="input of workflow"):
        app.start(wf, {1, 2})
    with pytest.raises(edge.EdgeError, match="wrong arguments") as err:
        app.start(wf, 1, 2, 3)
    assert err.value.exit_code == 2
    with pytest.raises(edge.EdgeError, match="unknown workflow"):
        node.verbs.start_workflow("nope", [])
    assert listing.counts(node.store) == {}


def test_steps_called_outside_a_workflow_are_plain_calls():
    app = edge.App("plain")

    @app.step()
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3
    with pytest.raises(edge.NotInWorkflow):
        edge.sleep(1)
