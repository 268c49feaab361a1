"""A full check of every checksummed row of a file: after a restore (replicator.py),
in the boot check's benchmark and the corruption tests (the node's own reads verify
only the rows they touch).

Invariants:
- reads only, in one snapshot: it never repairs, so it can run on a live node;
- covers every table with checksums (workflows, operations, events, published values,
  tags, attempt history) and each workflow's checkpoints as a rising sequence; the
  first damaged row raises (``ChecksumMismatch`` / ``CorruptDatabase``), naming it.
"""

from __future__ import annotations

from edge.store.rows import (
    EVENT_COLUMNS,
    OP_COLUMNS,
    PUBLISHED_COLUMNS,
    WORKFLOW_COLUMNS,
    EventRow,
    OpRow,
    WorkflowRow,
    checksum,
    damaged,
    published_digest,
)
from edge.store.store import Store


def verify_checksums(store: Store) -> int:
    """Read every row of every table with checksums (workflows, operations, events,
    published values, tags, attempt history) and check it, and each workflow's
    checkpoints as a rising sequence; returns the number of rows checked."""
    n = 0
    with store.read() as conn:
        for r in conn.execute(f"SELECT {WORKFLOW_COLUMNS} FROM workflows"):
            WorkflowRow.from_db(r)
            n += 1
        last: tuple[str, int] = ("", 0)
        for r in conn.execute(f"SELECT {OP_COLUMNS} FROM operations "
                              "ORDER BY workflow_id, seq"):
            op = OpRow.from_db(r)
            # Rising strictly within a workflow (holes are legitimate: see ops_of).
            if (op.workflow_id, op.seq) <= last:
                raise damaged(f"the checkpoints of workflow {op.workflow_id!r} (seq "
                              f"{op.seq} after {last}: keys out of order)")
            last = (op.workflow_id, op.seq)
            n += 1
        # Tags and attempt history carry checksums of their own (migration 3).
        for wid, key, value, digest in conn.execute(
                "SELECT workflow_id, key, value, checksum FROM workflow_tags"):
            if checksum(wid, key, value) != digest:
                raise damaged(f"tag {key!r} of workflow {wid!r}")
            n += 1
        for *row, digest in conn.execute(
                "SELECT workflow_id, seq, attempt, error, finished_at, retry_at, checksum "
                "FROM step_attempts"):
            if checksum(*row) != digest:
                raise damaged(f"attempt {row[2]} of workflow {row[0]!r} seq {row[1]}")
            n += 1
        for r in conn.execute(f"SELECT {EVENT_COLUMNS} FROM events"):
            EventRow.from_db(r)
            n += 1
        for r in conn.execute(f"SELECT {PUBLISHED_COLUMNS} FROM published"):
            if published_digest(*r[:5]) != r[5]:
                raise damaged(f"published value {r[1]!r} of workflow {r[0]!r}")
            n += 1
    return n

