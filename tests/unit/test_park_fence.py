"""wait_event_or_park fences on the park's own compare-and-set: a stale run token parks
nothing and writes no checkpoint, and a park updates the workflow row once (one run
of its checksum trigger, not a fence's and then a park's)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.store import OpRow, StaleRun, Store, messages
from edge.store.rows import checksum

NOW = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "e.db", "normal", NOW)
    s.insert_workflow("w", "wf", "{}", NOW)
    assert s.claim("w", "tok", NOW)
    yield s  # type: ignore[misc]
    s.close()


def wait_op() -> OpRow:
    return OpRow("w", 1, "wait_event", "go", "RUNNING", 1, None, None, NOW, None)


@pytest.mark.parametrize("deadline", [None, NOW + 100, NOW - 1])
def test_a_stale_token_parks_nothing(store: Store, deadline: float | None) -> None:
    with pytest.raises(StaleRun):
        messages.wait_event_or_park(store, wait_op(), "old-token", NOW + 1, deadline)
    wf = store.get_workflow("w")
    assert wf is not None and (wf.status, wf.run_token, wf.updated_at) == ("RUNNING", "tok", NOW)
    assert store.load_ops("w") == []


def test_a_park_writes_the_workflow_row_once(store: Store) -> None:
    # Counted by the checksum trigger's calls: each UPDATE of the workflow row runs it
    # twice (verify the old row, digest the new one).
    calls: list[int] = []

    def counting(*parts: object) -> int:
        calls.append(1)
        return checksum(*parts)

    def swap(conn: sqlite3.Connection, fn: Callable[..., int]) -> None:
        conn.create_function("edge_checksum", -1, fn, deterministic=True)

    store.write(lambda c: swap(c, counting))
    try:
        assert messages.wait_event_or_park(store, wait_op(), "tok", NOW + 1, None) is None
    finally:
        store.write(lambda c: swap(c, checksum))
    wf = store.get_workflow("w")
    assert wf is not None and (wf.status, wf.waiting_for, wf.run_token) == ("WAITING", "go", None)
    assert wf.updated_at == NOW + 1
    assert [o.seq for o in store.load_ops("w")] == [1]
    assert len(calls) == 2


def test_past_deadline_still_fenced_and_checkpointed(store: Store) -> None:
    assert messages.wait_event_or_park(store, wait_op(), "tok", NOW + 1, NOW) is None
    wf = store.get_workflow("w")
    assert wf is not None and wf.status == "RUNNING" and wf.updated_at == NOW + 1
    assert [o.seq for o in store.load_ops("w")] == [1]
