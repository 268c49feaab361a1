"""Listing workflows: the filters the API, the CLI and the dashboard offer, as one SQL
query per page, newest first, and the status counts.

Invariants:
- every filter is served by an index (``list_plan`` shows SQLite's plan; the growth
  benchmark prints each one, and tests/unit/test_list_indexes.py keeps them);
- a page's cursor is opaque to clients (base64 of the last row's created_at and id)
  and continues strictly after that row: no row is listed twice across pages, none
  skipped, whatever is inserted meanwhile;
- a cursor is checked before it is used: padded base64url text (``CURSOR_PATTERN``) of
  at most ``MAX_CURSOR`` characters (the HTTP spec publishes both) that decodes to a
  finite created_at and a non-empty id; anything else is one UsageError, never a page;
- every listed row is verified (``WorkflowRow.from_db``), and an id listed twice in
  one page is damage (``CorruptDatabase``), never shown.
"""

from __future__ import annotations

import base64
import math
import re

from edge.errors import CorruptDatabase, UsageError
from edge.limits import MAX_NAME
from edge.store.rows import DAMAGED_HINT, WORKFLOW_COLUMNS, WorkflowRow
from edge.store.sql import tags_of
from edge.store.store import Store


def list_workflows(
    store: Store, *, status: str | None = None, workflow: str | None = None, limit: int = 50,
    cursor: str | None = None, parent_id: str | None = None, queue: str | None = None,
    tags: dict[str, str] | None = None, since: float | None = None,
    until: float | None = None, id_prefix: str | None = None,
) -> tuple[list[WorkflowRow], str | None]:
    """Newest first; ``cursor`` continues after the last row of the previous page.
    ``tags``: every key=value must match; ``since``/``until``: created in [since, until);
    ``id_prefix``: ids that start with it."""
    sql, params = _list_sql(status, workflow, cursor, parent_id, queue, tags, since,
                                 until, id_prefix)
    with store.read() as conn:
        rows = conn.execute(sql, (*params, limit + 1)).fetchall()
    result = [WorkflowRow.from_db(r) for r in rows[:limit]]
    if len({r.id for r in result}) != len(result):
        raise CorruptDatabase(f"{store.path}: a workflow id is listed twice", DAMAGED_HINT)
    last = result[-1] if len(rows) > limit and result else None
    nxt = encode_cursor(last.created_at, last.id) if last is not None else None
    return result, nxt

def list_plan(store: Store, **filters: object) -> list[str]:
    """SQLite's query plan for ``list_workflows(**filters)`` (benchmarks, index tests)."""
    sql, params = _list_sql(**filters)  # type: ignore[arg-type]
    with store.read() as conn:
        return [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, (*params, 1))]

def _list_sql(status: str | None = None, workflow: str | None = None,
              cursor: str | None = None, parent_id: str | None = None,
              queue: str | None = None, tags: dict[str, str] | None = None,
              since: float | None = None, until: float | None = None,
              id_prefix: str | None = None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []

    def where(clause: str, *values: object) -> None:
        clauses.append(clause)
        params.extend(values)

    for key, value in (tags or {}).items():
        where("id IN (SELECT workflow_id FROM workflow_tags WHERE key = ? AND value = ?)",
              key, value)
    if since is not None:
        where("created_at >= ?", since)
    if until is not None:
        where("created_at < ?", until)
    if id_prefix:
        # A range on the primary key (GLOB would treat * ? [ in ids as patterns).
        where("id >= ? AND id < ?", id_prefix, id_prefix + "\U0010ffff")
    for column, equal in (("status", status), ("workflow", workflow),
                          ("parent_id", parent_id), ("queue", queue)):
        if equal:  # the column names are this fixed list, never input
            where(f"{column} = ?", equal)
    if cursor:
        created, after_id = decode_cursor(cursor)
        # The leading "created_at <= ?" is a range the created_at indexes can seek to;
        # the OR alone is not, and a deep page would walk every newer row first.
        where("created_at <= ? AND (created_at < ? OR (created_at = ? AND id < ?))",
              created, created, created, after_id)
    sql_where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return (f"SELECT {WORKFLOW_COLUMNS} FROM workflows {sql_where} "
            "ORDER BY created_at DESC, id DESC LIMIT ?", params)

def tags_for(store: Store, ids: list[str]) -> dict[str, dict[str, str]]:
    """Each listed workflow's tags (absent: none)."""
    if not ids:
        return {}
    with store.read() as conn:
        return tags_of(conn, ids)

def counts(store: Store) -> dict[str, int]:
    with store.read() as conn:
        rows = conn.execute("SELECT status, count(*) FROM workflows GROUP BY status").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


# What encode_cursor writes: padded base64url. The bound fits the longest float repr
# (24 characters), the separator and an id of MAX_NAME characters of 4 UTF-8 bytes each.
CURSOR_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$"
MAX_CURSOR = 4 * ((24 + 1 + 4 * MAX_NAME + 2) // 3)
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(created_at: float, wid: str) -> str:
    """The cursor of the page that continues after the row (created_at, wid)."""
    return base64.urlsafe_b64encode(f"{created_at!r}|{wid}".encode()).decode()


def check_cursor(cursor: str) -> str:
    """``cursor`` if its form is one encode_cursor can write; else a UsageError."""
    # fullmatch, not search: "$" also matches before a trailing newline.
    if len(cursor) > MAX_CURSOR or _CURSOR.fullmatch(cursor) is None:
        raise _bad_cursor(cursor)
    return cursor


def decode_cursor(cursor: str) -> tuple[float, str]:
    check_cursor(cursor)
    try:
        created, sep, after = base64.urlsafe_b64decode(cursor).decode().partition("|")
        value = float(created)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad_cursor(cursor) from exc
    if not sep or not after or not math.isfinite(value):
        raise _bad_cursor(cursor)
    return value, after


def _bad_cursor(cursor: str) -> UsageError:
    shown = cursor if len(cursor) <= 60 else cursor[:60] + "..."
    return UsageError(f"invalid cursor {shown!r}", "pass next_cursor from a previous page")
