"""Step timeouts: an overrunning attempt counts as failed, the retry policy decides, and
the late result is discarded, never recorded. Timeouts are real time (short here); the
overrunning bodies block on events the test releases, never on sleeps."""

from __future__ import annotations

import threading

import pytest

import edge
from edge.errors import ConfigError
from tests.conftest import wait_until


def test_an_overrun_attempt_is_retried_and_its_late_result_is_never_recorded(make_node):
    app = edge.App("steptimeout")
    release = threading.Event()
    late_done = threading.Event()
    seen: list[tuple[int, str]] = []

    @app.step(timeout=0.3, retries=2, initial_delay=0.0)
    def fetch() -> str:
        ctx = edge.context()
        seen.append((ctx.attempt, ctx.idempotency_key))
        if ctx.attempt == 1:
            release.wait(10)  # hangs past its timeout
            late_done.set()
            return "late"
        return f"attempt {ctx.attempt}"

    @app.workflow()
    def wf() -> str:
        return fetch()

    node = make_node(app)
    assert app.start(wf, id="t").result(timeout=10) == "attempt 2"
    release.set()
    assert late_done.wait(10)
    (op,) = node.verbs.describe("t")["steps"]
    assert op["output"] == "attempt 2" and op["attempts"] == 2 and op["status"] == "SUCCEEDED"
    assert seen == [(1, "t:1"), (2, "t:1")]


def test_without_retries_an_overrun_fails_the_step_with_timeout_error(make_node):
    app = edge.App("steptimeout2")
    release = threading.Event()

    @app.step(timeout=0.2, retries=3, non_retryable=(TimeoutError,))
    def hang() -> None:
        release.wait(10)

    @app.workflow()
    def wf() -> dict:
        try:
            hang()
        except edge.StepFailed as exc:
            return {"type": exc.type, "message": exc.message}
        return {}

    node = make_node(app)
    try:
        out = app.start(wf, id="h").result(timeout=10)
    finally:
        release.set()
    assert out["type"] == "TimeoutError" and "overran its 0.2 s timeout" in out["message"]
    (op,) = node.verbs.describe("h")["steps"]
    assert op["status"] == "FAILED" and op["attempts"] == 1


def test_a_fast_step_with_a_timeout_behaves_like_any_step(make_node):
    app = edge.App("fast")
    boom = {"on": True}

    @app.step(timeout=5.0, retries=1, initial_delay=0.0)
    def quick(x: int) -> int:
        if boom["on"]:
            boom["on"] = False
            raise ConnectionError("flaky")
        return x * 2

    @app.workflow()
    def wf(x: int) -> int:
        return quick(x)

    node = make_node(app)
    assert app.start(wf, 21, id="f").result(timeout=10) == 42
    wait_until(lambda: node.verbs.describe("f")["steps"][0]["attempts"] == 2, what="2 attempts")


@pytest.mark.parametrize("bad", [0, -1, "5", True])
def test_bad_step_timeouts_are_refused_at_decoration(bad):
    app = edge.App("badtimeout")
    with pytest.raises(ConfigError, match="step timeout"):
        app.step(timeout=bad)
