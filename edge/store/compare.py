"""Compare a restored copy of the database with the live one: what the copy holds as
final must still be in the local file, unchanged (the restore drill's last check,
edge/replication/drill.py).

What legitimately differs, and is therefore not reported:
- anything non-final in the copy (the node went on after the replica's TXID);
- a workflow absent locally, with its checkpoints: retention prunes finished
  workflows (store.lifecycle.prune_batch), and nothing else deletes a workflow row;
- a FAILED or CANCELLED workflow, and a FAILED checkpoint, whose local workflow row
  was updated after the copy's (``updated_at`` moved forward): resume deletes the last
  failing checkpoint and runs the workflow again (store.lifecycle.resume). A FAILED
  checkpoint of a workflow that kept running (a failure it caught) is skipped the same
  way once the workflow moved on: a weaker check, never a false alarm.

What must be identical: every SUCCEEDED workflow (name, status, input, output, error)
and every SUCCEEDED checkpoint (kind, name, status, output, error) the copy holds,
and every final row not covered by the exceptions above. A SUCCEEDED row never
changes in edge: a difference is damage (or a replica of another database).

Invariants: reads only. The copy is attached to one of the store's read connections
by path for the duration of one read transaction (both files seen in one snapshot)
and detached before the connection goes back to the pool.
"""

from __future__ import annotations

from pathlib import Path

from edge.store.store import Store

_WORKFLOWS = """
SELECT c.id, c.status FROM drill_copy.workflows c
JOIN main.workflows l ON l.id = c.id
WHERE c.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
  AND (l.workflow, l.status, l.input, l.output, l.error)
      IS NOT (c.workflow, c.status, c.input, c.output, c.error)
  AND NOT (c.status <> 'SUCCEEDED' AND l.updated_at > c.updated_at)
LIMIT ?"""

_OPERATIONS = """
SELECT c.workflow_id, c.seq, l.workflow_id IS NULL FROM drill_copy.operations c
JOIN main.workflows lw ON lw.id = c.workflow_id
JOIN drill_copy.workflows cw ON cw.id = c.workflow_id
LEFT JOIN main.operations l ON l.workflow_id = c.workflow_id AND l.seq = c.seq
WHERE c.status IN ('SUCCEEDED', 'FAILED')
  AND (l.workflow_id IS NULL
       OR (l.kind, l.name, l.status, l.output, l.error)
          IS NOT (c.kind, c.name, c.status, c.output, c.error))
  AND NOT (c.status = 'FAILED' AND lw.updated_at > cw.updated_at)
LIMIT ?"""


def divergence(local: Store, copy: Path, limit: int = 3) -> list[str]:
    """Final rows of ``copy`` that the local database lacks or holds differently
    (at most ``limit`` of each table), described one per string; [] when none."""
    out: list[str] = []
    with local.read() as conn:
        conn.execute("ATTACH DATABASE ? AS drill_copy", (str(copy),))
        try:
            conn.execute("BEGIN")  # one snapshot of the live file for both queries
            try:
                for wid, status in conn.execute(_WORKFLOWS, (limit,)):
                    out.append(f"workflow {wid!r} ({status} in the replica) differs locally")
                for wid, seq, gone in conn.execute(_OPERATIONS, (limit,)):
                    how = "is missing" if gone else "differs"
                    out.append(f"checkpoint {seq} of workflow {wid!r} {how} locally")
            finally:
                conn.execute("COMMIT")
        finally:
            conn.execute("DETACH DATABASE drill_copy")
    return out
