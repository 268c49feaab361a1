"""Boot recovery: claim in bulk, load in one pass, hand ready runs to the executors.

At boot ``store.recovery.recover`` lists every resumable workflow. Claiming and loading them one
by one on the worker threads costs each a read, a claim commit and a read before its
code runs; here, on one thread started once the workers are, a chunk of
``bulk.CLAIM_BATCH`` ids at a time is read in one pass, claimed in one transaction and
its operations loaded in one pass, and each claimed run is handed to the executor of
its code (``Workers.submit_runs`` for sync code, the event loop for async code), which
runs it from its first line exactly as ``worker.execute`` does after a claim.

Invariants:
- what the bulk path does not own goes to the per-id path (``Workers.submit`` ->
  ``worker.execute``), which decides as it always did: an id whose row is damaged,
  gone or no longer PENDING, an unknown workflow name (``block_unknown``: it is never
  claimed, it stays PENDING with ``blocked_on``), a queued one not admitted, one a
  cancel or a worker changed first: each is an id the claim's compare-and-set (or
  its checksum trigger) refused;
- a claim is ``Store.claim``'s CAS under a fresh token per run; every later write of
  the run is fenced by that token, as for a run claimed by a worker;
- a ``WriteFailed`` in a chunk's claim means none of it committed: the chunk goes to
  the per-id path (which claims, or strands the run in write recovery);
- a run whose operations are damaged is released and blocked ``corrupt: ...``
  exactly as ``execute`` does on a ``DataError``; the others of its chunk run;
- a claimed run always has an owner: an executor, ``block_damaged``, or, when anything
  fails between the claim and the hand-over (a read error, a bug), ``release_many``
  gives it back PENDING and the per-id path resumes every id not yet resumed;
- a cancel is honoured: a request committed before the claim is in the claimed row
  (read back in the claim's transaction), one after it reaches the run through the
  in-memory flags and the fenced writes, as for any running workflow;
- the next chunk is claimed only once the workers' queue is shorter than ``AHEAD``
  chunks, so at most ``AHEAD + 1`` chunks of sync runs wait claimed in memory (async
  runs are not paced: each is a task on the loop at once, as the per-id path made
  them at the pace of the claims); a stop ends the
  claiming and releases the claimed runs no worker started (``release``); a crash
  meanwhile is harmless: they are RUNNING in the file and the next boot's
  ``recover`` resets them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edge.engine import RunContext, WorkflowDef
from edge.errors import DataError, EdgeError, WriteFailed
from edge.store import OpRow, WorkflowRow, bulk
from edge.worker import block_damaged

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.worker import Workers

log = logging.getLogger("edge.resume")

PACE_WAIT = 1.0  # s between re-checks of a stop while the workers' queue is long
# Chunks kept queued for the workers while the next is claimed: with one, the queue
# can run dry during a claim (measured end to end: 5.3 s against 4.2 s to resume
# 10,000 under load; benchmarks/RESULTS.md).
AHEAD = 2


class Resumer:
    """The boot's bulk resume of ``pending`` (see the module docstring)."""

    def __init__(self, rt: Runtime, workers: Workers) -> None:
        self._rt = rt
        self._workers = workers
        self._thread: threading.Thread | None = None
        self.claimed = 0  # runs claimed in bulk (for the boot's log line and the tests)
        self.per_id = 0  # ids handed to the per-id path

    def start(self, pending: Sequence[str]) -> None:
        """Resume ``pending`` on the resume thread (started once: at boot)."""
        if not pending:
            return
        # Busy until the last chunk is handed over: Workers.wait_idle (TestNode) covers
        # the ids not queued yet, as when recovery queued them all before ready.
        self._workers.hold()
        self._thread = threading.Thread(target=self._main, args=(list(pending),),
                                        name="edge-resume", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the resume thread to end; True if it did."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    def release(self) -> None:
        """After the workers stopped: give back, PENDING, the claimed runs none started."""
        runs = self._workers.take_claimed()
        if not runs:
            return
        try:
            bulk.release_many(self._rt.store, [(r.wf.id, r.token) for r in runs],
                              self._rt.clock.time())
        except EdgeError as exc:  # RUNNING in the file: the next boot's recover resets them
            log.warning("could not release %d claimed runs at stop: %s", len(runs),
                        exc.message)

    def _main(self, pending: list[str]) -> None:
        try:
            self._resume(pending)
        finally:
            self._workers.unhold()

    def _resume(self, pending: list[str]) -> None:
        start = 0
        try:
            for start in range(0, len(pending), bulk.CLAIM_BATCH):
                if not self._pace():
                    return  # stopping: the rest stays PENDING for the next boot
                self._chunk(pending[start:start + bulk.CLAIM_BATCH])
        except Exception:  # never leave ids unresumed for a bug here: the per-id path runs
            log.exception("bulk resume failed; resuming the rest one by one")
            self._per_id(pending[start:])
        log.info("resumed %d workflows in bulk, %d one by one", self.claimed, self.per_id)

    def _pace(self) -> bool:
        """Wait until the workers' queue is shorter than a chunk; False when stopping."""
        draining = self._rt.draining
        while not draining.is_set():
            if self._workers.wait_depth_below(AHEAD * bulk.CLAIM_BATCH, PACE_WAIT):
                return not draining.is_set()
        return False

    def _per_id(self, ids: Sequence[str]) -> None:
        for wid in ids:
            self._workers.submit(wid)
        self.per_id += len(ids)

    def _chunk(self, ids: list[str]) -> None:
        rt = self._rt
        store = rt.store
        # Only a registered PENDING workflow is claimed here (the claim's CAS): an unknown
        # name is never claimed (execute blocks it), and a damaged or changed row is
        # execute's to judge (the claim's checksum trigger refuses a damaged one alone).
        mine = list(dict.fromkeys(ids))
        tokens = [os.urandom(8).hex() for _ in mine]
        try:
            claimed = bulk.claim_many(store, mine, tokens, rt.clock.time(),
                                      workflows=rt.app.workflows)
        except WriteFailed:
            self._per_id(mine)  # nothing of the chunk committed: each claims (or strands)
            return
        except DataError:
            # Claimed, but a row handed back fails its domain check: give every run of
            # the chunk back and let execute refuse the damaged one (and run the others)
            # one by one.
            bulk.release_many(store, list(zip(mine, tokens, strict=True)), rt.clock.time())
            self._per_id(mine)
            return
        by_token = dict(zip(mine, tokens, strict=True))
        handed: set[str] = set()  # runs some executor (or block_damaged) now owns
        try:
            self._hand_over(claimed, by_token, handed)
        finally:
            # Never leave a claimed run without an owner until the next boot: what was
            # not handed over (the pool is stopping, or a read failed: then the caller
            # resumes the rest one by one) is given back, PENDING.
            left = [(w, by_token[w]) for w in claimed if w not in handed]
            if left:
                try:
                    bulk.release_many(store, left, rt.clock.time())
                except EdgeError as exc:
                    log.error("could not release %d claimed runs: %s", len(left),
                              exc.message)
        self.claimed += len(claimed)
        # Not claimed (not PENDING, not admitted, an unknown name, a damaged row): execute
        # decides, as it always did.
        self._per_id([wid for wid in mine if wid not in claimed])

    def _hand_over(self, claimed: dict[str, WorkflowRow], by_token: dict[str, str],
                   handed: set[str]) -> None:
        rt = self._rt
        store = rt.store
        ops, bad = bulk.load_ops_many(store, list(claimed))
        sync: list[tuple[RunContext, WorkflowDef]] = []
        for wid, wf in claimed.items():
            token = by_token[wid]
            if wid in bad:
                exc = bad[wid]
                log.error("workflow %s cannot run: %s", wid, exc.message,
                          extra={"workflow_id": wid})
                handed.add(wid)
                block_damaged(store, wid, token, rt.clock.time(), exc)
                continue
            run = self._ready_run(wf, token, ops[wid])
            wd = rt.app.workflows[wf.workflow]
            if wd.is_async:
                handed.add(wid)
                rt.aio.submit(run, wd)  # the event loop runs it; it releases if stopping
            else:
                sync.append((run, wd))
        if sync and not self._workers.submit_runs(sync):
            return  # the pool is stopping: the caller gives them back for the next boot
        handed.update(run.wf.id for run, _ in sync)

    def _ready_run(self, wf: WorkflowRow, token: str, ops: list[OpRow]) -> RunContext:
        if wf.deadline is not None:
            self._rt.timers.learn_deadline(wf.id, wf.deadline)  # as execute does
        return RunContext(self._rt, wf, token, {op.seq: op for op in ops})
