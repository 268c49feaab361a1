"""The CLI's text renderers (edge/cli/render.py, edge/cli/text.py) on sample API objects.

Plain when not on a terminal, the same characters plus colour on one; user data
never carries a control character to the terminal; `--json` output is the API
object unchanged.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from edge.cli import render as out
from edge.cli import text as tx

NOW = datetime(2025, 6, 1, 12, 0, 10, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def wf(id: str, status: str, **kw: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": id, "workflow": "fulfil", "status": status,
        "input": {"args": ["o-1"], "kwargs": {"cents": 500}}, "output": None, "error": None,
        "created_at": "2025-06-01T12:00:00.000000Z", "updated_at": "2025-06-01T12:00:05.250000Z",
        "wake_at": None, "waiting_for": None, "blocked_on": None, "queue": None,
        "parent_id": None,
    }
    view.update(kw)
    return view


def step(seq: int, name: str, status: str = "SUCCEEDED", kind: str = "step", attempts: int = 1,
         start: str = "12:00:00.100", end: str | None = "12:00:00.350",
         error: Any = None) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "name": name, "status": status, "attempts": attempts,
            "output": None, "error": error, "started_at": f"2025-06-01T{start}000Z",
            "finished_at": None if end is None else f"2025-06-01T{end}000Z"}


PAGE = {"workflows": [
    wf("o-4", "WAITING", waiting_for="approved", wake_at="2025-06-01T13:00:00Z"),
    wf("report-1", "SLEEPING", workflow="nightly_report", wake_at="2025-06-01T12:15:10Z"),
    wf("refund-2", "FAILED", workflow="refund",
       error={"type": "StepFailed", "message": "step refund_payment failed: declined"}),
    wf("parent-1", "WAITING", waiting_for="child:kid-1"),
    wf("stuck", "PENDING", blocked_on="unknown workflow 'old' in this code version"),
    wf("o-1", "SUCCEEDED", output={"receipt": "r-1"}),
], "next_cursor": None}


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


# ---- edge list -----------------------------------------------------------------------------


def test_list_is_a_table_with_a_note_on_what_each_waits_for() -> None:
    text = out.format_list(PAGE, color=False, now=NOW)
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "WORKFLOW", "STATUS", "UPDATED"]  # the documented header
    assert len(lines) == 7
    rows = {columns(line)[0]: columns(line) for line in lines[1:]}
    assert rows["o-4"] == ["o-4", "fulfil", "WAITING", "2025-06-01 12:00:05Z",
                           'waiting for event "approved"']
    assert rows["report-1"][4] == "sleeping until 2025-06-01 12:15:10Z (in 15.0 min)"
    assert rows["refund-2"][4] == "StepFailed: step refund_payment failed: declined"
    assert rows["parent-1"][4] == "waiting for child workflow kid-1"
    assert rows["stuck"][4] == "blocked: unknown workflow 'old' in this code version"
    assert rows["o-1"] == ["o-1", "fulfil", "SUCCEEDED", "2025-06-01 12:00:05Z"]
    # Aligned columns: every STATUS starts where the header's does.
    at = lines[0].index("STATUS")
    assert all(line[at:].split()[0] in tx.STATUS_SGR for line in lines[1:])
    assert not any(line != line.rstrip() for line in lines)


def test_list_without_notes_has_four_columns() -> None:
    page = {"workflows": [wf("a", "SUCCEEDED"), wf("b", "RUNNING")]}
    lines = out.format_list(page, color=False, now=NOW).splitlines()
    assert [len(columns(line)) for line in lines] == [4, 4, 4]


def test_colour_adds_escape_codes_and_nothing_else() -> None:
    plain = out.format_list(PAGE, color=False, now=NOW)
    coloured = out.format_list(PAGE, color=True, width=10_000, now=NOW)
    assert coloured != plain
    assert ANSI.sub("", coloured) == plain
    assert "\x1b[1;31mFAILED\x1b[0m" in coloured and "\x1b[32mSUCCEEDED\x1b[0m" in coloured
    view = wf("refund-2", "FAILED", error={"type": "E", "message": "m"},
              steps=[step(1, "a", "FAILED", attempts=3, error={"type": "E", "message": "m"})])
    assert ANSI.sub("", out.format_show(view, color=True, width=10_000, now=NOW)) == \
        out.format_show(view, color=False, now=NOW)
    st = status_sample()
    assert ANSI.sub("", out.format_status(st, color=True, now=NOW)) == \
        out.format_status(st, color=False, now=NOW)


def test_a_narrow_terminal_clips_the_free_text_column_only() -> None:
    text = out.format_list(PAGE, color=True, width=75, now=NOW)
    lines = ANSI.sub("", text).splitlines()
    assert max(len(line) for line in lines) <= 75
    assert any(line.endswith("...") for line in lines)
    assert {columns(line)[0] for line in lines[1:]} == {w["id"] for w in PAGE["workflows"]}


def test_control_characters_in_user_data_are_escaped() -> None:
    evil = "x\x1b]0;owned\x07\x1b[2J\u202etxt.exe\nline2"
    page = {"workflows": [wf(evil, "FAILED", workflow="w\x1b[31m",
                              error={"type": "E\x1b[5m", "message": "a\rb"})]}
    for text in (out.format_list(page, color=False, now=NOW),
                 out.format_list(page, color=True, now=NOW),
                 out.format_show(page["workflows"][0] | {"steps": [
                     step(1, "s\x1b", "FAILED", error={"type": "E", "message": "\x9b31m"})]},
                     color=False, now=NOW)):
        assert "\x07" not in text and "\u202e" not in text and "\x9b" not in text
        assert "\x1b]" not in text and "\x1b[2J" not in text and "\x1b[5m" not in text
        assert "\\x1b]0;owned\\x07\\x1b[2J\\u202etxt.exe line2" in text
    assert tx.safe("café 日本 ok") == "café 日本 ok"


def test_wide_characters_keep_the_columns_aligned() -> None:
    page = {"workflows": [wf("注文-1", "SUCCEEDED"), wf("o-2", "SUCCEEDED")]}
    lines = out.format_list(page, color=False, now=NOW).splitlines()
    at = [tx.text_width(line[:line.index("fulfil")]) for line in lines[1:]]
    assert at[0] == at[1] == lines[0].index("WORKFLOW")


# ---- edge show -----------------------------------------------------------------------------


def test_show_has_the_step_timeline() -> None:
    view = wf("o-1", "SUCCEEDED", output={"receipt": "r-1"}, steps=[
        step(1, "reserve", start="12:00:00.100", end="12:00:00.100"),
        step(2, "charge", attempts=2, start="12:00:00.110", end="12:00:01.610"),
        step(3, "approved", kind="wait_event", start="12:00:01.700", end="12:00:05.200"),
        step(4, "ship", start="12:00:05.210", end="12:00:05.240"),
    ])
    text = out.format_show(view, color=False, now=NOW)
    head, _, timeline = text.partition("\n\n")
    assert head.splitlines() == [
        "id:        o-1",
        "workflow:  fulfil",
        "status:    SUCCEEDED",
        'input:     args=["o-1"] kwargs={"cents": 500}',
        'output:    {"receipt": "r-1"}',
        "created:   2025-06-01 12:00:00Z (10.00 s ago)",
        "updated:   2025-06-01 12:00:05Z",
        "took:      5.25 s",
    ]
    rows = [columns(line) for line in timeline.splitlines()]
    assert rows == [
        ["SEQ", "KIND", "NAME", "STATUS", "ATTEMPTS", "AT", "DURATION"],  # no errors: no column
        ["1", "step", "reserve", "SUCCEEDED", "1", "+100.0 ms", "0.0 ms"],
        ["2", "step", "charge", "SUCCEEDED", "2", "+110.0 ms", "1.50 s"],
        ["3", "wait_event", "approved", "SUCCEEDED", "1", "+1.70 s", "3.50 s"],
        ["4", "step", "ship", "SUCCEEDED", "1", "+5.21 s", "30.0 ms"],
    ]


def test_show_a_waiting_workflow_says_what_it_waits_for() -> None:
    view = wf("o-4", "WAITING", waiting_for="approved", wake_at="2025-06-01T13:00:00Z", steps=[
        step(1, "charge", attempts=3, error=None),
        step(2, "approved", "RUNNING", kind="wait_event", start="12:00:01.000", end=None),
    ])
    text = out.format_show(view, color=False, now=NOW)
    assert ("state:     waiting for event \"approved\", times out at 2025-06-01 13:00:00Z "
            "(in 59.8 min)") in text.splitlines()
    last = columns(text.splitlines()[-1])
    assert last == ["2", "wait_event", "approved", "RUNNING", "1", "+1.00 s", "9.00 s so far"]
    child = out.format_show(wf("p", "WAITING", waiting_for="child:kid-9", steps=[]),
                            color=False, now=NOW)
    assert "state:     waiting for child workflow kid-9" in child
    assert child.endswith("no steps recorded yet")


def test_show_a_sleeping_pending_and_blocked_workflow() -> None:
    sleeping = out.format_show(wf("r", "SLEEPING", wake_at="2025-06-01T12:15:10Z", steps=[
        step(1, "sleep", "RUNNING", kind="sleep", start="12:00:00.000", end=None)]),
        color=False, now=NOW)
    assert "state:     sleeping until 2025-06-01 12:15:10Z (in 15.0 min)" in sleeping
    pending = out.format_show(wf("q", "PENDING", queue="emails", steps=[]), color=False, now=NOW)
    assert "state:     queued: waiting for a worker or a slot on queue emails" in pending
    assert "queue:     emails" in pending
    blocked = out.format_show(wf("b", "PENDING", blocked_on="replication", steps=[]),
                              color=False, now=NOW)
    assert "state:     blocked: replication" in blocked


def test_show_a_failed_workflow_puts_errors_in_the_timeline() -> None:
    err = {"type": "PaymentDeclined", "message": "card closed"}
    view = wf("refund-2", "FAILED", parent_id="batch-7",
              error={"type": "StepFailed", "message": "step refund_payment failed"},
              steps=[step(1, "reserve"), step(2, "refund_payment", "FAILED", attempts=3,
                                                 error=err)])
    text = out.format_show(view, color=False, now=NOW)
    assert "error:     StepFailed: step refund_payment failed" in text
    assert "parent:    batch-7" in text
    lines = text.splitlines()
    assert columns(lines[-3]) == ["SEQ", "KIND", "NAME", "STATUS", "ATTEMPTS", "AT", "DURATION",
                                  "ERROR"]
    assert columns(lines[-1])[-1] == "PaymentDeclined: card closed"
    assert columns(lines[-1])[4] == "3"


# ---- edge status ---------------------------------------------------------------------------


def status_sample(**replication: Any) -> dict[str, Any]:
    rep: dict[str, Any] | None = {
        "replica": "s3://bucket/site-1", "epoch": 3, "holding_lease": True, "fenced": None,
        "lag_seconds": 0.0, "restored_from_epoch": 2, "blocked_on_replication": 0,
        "lease": {"holder": "node-a", "epoch": 3, "expires_at": 123.0},
        "sidecar": {"up": True, "fenced": False, "pid": 4242, "epoch": 3, "restarts": 1,
                    "last_sync_at": NOW.timestamp() - 2, "last_error": None,
                    "replica": "s3://bucket/site-1/e3", "txid": 9, "replicated_txid": 9,
                    "config_path": "/d/litestream.yml", "socket_path": "/d/ls.sock"},
    }
    assert rep is not None
    rep.update(replication)
    return {"node_id": "node-a", "app": "shop", "state": "ready", "ready": True, "leader": True,
            "pid": 77, "data_dir": "/data", "durability": "full",
            "workflows": {"PENDING": 0, "RUNNING": 1, "SLEEPING": 0, "WAITING": 2,
                          "SUCCEEDED": 40, "FAILED": 1, "CANCELLED": 0},
            "workers": {"size": 8, "busy": 1, "queued": 0}, "replication": rep}


def test_status_with_replication() -> None:
    text = out.format_status(status_sample(), color=False, now=NOW)
    assert text.splitlines() == [
        "node:        node-a (app shop, pid 77)",
        "state:       ready",
        "leader:      yes",
        "data dir:    /data",
        "durability:  full",
        "workers:     8 (busy 1, queued 0)",
        "workflows:   44 total: PENDING 0  RUNNING 1  SLEEPING 0  WAITING 2  SUCCEEDED 40  "
        "FAILED 1  CANCELLED 0",
        "replication: s3://bucket/site-1 (epoch 3)",
        "  lease:     held by this node",
        "  lag:       0 s (caught up)",
        "  sidecar:   up (pid 4242), 1 restart(s), last sync 2025-06-01 12:00:08Z (2.00 s ago)",
        "  fenced:    no",
        "  restored:  from epoch 2",
    ]


def test_status_of_a_standby_with_trouble() -> None:
    st = status_sample(holding_lease=False, lag_seconds=95.5, fenced="lease lost at epoch 3",
                       blocked_on_replication=2, restored_from_epoch=None, future_field=[1],
                       lease={"holder": "node-b", "epoch": 4, "kind": "standby"},
                       sidecar={"up": False, "pid": None, "restarts": 5, "last_sync_at": None,
                                "last_error": "exit status 1"})
    st.update(state="standby", ready=False, leader=False)
    lines = out.format_status(st, color=False, now=NOW).splitlines()
    assert "state:       standby (not ready)" in lines and "leader:      no" in lines
    assert "  lease:     held by node-b (epoch 4); this node stands by" in lines
    assert "  lag:       95.50 s (the oldest commit not yet in the replica)" in lines
    assert "  sidecar:   down, 5 restart(s)" in lines
    assert "  error:     exit status 1" in lines
    assert "  fenced:    lease lost at epoch 3" in lines
    assert "  blocked:   2 step(s) wait for the replica" in lines
    assert "  future_field: [1]" in lines  # a newer field is shown, not dropped
    external = out.format_status(status_sample(sidecar=None), color=False, now=NOW)
    assert "  sidecar:   external (not supervised by this node)" in external


def test_status_without_replica_and_of_a_file() -> None:
    st = status_sample()
    st["replication"] = None
    assert ("replication: none (no --replica: losing this disk loses every workflow)"
            in out.format_status(st, color=False, now=NOW))
    text = out.format_status({"source": "file", "data_dir": "/d", "database": "/d/edge.db",
                              "schema_version": 2, "node_id": None,
                              "workflows": {"PENDING": 1, "FAILED": 0}, "replication": None},
                             color=False, now=NOW)
    assert text.splitlines()[:4] == ["database:    /d/edge.db (read-only inspection)",
                                     "schema:      version 2", "node:        -",
                                     "workflows:   1 total: PENDING 1  FAILED 0"]


# ---- colour detection and --json -----------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("env", "stream", "want"), [
    ({}, io.StringIO(), False),
    ({}, Tty(), True),
    ({"NO_COLOR": "1"}, Tty(), False),
    ({"TERM": "dumb"}, Tty(), False),
    ({"FORCE_COLOR": "1"}, io.StringIO(), True),
    ({"FORCE_COLOR": "0"}, io.StringIO(), False),
    ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, Tty(), False),
])
def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                   stream: io.StringIO, want: bool) -> None:
    for key in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tx.use_color(stream) is want


def test_renderers_default_to_plain_when_stdout_is_not_a_terminal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    for text in (out.format_list(PAGE), out.format_show(PAGE["workflows"][0] | {"steps": []}),
                 out.format_status(status_sample())):
        assert "\x1b" not in text


def test_json_output_is_the_api_object_unchanged() -> None:
    obj = {"workflows": [wf("é-1", "SUCCEEDED", output={"n": [1, 2]})]}
    assert tx.dumps(obj) == json.dumps(obj, indent=2, ensure_ascii=False)
    assert json.loads(tx.dumps(obj)) == obj


def test_status_shows_the_last_restore_drill() -> None:
    ok = {"ok": True, "kind": None, "detail": "integrity ok", "txid": 42,
          "txid_hex": "000000000000002a", "epoch": 3, "bytes_read": 10, "seconds": 1.25,
          "finished_at": NOW.timestamp() - 60, "rows": 5}
    lines = out.format_status(status_sample(drill={"interval": 600, "next_in_seconds": 540,
                                                   "last": ok}), color=False, now=NOW)
    assert "  drill:     verified TXID 000000000000002a (60.00 s ago, epoch 3, 1.2 s)" in \
        lines.splitlines(), lines
    bad = dict(ok, ok=False, kind="restore_failed", detail="file checksum mismatch")
    text = out.format_status(status_sample(drill={"interval": 600, "last": bad}), color=False,
                             now=NOW)
    assert "  drill:     FAILED restore_failed: file checksum mismatch (60.00 s ago, epoch 3)" \
        in text.splitlines(), text
    text = out.format_status(status_sample(drill={"interval": 600, "last": None}), color=False,
                             now=NOW)
    assert "  drill:     none yet (every 10.0 min)" in text.splitlines(), text
