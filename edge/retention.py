"""Retention: deleting finished workflows, on request (``edge prune``) or hourly
(``--retention``, kind "retention" of the node's one timer loop).

Invariants:
- every batch is its own short transaction (``PRUNE_BATCH`` workflows), so the write
  lock is never held for long and other writers interleave;
- a finished child of a live parent is kept (store/lifecycle.py ``prune_batch``);
- an automatic tick does a bounded amount of work (``RETENTION_BATCHES_PER_TICK``)
  and re-arms itself soon when there is more, so other timers are not held up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edge.store import lifecycle
from edge.views import iso

if TYPE_CHECKING:
    from edge.runtime import Runtime

log = logging.getLogger("edge.node")

PRUNE_BATCH = 500  # workflows per delete transaction: short write locks
RETENTION_BATCHES_PER_TICK = 20
RETENTION_INTERVAL = 3600.0  # automatic retention runs hourly (and at boot)


class Retention:
    """Prunes the node's finished workflows; ``tick`` is the timer loop's entry."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def prune(self, cutoff: float, batch: int = PRUNE_BATCH) -> int:
        """Delete every workflow that ended before ``cutoff``, ``batch`` per transaction;
        returns how many were deleted."""
        total = 0
        while True:
            n = lifecycle.prune_batch(self.rt.store, cutoff, batch)
            total += n
            if n < batch:
                break
        if total:
            log.info("pruned %d workflows finished before %s", total, iso(cutoff))
        return total

    def tick(self, now: float) -> None:
        """Automatic retention (``Settings.retention``): a bounded amount of work."""
        keep = self.rt.settings.retention
        if keep is None:
            return
        more = False
        for _ in range(RETENTION_BATCHES_PER_TICK):
            if lifecycle.prune_batch(self.rt.store, now - keep, PRUNE_BATCH) < PRUNE_BATCH:
                break
        else:
            more = True
        self.rt.timers.add(now + (1.0 if more else RETENTION_INTERVAL), "retention",
                           "retention")
