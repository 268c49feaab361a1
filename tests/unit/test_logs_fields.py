"""Logs an operator can act on: one line per step retry (workflow, step, seq, attempt,
error, next delay), and JSON lines that carry those fields and the whole traceback."""

from __future__ import annotations

import json
import logging

import pytest

import edge
from edge.logs import JsonFormatter
from edge.testing import TestNode


def flaky_app(fail_times: int) -> edge.App:
    app = edge.App("flaky")
    calls = {"n": 0}

    @app.step(retries=3, initial_delay=1.0, backoff=2.0, jitter=False)
    def wobble(x: int) -> int:
        calls["n"] += 1
        if calls["n"] <= fail_times:
            raise ConnectionError(f"refused #{calls['n']}")
        return x * 2

    @app.workflow(name="job")
    def job(x: int) -> int:
        return wobble(x)

    return app


def retry_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "edge.engine" and "retrying" in r.getMessage()]


@pytest.fixture(autouse=True)
def _propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    # edge.logs.configure() (an earlier test's node) stops propagation; caplog needs it.
    monkeypatch.setattr(logging.getLogger("edge"), "propagate", True)


def test_each_retry_is_one_line_with_its_context(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge")
    with TestNode(flaky_app(2)) as t:
        h = t.start("job", 21, id="wf-1")
        t.advance(60)
        assert t.result(h.id) == 42
    recs = retry_records(caplog)
    assert len(recs) == 2
    for n, rec in enumerate(recs, start=1):
        assert rec.levelno == logging.WARNING
        assert (rec.workflow_id, rec.seq, rec.attempt) == ("wf-1", 1, n)
        assert rec.step.endswith("wobble")
        assert rec.next_delay == 2.0 ** (n - 1)  # no jitter: 1 s, then 2 s
        msg = rec.getMessage()
        assert "wf-1" in msg and f"attempt {n} of 4" in msg and f"refused #{n}" in msg
        assert "ConnectionError" in msg


def test_a_step_without_retries_logs_no_retry_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge")
    app = edge.App("plain")

    @app.step()
    def boom() -> None:
        raise NameError("payments")

    @app.workflow()
    def job() -> None:
        boom()

    with TestNode(app) as t:
        h = t.start(job)
        assert t.status(h.id) == "FAILED"
    assert retry_records(caplog) == []


def test_json_lines_carry_the_context_fields_and_the_whole_traceback() -> None:
    def inner() -> None:
        raise ValueError("deep")

    try:
        try:
            inner()
        except ValueError as exc:
            raise RuntimeError("outer") from exc
    except RuntimeError:
        import sys
        rec = logging.LogRecord("edge.worker", logging.ERROR, __file__, 1,
                                "workflow %s failed", ("wf-9",), sys.exc_info())
    rec.workflow_id, rec.step, rec.seq = "wf-9", "charge", 3
    out = json.loads(JsonFormatter().format(rec))
    assert out["msg"] == "workflow wf-9 failed"
    assert (out["workflow_id"], out["step"], out["seq"]) == ("wf-9", "charge", 3)
    assert out["exc_type"] == "RuntimeError" and out["exc_message"] == "outer"
    tb = out["exc"]
    assert tb.startswith("Traceback (most recent call last)")
    assert "in inner" in tb and "ValueError: deep" in tb and tb.rstrip().endswith("outer")
    assert "\n" not in JsonFormatter().format(rec)  # still one line


def test_fields_that_are_not_known_are_left_out() -> None:
    rec = logging.LogRecord("edge.node", logging.INFO, __file__, 1, "ready", (), None)
    out = json.loads(JsonFormatter().format(rec))
    assert set(out) == {"ts", "level", "logger", "msg"}
