"""Listings and retention stay index-served as the file grows: deep cursor pages seek,
retention walks finished rows by age, a workflow's events are found by its id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.store import Store, lifecycle, listing

NOW = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "e.db", "normal", NOW)
    yield s  # type: ignore[misc]
    s.close()


def plan(store: Store, sql: str, params: tuple[object, ...]) -> str:
    with store.read() as conn:
        return " | ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def fill(store: Store, n: int, status: str = "SUCCEEDED") -> None:
    def fn(conn: sqlite3.Connection) -> None:
        for i in range(n):
            # Three rows per timestamp: pages must break ties by id, never skip or repeat.
            store_row = (f"w{i:04d}", "w", "{}", NOW + i // 3, NOW + i // 3)
            conn.execute("INSERT INTO workflows (id, workflow, status, input, created_at, "
                         "updated_at, checksum) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (store_row[0], store_row[1], status, store_row[2], store_row[3],
                          store_row[4], _digest(store_row[0])))

    store.write(fn)


def _digest(wid: str) -> int:
    from edge.store import WorkflowRow

    return WorkflowRow.digest_of(wid, "w", "{}", None, None)


@pytest.mark.parametrize("filters", [{}, {"status": "SUCCEEDED"}, {"workflow": "w"},
                                     {"since": NOW + 5}])
def test_cursor_pages_return_every_row_once_newest_first(store: Store,
                                                         filters: dict[str, object]) -> None:
    fill(store, 100)
    seen: list[str] = []
    cursor = None
    while True:
        rows, cursor = listing.list_workflows(store, limit=7, cursor=cursor, **filters)  # type: ignore[arg-type]
        seen.extend(r.id for r in rows)
        if cursor is None:
            break
    start = 15 if "since" in filters else 0  # since NOW+5: ids from w0015 on
    assert seen == [f"w{i:04d}" for i in range(99, start - 1, -1)]


@pytest.mark.parametrize("filters,index", [({}, "workflows_by_created"),
                                           ({"status": "FAILED"}, "workflows_by_status"),
                                           ({"since": 1.0}, "workflows_by_created")])
def test_a_deep_cursor_page_seeks_instead_of_walking(store: Store, filters: dict[str, object],
                                                     index: str) -> None:
    fill(store, 10)
    _, cursor = listing.list_workflows(store, limit=3)
    got = " | ".join(listing.list_plan(store, cursor=cursor, **filters))
    # A range on created_at in the index search, not a walk from the newest row.
    assert f"INDEX {index} (" in got and "created_at<" in got, got


def test_retention_walks_finished_rows_by_age(store: Store) -> None:
    got = plan(store, lifecycle.PRUNE_SELECT, (NOW, 500))
    assert "USING INDEX workflows_finished (updated_at<?)" in got, got


def test_retention_deletes_only_what_is_older_than_the_cutoff(store: Store) -> None:
    fill(store, 30)
    assert lifecycle.prune_batch(store, NOW + 4, limit=100) == 12  # ids 0..11: NOW..NOW+3
    assert lifecycle.prune_batch(store, NOW + 4, limit=100) == 0
    left = {r.id for r in listing.list_workflows(store, limit=100)[0]}
    assert left == {f"w{i:04d}" for i in range(12, 30)}


def test_a_workflows_events_are_found_by_its_id(store: Store) -> None:
    for sql in ("DELETE FROM events WHERE workflow_id = ?",
                "SELECT id, workflow_id, name, value, dedup, created_at, consumed_seq "
                "FROM events WHERE workflow_id = ? ORDER BY id"):
        got = plan(store, sql, ("x",))
        assert "events_by_workflow" in got and "SCAN events" not in got, (sql, got)


def test_migration_4_upgrades_a_version_3_file(tmp_path: Path) -> None:
    from edge.store import migrations

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    # Apply only migrations 1..3, as a release before this one left the file.
    saved = migrations.MIGRATIONS
    try:
        migrations.MIGRATIONS = saved[:3]
        migrations.migrate(conn, NOW)
    finally:
        migrations.MIGRATIONS = saved
    conn.close()
    s = Store.open(path, "normal", NOW)
    try:
        assert s.schema_version() == migrations.LATEST == 5
        assert "events_by_workflow" in plan(s, "DELETE FROM events WHERE workflow_id = ?",
                                            ("x",))
    finally:
        s.close()


def test_status_and_workflow_together_use_one_index_for_both(store: Store) -> None:
    got = " | ".join(listing.list_plan(store, status="FAILED", workflow="ten"))
    assert "workflows_by_name_status (workflow=? AND status=?)" in got, got
    # The single filters keep their own ordered indexes.
    assert "workflows_by_name (workflow=?)" in " | ".join(listing.list_plan(store, workflow="ten"))
    assert "workflows_by_status (status=?)" in " | ".join(listing.list_plan(store, status="FAILED"))


def test_status_and_workflow_listing_is_correct(store: Store) -> None:
    fill(store, 30)
    store.write(lambda c: c.execute(
        "UPDATE workflows SET status = 'FAILED' WHERE id IN ('w0003', 'w0020')"))
    # (the checksum covers id, workflow, input, output, error: status is not part of it)
    rows, _ = listing.list_workflows(store, status="FAILED", workflow="w")
    assert [r.id for r in rows] == ["w0020", "w0003"]
    assert listing.list_workflows(store, status="FAILED", workflow="other")[0] == []
