"""Running workflows: claim -> run -> checkpoint, and the worker pool (the timer loop
is edge/timers.py).

Invariants:
- a run starts only after a compare-and-set claim (PENDING -> RUNNING under a
  fresh run token); every later write of the run is fenced by that token;
- a workflow whose code is not registered in this process is never failed:
  it stays PENDING with ``blocked_on`` saying why, and resumes when a node
  with the code boots (DBOS strands such runs; we keep them);
- workers hold no thread for a parked workflow;
- a failed write (``WriteFailed``) never strands a run: the claim, the run or the
  finish that hit it is handed to ``rt.writes`` (write_recovery.py), which
  re-runs it from its last checkpoint once writes succeed;
- a fresh local start may run on the thread that waits for it (``run_here``) instead
  of a worker's: the same ``execute``, so the same claim, fencing and checkpoints; it
  counts as busy, and ``stop`` waits for it as for a worker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from edge.engine import (
    DeadlineExceeded,
    Drain,
    RunContext,
    Suspend,
    WorkflowDef,
    WriteStalled,
    set_current_run,
)
from edge.errors import Cancelled, DataError, EdgeError, NotReady, WriteFailed
from edge.run_context import HandBack, _error_dict, current_run
from edge.serialization import decode, encode
from edge.store import StaleRun, Store, WorkflowRow, recovery

if TYPE_CHECKING:
    from edge.runtime import Runtime

log = logging.getLogger("edge.worker")


def block_damaged(store: Store, wid: str, token: str, now: float, exc: DataError) -> None:
    """Give a run that met damage back (PENDING, ``blocked_on: corrupt: ...``)."""
    try:
        recovery.release(store, wid, token, now)
        store.set_blocked(wid, f"corrupt: {exc.message}")
    except EdgeError as again:  # the damage may sit under the workflow's own row
        log.error("workflow %s: could not record that it is blocked: %s", wid, again.message)

FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
CANCELLED_ERROR = {"type": "Cancelled", "message": "cancelled by request"}


def execute(rt: Runtime, wid: str, fresh: WorkflowRow | None = None, *,
            until: float | None = None) -> None:
    """Run workflow ``wid`` from the top (replaying what is recorded) until it
    finishes, parks, drains or is cancelled.

    ``fresh`` is the row a local start just inserted. Its first successful claim is
    necessarily its first run (a submission for an id already queued is dropped, so
    the fresh entry is the only one), so it has no operations to load and no row to
    read back: the claim's compare-and-set still decides whether it runs.

    ``until`` (monotonic): a caller running this on its own thread (``Workers.run_here``)
    stops waiting then; at its next durable operation past it the run is handed back."""
    store, clock = rt.store, rt.clock
    wf = fresh if fresh is not None else store.get_workflow(wid)
    if wf is None or wf.status != "PENDING":
        return
    if wf.queue is not None and wf.admitted_at is None:
        # Woken after it gave its queue slot back at a park: it waits for a slot again,
        # in its queue's order (the dispatcher admits it, and submits it when it may run).
        rt.queues.kick(wf.queue)
        return
    wd = rt.app.workflows.get(wf.workflow)
    if wd is None:
        try:
            rt.block_unknown(wf)
        except WriteFailed:
            pass  # informational only: it stays PENDING either way
        return
    token = os.urandom(8).hex()
    try:
        claimed = store.claim(wid, token, clock.time())
    except WriteFailed as exc:
        rt.writes.strand_run(wid, None, exc)  # still PENDING: hand it back later
        return
    if not claimed:
        return  # someone else (a cancel, another worker) changed it first
    if wf.deadline is not None:
        rt.timers.learn_deadline(wid, wf.deadline)  # if not known since its start
    try:
        ops = {} if fresh is not None else {op.seq: op for op in store.load_ops(wid)}
    except DataError as exc:
        log.error("workflow %s cannot run: %s", wid, exc.message, extra={"workflow_id": wid})
        block_damaged(store, wid, token, clock.time(), exc)
        return
    run_claimed(rt, RunContext(rt, wf, token, ops), wd, until=until)


def run_claimed(rt: Runtime, run: RunContext, wd: WorkflowDef, *,
                until: float | None = None) -> None:
    """Run a claimed run (its row, its token, its recorded operations loaded) until it
    finishes, parks, drains or is cancelled: ``execute`` after its claim, and the boot's
    bulk resume (edge/resume.py), which claims and loads many runs at once."""
    if wd.is_async:
        rt.aio.submit(run, wd)  # the event loop runs and finishes it; this thread is free
        return
    store, clock, wf, wid, token = rt.store, rt.clock, run.wf, run.wf.id, run.token
    run.handoff_at = until
    status, output, error = "FAILED", None, None
    outcome, failure = "", None  # for the run's trace span: how this run ended
    span = rt.tracing.begin_run(wd.name, wid, wf.input)
    set_current_run(run)
    try:
        if wf.cancel_requested:
            raise Cancelled()
        args = decode(wf.input)
        result = wd.fn(*args.get("args", []), **args.get("kwargs", {}))
        if run.fatal is not None:
            raise run.fatal
        output = encode(result, f"output of workflow {wd.name}", rt.settings.max_value_bytes)
        status = "SUCCEEDED"
    except Suspend:
        outcome = "parked"
        if wf.queue is not None:
            rt.queues.parked(wf.queue)  # its slot may go to the next in line
        return
    except HandBack:
        outcome = "handed back"
        try:
            # CAS on our token: a cancel or a drain that got there first keeps its outcome.
            if recovery.release(store, wid, token, clock.time()):
                rt.workers.submit(wid)  # a worker replays it from its checkpoints
        except WriteFailed as exc:
            rt.writes.strand_run(wid, token, exc)  # still ours: recovery hands it back
        return
    except Drain:
        outcome = "drained"
        try:
            recovery.release(store, wid, token, clock.time())
        except WriteFailed:
            pass  # still RUNNING in the file: the next boot's recovery resumes it
        return
    except WriteStalled as exc:
        outcome = "stalled"
        rt.writes.strand_run(wid, token, exc.error)
        return
    except StaleRun:
        outcome = "stale"
        return  # cancelled or resumed under us: the newer state wins
    except DataError as exc:
        # Damage met by a durable operation is the file's fault, not the workflow's:
        # never recorded as its outcome. It waits, PENDING, for a repaired file.
        log.error("workflow %s cannot run: %s", wid, exc.message)
        block_damaged(store, wid, token, clock.time(), exc)
        return
    except DeadlineExceeded:
        status, error = "CANCELLED", {"type": "TimeoutError",
                                      "message": f"workflow {wid} ran past its deadline"}
    except Cancelled:
        status, error = "CANCELLED", CANCELLED_ERROR
    except WriteFailed as exc:
        # A write outside RunContext.call (none is meant to be): never fail the workflow
        # for the disk's fault.
        outcome = "stalled"
        rt.writes.strand_run(wid, token, exc)
        return
    except Exception as exc:
        fatal = run.fatal if run.fatal is not None else exc
        status, error, failure = "FAILED", _error_dict(fatal), fatal
        if isinstance(fatal, EdgeError):
            log.error("workflow %s failed: %s", wid, fatal.message, extra={"workflow_id": wid})
    finally:
        set_current_run(None)
        rt.tracing.end_run(span, outcome or status, failure)
    error_text = None if error is None else encode(error, "workflow error")
    try:
        # The status written: CANCELLED if a cancel landed while the run computed its outcome.
        status = store.finish(run.wf, token, status, output, error_text, clock.time())
    except StaleRun:
        return
    except WriteFailed as exc:
        # Never acknowledged: re-running from the last checkpoint reaches it again.
        rt.writes.strand_run(wid, token, exc)
        return
    except DataError as exc:
        # The finish closes the run's open operations: damage among them is the file's
        # fault; the run waits, PENDING, for a repaired file (nothing was written).
        log.error("workflow %s cannot finish: %s", wid, exc.message, extra={"workflow_id": wid})
        block_damaged(store, wid, token, clock.time(), exc)
        return
    rt.on_finished(wd.name, wid, status, run.wf.parent_id, run.wf.queue)


class Workers:
    """A fixed pool of threads taking workflow ids from one ready queue."""

    def __init__(self, rt: Runtime, count: int) -> None:
        self._rt = rt
        self._count = count
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._fresh: dict[str, WorkflowRow] = {}  # rows of just-inserted, never-run workflows
        self._claimed: dict[str, tuple[RunContext, WorkflowDef]] = {}  # runs claimed in bulk
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # workers wait for work on it
        self._idle = threading.Condition(lock)  # wait_idle waits on it (never steals work)
        self._shorter = threading.Condition(lock)  # wait_depth_below waits on it
        self._low_water = 0  # a waiter of _shorter wants the queue below this (0: none)
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.busy = 0
        self._borrowed = 0  # runs on callers' threads (run_here), waited for by stop()

    def start(self) -> None:
        for i in range(self._count):
            t = threading.Thread(target=self._loop, name=f"edge-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, wid: str, fresh: WorkflowRow | None = None) -> None:
        with self._cond:
            if wid in self._queued:
                return
            self._queued.add(wid)
            if fresh is not None:
                self._fresh[wid] = fresh
            self._ready.append(wid)
            self._cond.notify()

    def submit_runs(self, runs: list[tuple[RunContext, WorkflowDef]]) -> bool:
        """Queue runs already claimed and loaded (edge/resume.py). A run replaces a plain
        entry queued for its id (that entry would find it RUNNING and do nothing).
        False, nothing queued, when the pool is stopping: the caller releases them."""
        with self._cond:
            if self._stopping:
                return False
            for run, wd in runs:
                wid = run.wf.id
                self._claimed[wid] = (run, wd)
                if wid not in self._queued:
                    self._queued.add(wid)
                    self._ready.append(wid)
            self._cond.notify(len(runs))
        return True

    def take_claimed(self) -> list[RunContext]:
        """The claimed runs no worker started (after ``stop``): their owner releases them."""
        with self._cond:
            runs = [run for run, _ in self._claimed.values()]
            self._claimed.clear()
            return runs

    def wait_depth_below(self, n: int, timeout: float) -> bool:
        """Block until fewer than ``n`` ids are queued (or the pool stops); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._ready) >= n and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Woken once, when a worker takes the queue below n: not at every run's end.
                self._low_water = n
                self._shorter.wait(left)
        return True

    def run_here(self, wid: str, timeout: float | None = None) -> bool:
        """Run ``wid`` on the calling thread if a local start queued it and no worker has
        taken it yet: a caller that waits for its result then costs no hand-off to a
        worker and back. True if it ran here (finished, parked, stalled or handed back).

        Only a fresh entry is taken (the row its start inserted, never run), and never
        from inside a run (the caller's thread would lose its own run context). The run is
        the one a worker would make (``execute``: the claim's CAS, fencing by run token,
        every checkpoint committed before the next line); with a ``timeout`` it is handed
        back to the workers at its first durable operation past it."""
        if current_run() is not None:
            return False
        rt = self._rt
        with self._cond:
            fresh = self._fresh.get(wid)
            if fresh is None or self._stopping or wid not in self._queued:
                return False
            self._ready.remove(wid)
            self._queued.discard(wid)
            del self._fresh[wid]
            self.busy += 1
            self._borrowed += 1
        until = None if timeout is None else rt.clock.monotonic() + timeout
        try:
            try:
                execute(rt, wid, fresh, until=until)
            except DataError as exc:
                log.error("workflow %s cannot run: %s", wid, exc.message)
            except Exception:
                log.exception("crashed running %s on the caller's thread", wid,
                              extra={"workflow_id": wid})
                # Out of the ready queue already: give the workers their chance (if it
                # is no longer PENDING, their claim's CAS drops it).
                self.submit(wid, fresh)
            if rt.draining.is_set():
                # Still counted as borrowed, so the store is open: after this the node
                # tears down, and the caller must not read a closing store.
                row = rt.store.get_workflow(wid)
                if row is None or row.status not in FINAL:
                    raise NotReady(f"the node stopped before workflow {wid} finished",
                                   "it resumes when the node starts again")
        finally:
            with self._cond:
                self.busy -= 1
                self._borrowed -= 1
                self._idle.notify_all()
        return True

    def hold(self) -> None:
        """Count a run handed to the event loop (edge/aio.py) as busy until ``unhold``:
        ``wait_idle`` then covers async runs too, with no gap at the hand-over (the
        hold is taken before the handing worker's own count drops)."""
        with self._cond:
            self.busy += 1

    def unhold(self) -> None:
        with self._cond:
            self.busy -= 1
            self._idle.notify_all()

    def depth(self) -> int:
        with self._cond:
            return len(self._ready)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (real time); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._ready or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                wid = self._ready.popleft()
                if len(self._ready) < self._low_water:
                    self._low_water = 0
                    self._shorter.notify_all()
                self._queued.discard(wid)
                fresh = self._fresh.pop(wid, None)
                claimed = self._claimed.pop(wid, None)
                self.busy += 1
            try:
                if claimed is not None:
                    run_claimed(self._rt, *claimed)
                else:
                    execute(self._rt, wid, fresh)
            except DataError as exc:
                # Damage met reading the workflow: refused, recorded (store.damage), no
                # traceback; the rest of the node keeps running.
                log.error("workflow %s cannot run: %s", wid, exc.message)
            except Exception:
                log.exception("worker crashed running %s", wid, extra={"workflow_id": wid})
            finally:
                with self._cond:
                    self.busy -= 1
                    # Only idle-waiters care that a run ended; waking every idle worker
                    # here would cost context switches with no work to hand out.
                    self._idle.notify_all()

    def stop(self, grace: float) -> bool:
        """Stop taking work and wait up to ``grace`` s for running steps; True if all ended."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            self._shorter.notify_all()  # wait_depth_below returns: nothing more is taken
        deadline = self._rt.clock.monotonic() + grace
        for t in self._threads:
            t.join(max(0.0, deadline - self._rt.clock.monotonic()))
        left = max(0.0, deadline - self._rt.clock.monotonic())
        until = time.monotonic() + left  # real time, like wait_idle
        with self._cond:
            # Runs on callers' threads drain too (draining is set): wait for them as well,
            # so the store is not closed under a checkpoint in flight.
            while self._borrowed:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
            borrowed = self._borrowed
        return not borrowed and not any(t.is_alive() for t in self._threads)
