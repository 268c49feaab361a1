"""One site's health in a few indexed reads: counts by status, recent failures, the
oldest waiting workflow (what the head office's ``edge fleet`` shows per site).

Invariants:
- read-only: every query runs on a pooled read connection of the store, so it
  works on ``Store.inspect`` of a restored copy and never writes a byte;
- bounded: counts use ``workflows_by_status``; the failure count and the oldest
  waiting row are one indexed range each, whatever the size of the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.store.rows import WORKFLOW_STATUSES
from edge.store.store import Store

__all__ = ["SiteSummary", "WaitingRow", "site_summary"]

DAY = 86400.0


@dataclass(frozen=True)
class WaitingRow:
    id: str
    workflow: str
    waiting_for: str | None
    since: float  # when it parked (its last update)


@dataclass(frozen=True)
class SiteSummary:
    counts: dict[str, int]  # every status, zero when absent
    failed_recent: int  # FAILED with their last update inside the window
    window: float  # seconds
    oldest_waiting: WaitingRow | None


def site_summary(store: Store, now: float, window: float = DAY) -> SiteSummary:
    with store.read() as conn:
        rows = conn.execute("SELECT status, count(*) FROM workflows GROUP BY status").fetchall()
        failed = conn.execute(
            "SELECT count(*) FROM workflows WHERE status = 'FAILED' AND updated_at >= ?",
            (now - window,)).fetchone()
        waiting = conn.execute(
            "SELECT id, workflow, waiting_for, updated_at FROM workflows "
            "WHERE status = 'WAITING' ORDER BY updated_at, id LIMIT 1").fetchone()
    counts = {s: 0 for s in WORKFLOW_STATUSES}
    counts.update({str(r[0]): int(r[1]) for r in rows})
    oldest = None
    if waiting is not None:
        oldest = WaitingRow(str(waiting[0]), str(waiting[1]),
                            None if waiting[2] is None else str(waiting[2]), float(waiting[3]))
    return SiteSummary(counts, int(failed[0]), window, oldest)
