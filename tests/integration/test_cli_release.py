"""The CLI a script can drive: paging with --cursor, --json on every write command,
`edge result` and its exit codes, hints that name the right option, and
`edge status --data-dir` of a replicated data directory."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli import Running, assert_clean_error, edge, start_node, wait_status


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_node(tmp_path_factory.mktemp("cli-release") / "data")
    yield running
    running.stop(signal.SIGKILL)


def _start(node: Running, *args: str) -> str:
    res = edge("start", *args, env=node.env())
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_list_pages_with_cursor_and_reports_next_cursor(node: Running) -> None:
    ids = [_start(node, "greet", "--input", f'["p{i}"]', "--id", f"page-{i}") for i in range(5)]
    for wid in ids:
        wait_status(node, wid, "SUCCEEDED")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        args = ["list", "--workflow", "greet", "--limit", "2", "--json"]
        res = edge(*args, *(["--cursor", cursor] if cursor else []), env=node.env())
        assert res.returncode == 0, res.stderr
        page = json.loads(res.stdout)
        assert len(page["workflows"]) <= 2
        seen += [w["id"] for w in page["workflows"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    page_ids = [w for w in seen if w.startswith("page-")]
    assert page_ids == sorted(ids, reverse=True)  # newest first, each once, none skipped
    assert len(seen) == len(set(seen))
    # text output says how to go on, on stderr (stdout stays the table)
    res = edge("list", "--workflow", "greet", "--limit", "1", env=node.env())
    assert "--cursor" in res.stderr and "--cursor" not in res.stdout
    # beyond the node's page size: fetched in pages, not refused
    res = edge("list", "--limit", "2500", "--json", env=node.env())
    assert res.returncode == 0, res.stderr
    assert {w["id"] for w in json.loads(res.stdout)["workflows"]} >= set(ids)


def test_cursor_with_queue_is_a_usage_error(node: Running) -> None:
    assert_clean_error(edge("list", "--queue", "q", "--cursor", "x", env=node.env()), 2,
                       "--cursor")
    assert_clean_error(edge("list", "--queue", "q", "--limit", "1001", env=node.env()), 2,
                       "--limit")


def test_write_commands_print_json(node: Running) -> None:
    res = edge("start", "greet", "--input", '["s"]', "--id", "json-start", "--json",
               env=node.env())
    assert json.loads(res.stdout) == {"id": "json-start", "created": True}
    res = edge("start", "greet", "--input", '["s"]', "--id", "json-start", "--json",
               env=node.env())
    assert json.loads(res.stdout) == {"id": "json-start", "created": False}
    wid = _start(node, "wait_for", "--input", '["j"]', "--id", "json-wait")
    wait_status(node, wid, "WAITING")
    res = edge("send", wid, "nope", "--value", "1", "--dedup", "k", "--json", env=node.env())
    assert res.returncode == 0, res.stderr
    assert isinstance(json.loads(res.stdout), dict)
    res = edge("cancel", wid, "--json", env=node.env())
    assert res.returncode == 0, res.stderr
    assert isinstance(json.loads(res.stdout), dict)
    wait_status(node, wid, "CANCELLED")
    res = edge("resume", wid, "--json", env=node.env())
    assert json.loads(res.stdout)["status"] == "PENDING"
    done = _start(node, "greet", "--input", '["f"]', "--id", "json-fork-src")
    wait_status(node, done, "SUCCEEDED")
    res = edge("fork", done, "--from-step", "1", "--id", "json-forked", "--json",
               env=node.env())
    assert json.loads(res.stdout) == {"id": "json-forked", "forked_from": done, "from_step": 1}
    res = edge("prune", "--finished-before", "30d", "--json", env=node.env())
    assert set(json.loads(res.stdout)) >= {"deleted", "cutoff"}


def test_result_exit_codes(node: Running) -> None:
    ok = _start(node, "greet", "--input", '["r"]', "--id", "res-ok")
    res = edge("result", ok, "--timeout", "20", env=node.env())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"greeting": "hello r"}
    res = edge("result", ok, "--json", env=node.env())
    assert json.loads(res.stdout) == {"id": ok, "status": "SUCCEEDED",
                                      "output": {"greeting": "hello r"}}

    failed = _start(node, "fail", "--id", "res-fail")
    res = edge("result", failed, "--timeout", "20", env=node.env())
    assert_clean_error(res, 5, "ValueError")
    res = edge("result", failed, "--json", env=node.env())
    assert res.returncode == 5 and json.loads(res.stdout)["status"] == "FAILED"

    waiting = _start(node, "wait_for", "--input", '["t"]', "--id", "res-wait")
    assert_clean_error(edge("result", waiting, "--timeout", "0.3", env=node.env()), 7,
                       "still")
    edge("cancel", waiting, env=node.env())
    assert_clean_error(edge("result", waiting, "--timeout", "20", env=node.env()), 6,
                       "CANCELLED")
    assert_clean_error(edge("result", "no-such-id", env=node.env()), 1, "no-such-id")
    res = edge("result", ok, "--timeout", "-1", env=node.env())  # typer's own usage error
    assert res.returncode == 2 and "--timeout" in res.stderr and "Traceback" not in res.stderr


def test_hints_name_the_right_option(node: Running, tmp_path: Path) -> None:
    wid = _start(node, "wait_for", "--input", '["h"]', "--id", "hint-wait")
    res = edge("send", wid, "go", "--value", "yes", env=node.env())
    assert_clean_error(res, 2, "--value")
    assert "--input" not in res.stderr

    ok = _start(node, "greet", "--input", '["h"]', "--id", "hint-ok")
    wait_status(node, ok, "SUCCEEDED")
    res = edge("resume", ok, env=node.env())
    assert_clean_error(res, 1, "SUCCEEDED")
    assert "wait for it to finish" not in res.stderr and "fork" in res.stderr

    existing = tmp_path / "there.db"
    existing.write_bytes(b"keep me")
    res = edge("restore", "--replica", f"file://{tmp_path}/replica", "--output", str(existing))
    assert_clean_error(res, 2, "already exists")
    assert "restoring" not in res.stderr
    assert existing.read_bytes() == b"keep me"


def test_status_of_a_replicated_data_dir_names_its_replica(tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    running = start_node(tmp_path / "data", "--replica", f"file://{replica}")
    assert running.stop() == 0
    res = edge("status", "--data-dir", str(running.data_dir))
    assert res.returncode == 0, res.stderr
    assert "replication: none" not in res.stdout.replace("  ", " ")
    assert f"file://{replica}" in res.stdout and "epoch 1" in res.stdout
    st = json.loads(edge("status", "--data-dir", str(running.data_dir), "--json").stdout)
    assert st["replication"]["replica"] == f"file://{replica}"
    assert st["replication"]["epoch"] == 1
    # an unreplicated directory does not claim a replica
    plain = start_node(tmp_path / "plain")
    assert plain.stop() == 0
    st = json.loads(edge("status", "--data-dir", str(plain.data_dir), "--json").stdout)
    assert st["replication"]["replica"] is None
