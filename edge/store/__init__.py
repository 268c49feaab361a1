"""edge's storage: the only package that speaks SQL (see store.py for the verbs)."""

from edge.store.migrations import LATEST, MIGRATIONS
from edge.store.recovery import Recovery
from edge.store.rows import FINAL_STATUSES, WORKFLOW_STATUSES, EventRow, OpRow, WorkflowRow
from edge.store.sql import CancelPending, StaleRun
from edge.store.store import Store

__all__ = [
    "FINAL_STATUSES", "LATEST", "MIGRATIONS", "WORKFLOW_STATUSES", "EventRow", "OpRow",
    "CancelPending", "Recovery", "StaleRun", "Store", "WorkflowRow",
]
