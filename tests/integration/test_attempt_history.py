"""Per-attempt step history: each failed attempt's error, when it ended and when its retry
is due, in describe, the CLI (node and --data-dir) and the dashboard's data; a step waiting
to retry shows next_retry_at; a step that succeeds first time writes no history row."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import edge
from edge.clock import FakeClock
from edge.testing import TestNode
from tests.conftest import run_cli, wait_until

app = edge.App("attempts")
calls: dict[str, int] = {}


@app.step(retries=3, initial_delay=10.0, backoff=2.0, jitter=False)
def flaky(key: str) -> str:
    calls[key] = calls.get(key, 0) + 1
    if calls[key] <= 2:
        raise ConnectionError(f"try {calls[key]} of {key} failed")
    return "ok"


@app.step()
def fine() -> int:
    return 1


@app.workflow()
def wf(key: str) -> str:
    fine()
    return flaky(key)


def test_history_of_failed_attempts(tmp_path: Path, capsys: Any) -> None:
    clock = FakeClock(1_800_000_000.0)  # its sleep() advances at once: backoff is instant
    with TestNode(app, clock=clock, data_dir=tmp_path / "data") as t:
        h = t.start(wf, "a")
        assert h.result(timeout=10) == "ok"
        done = t.node.verbs.describe(h.id)["steps"]
    assert done[0]["history"] == [] and done[0]["next_retry_at"] is None
    assert done[1]["attempts"] == 3 and done[1]["next_retry_at"] is None
    assert done[1]["history"] == [
        {"attempt": 1, "error": {"type": "ConnectionError", "message": "try 1 of a failed"},
         "finished_at": "2027-01-15T08:00:00Z", "retry_at": "2027-01-15T08:00:10Z"},
        {"attempt": 2, "error": {"type": "ConnectionError", "message": "try 2 of a failed"},
         "finished_at": "2027-01-15T08:00:10Z", "retry_at": "2027-01-15T08:00:30Z"}]
    # The same history from the stopped node's file, as JSON and as text.
    code, out, err = run_cli(["show", h.id, "--data-dir", str(tmp_path / "data"), "--json"],
                             capsys)
    assert code == 0, err
    assert json.loads(out)["steps"][1]["history"] == done[1]["history"]
    code, out, _ = run_cli(["show", h.id, "--data-dir", str(tmp_path / "data")], capsys)
    assert "failed attempts:" in out and "attempt 2" in out and "try 2 of a failed" in out
    conn = sqlite3.connect(f"file:{tmp_path / 'data' / 'edge.db'}?mode=ro", uri=True)
    try:  # the step that succeeded at once wrote no history row
        rows = conn.execute("SELECT seq, count(*) FROM step_attempts GROUP BY seq").fetchall()
    finally:
        conn.close()
    assert rows == [(2, 2)]


slow_app = edge.App("attempts-slow")


@slow_app.step(retries=1, initial_delay=30.0, jitter=False)
def once_failing() -> str:
    raise TimeoutError("the carrier did not answer")


@slow_app.workflow()
def slow_wf() -> str:
    return once_failing()


def test_step_in_backoff_shows_next_retry_at(make_node: Any) -> None:
    node = make_node(slow_app)
    h = slow_app.start(slow_wf)
    step = wait_until(
        lambda: (s := node.verbs.describe(h.id)["steps"]) and s[0]["history"] and s[0],
        what="the first failure")
    assert step["status"] == "RUNNING"
    failed_at = step["history"][0]["finished_at"]
    assert step["next_retry_at"] == step["history"][0]["retry_at"]
    from datetime import datetime

    gap = (datetime.fromisoformat(step["next_retry_at"]) -
           datetime.fromisoformat(failed_at)).total_seconds()
    assert abs(gap - 30.0) < 0.01  # the backoff the policy chose, recorded before waiting
