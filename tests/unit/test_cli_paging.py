"""`edge list --limit N` past the node's page size pages with the cursor: every page asked
for is at most 1000 rows, rows come back in order, once, and next_cursor continues."""

from __future__ import annotations

from typing import Any

import pytest

from edge.cli.workflows import PAGE, pages

ROWS = [{"id": f"w{i:05d}"} for i in range(2600)]


def fetch_from(rows: list[dict[str, Any]], asked: list[int]):
    def fetch(n: int, cursor: str | None) -> dict[str, Any]:
        assert 1 <= n <= PAGE
        asked.append(n)
        start = 0 if cursor is None else int(cursor) + 1
        chunk = rows[start:start + n]
        more = start + n < len(rows)
        return {"workflows": chunk, "next_cursor": str(start + n - 1) if more else None}
    return fetch


@pytest.mark.parametrize("limit", [1, 999, 1000, 1001, 2500, 2600, 5000])
def test_pages_return_limit_rows_in_order(limit: int) -> None:
    asked: list[int] = []
    page = pages(fetch_from(ROWS, asked), limit, None)
    want = ROWS[:limit]
    assert page["workflows"] == want
    assert (page["next_cursor"] is None) == (limit >= len(ROWS))
    if page["next_cursor"] is not None:
        rest = pages(fetch_from(ROWS, []), 10_000, page["next_cursor"])
        assert page["workflows"] + rest["workflows"] == ROWS
    assert all(n <= PAGE for n in asked)
