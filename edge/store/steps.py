"""A workflow's step timeline read a page at a time (the API's ``steps_after`` /
``steps_limit``), and one step by its seq (the full value behind a truncated listing).

Invariants:
- a page is the steps with seq > ``after``, by rising seq, at most ``limit`` of them, in
  one read transaction with their failed attempts; its cursor is the last seq listed, or
  None when no step follows: walking the cursors lists every step committed before the
  walk exactly once;
- every row is verified (``OpRow.from_db``) and seqs must rise strictly past ``after``:
  anything else is damage (``ChecksumMismatch``), never a page. The whole-timeline read
  (``Store.load_ops``) keeps its extra checks of the keys beside the range.
"""

from __future__ import annotations

from edge.store.attempts import Attempts, load_rows
from edge.store.rows import OP_COLUMNS, OpRow, damaged
from edge.store.store import Store


def page(store: Store, id: str, after: int, limit: int
         ) -> tuple[list[OpRow], Attempts, int | None]:
    """Up to ``limit`` steps of ``id`` after seq ``after``, their failed attempts by seq,
    and the cursor of the next page (None at the end)."""
    with store.read() as conn:
        rows = conn.execute(f"SELECT {OP_COLUMNS} FROM operations WHERE workflow_id = ? "
                            "AND seq > ? ORDER BY seq LIMIT ?", (id, after, limit + 1)).fetchall()
        ops = [OpRow.from_db(r) for r in rows[:limit]]
        prev = after
        for op in ops:
            if op.workflow_id != id or op.seq <= prev:
                raise damaged(f"the checkpoints of workflow {id!r} (seq {op.seq} after "
                              f"{prev}: keys out of order)")
            prev = op.seq
        hi = ops[-1].seq if ops else after
        tries = load_rows(conn, id, after, hi) if ops else {}
    return ops, tries, (hi if len(rows) > limit else None)


def one(store: Store, id: str, seq: int) -> tuple[OpRow | None, Attempts]:
    """Step ``seq`` of ``id`` (None if absent) and its failed attempts."""
    with store.read() as conn:
        row = conn.execute(f"SELECT {OP_COLUMNS} FROM operations WHERE workflow_id = ? "
                           "AND seq = ?", (id, seq)).fetchone()
        if row is None:
            return None, {}
        return OpRow.from_db(row), load_rows(conn, id, seq - 1, seq)
