"""Running workflows: claim -> run -> checkpoint, a worker pool, and the timer loop.

Invariants:
- a run starts only after a compare-and-set claim (PENDING -> RUNNING under a
  fresh run token); every later write of the run is fenced by that token;
- a workflow whose code is not registered in this process is never failed:
  it stays PENDING with ``blocked_on`` saying why, and resumes when a node
  with the code boots (DBOS strands such runs; we keep them);
- one timer loop serves every sleeper and event timeout; ``Timers.tick(now)``
  is one iteration with time injected, so tests drive it without sleeping;
- workers hold no thread for a parked workflow.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge.clock import Clock
from edge.engine import (
    DeadlineExceeded,
    Drain,
    RunContext,
    Suspend,
    _error_dict,
    set_current_run,
)
from edge.errors import Cancelled, DataError, EdgeError
from edge.serialization import decode, encode
from edge.store import StaleRun, WorkflowRow

if TYPE_CHECKING:
    from edge.node import Node

log = logging.getLogger("edge.worker")

CANCELLED_ERROR = {"type": "Cancelled", "message": "cancelled by request"}


def execute(node: Node, wid: str, fresh: WorkflowRow | None = None) -> None:
    """Run workflow ``wid`` from the top (replaying what is recorded) until it
    finishes, parks, drains or is cancelled.

    ``fresh`` is the row a local start just inserted. Its first successful claim is
    necessarily its first run (a submission for an id already queued is dropped, so
    the fresh entry is the only one), so it has no operations to load and no row to
    read back: the claim's compare-and-set still decides whether it runs."""
    store, clock = node.store, node.clock
    wf = fresh if fresh is not None else store.get_workflow(wid)
    if wf is None or wf.status != "PENDING":
        return
    wd = node.app.workflows.get(wf.workflow)
    if wd is None:
        node.block_unknown(wf)
        return
    token = os.urandom(8).hex()
    if not store.claim(wid, token, clock.time()):
        return  # someone else (a cancel, another worker) changed it first
    try:
        ops = {} if fresh is not None else {op.seq: op for op in store.load_ops(wid)}
    except DataError as exc:
        log.error("workflow %s cannot run: %s", wid, exc.message)
        store.release(wid, token, clock.time())
        store.set_blocked(wid, f"corrupt: {exc.message}")
        return
    run = RunContext(node, wf, token, ops)
    if wd.is_async:
        node.aio.submit(run, wd)  # the event loop runs and finishes it; this thread is free
        return
    status, output, error = "FAILED", None, None
    set_current_run(run)
    try:
        if wf.cancel_requested:
            raise Cancelled()
        args = decode(wf.input)
        result = wd.fn(*args.get("args", []), **args.get("kwargs", {}))
        if run.fatal is not None:
            raise run.fatal
        output = encode(result, f"output of workflow {wd.name}", node.settings.max_value_bytes)
        status = "SUCCEEDED"
    except Suspend:
        return
    except Drain:
        store.release(wid, token, clock.time())
        return
    except StaleRun:
        return  # cancelled or resumed under us: the newer state wins
    except DeadlineExceeded:
        status, error = "CANCELLED", {"type": "TimeoutError",
                                      "message": f"workflow {wid} ran past its deadline"}
    except Cancelled:
        status, error = "CANCELLED", CANCELLED_ERROR
    except Exception as exc:
        fatal = run.fatal if run.fatal is not None else exc
        status, error = "FAILED", _error_dict(fatal)
        if isinstance(fatal, EdgeError):
            log.error("workflow %s failed: %s", wid, fatal.message)
    finally:
        set_current_run(None)
    error_text = None if error is None else encode(error, "workflow error")
    try:
        store.finish(run.wf, token, status, output, error_text, clock.time())
    except StaleRun:
        return
    node.on_finished(wd.name, wid, status, run.wf.parent_id, run.wf.queue)


class Workers:
    """A fixed pool of threads taking workflow ids from one ready queue."""

    def __init__(self, node: Node, count: int) -> None:
        self._node = node
        self._count = count
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._fresh: dict[str, WorkflowRow] = {}  # rows of just-inserted, never-run workflows
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # workers wait for work on it
        self._idle = threading.Condition(lock)  # wait_idle waits on it (never steals work)
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.busy = 0

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
                self._queued.discard(wid)
                fresh = self._fresh.pop(wid, None)
                self.busy += 1
            try:
                execute(self._node, wid, fresh)
            except Exception:
                log.exception("worker crashed running %s", wid)
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
        deadline = self._node.clock.monotonic() + grace
        for t in self._threads:
            t.join(max(0.0, deadline - self._node.clock.monotonic()))
        return not any(t.is_alive() for t in self._threads)


class Timers:
    """Durable wake-ups: one heap, one loop. The database is the truth; the heap is a cache
    rebuilt at boot from every parked workflow's ``wake_at`` (and deadlines, queues,
    schedules).

    Each entry is ``(at, mono_due, kind, key)``: ``at`` is wall-clock time (what the
    database records, the only time that survives a restart), ``mono_due`` the
    monotonic time at which ``at`` was due when the entry was added. An entry fires
    only when both have passed, so within a run a timer never fires early: a wall
    clock stepped forward (NTP, a VM resumed) cannot fire a 30-minute sleep after 1
    minute, and a wall clock stepped backwards delays it (it also waits for wall time
    to reach ``wake_at``, which the store's wake CAS checks too). Across a restart only
    wall time exists: a timer whose ``at`` passed while the node was down fires at boot.
    """

    def __init__(self, clock: Clock, on_due: Callable[[str, str, float], None]) -> None:
        self._clock = clock
        self._on_due = on_due
        self._heap: list[tuple[float, float, str, str]] = []
        self._pending: set[tuple[float, str, str]] = set()  # (at, kind, key): no duplicates
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add(self, at: float, key: str, kind: str = "wake") -> None:
        """Call ``on_due(kind, key, now)`` once wall time reaches ``at`` (and as much
        monotonic time as that was away has elapsed)."""
        mono_due = self._clock.monotonic() + max(0.0, at - self._clock.time())
        with self._cond:
            if (at, kind, key) in self._pending:
                return  # e.g. a deadline re-armed at every park of the same workflow
            self._pending.add((at, kind, key))
            heapq.heappush(self._heap, (at, mono_due, kind, key))
            self._cond.notify()

    def next_due(self) -> float | None:
        with self._cond:
            return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)

    def tick(self, now: float, mono: float | None = None) -> list[tuple[str, str]]:
        """Fire every timer due at wall time ``now`` (and monotonic ``mono``, default the
        clock's); returns the (kind, key) pairs fired."""
        mono = self._clock.monotonic() if mono is None else mono
        due: list[tuple[str, str]] = []
        held: list[tuple[float, float, str, str]] = []
        with self._cond:
            while self._heap and self._heap[0][0] <= now:
                entry = heapq.heappop(self._heap)
                if entry[1] <= mono:
                    due.append((entry[2], entry[3]))
                    self._pending.discard((entry[0], entry[2], entry[3]))
                else:
                    held.append(entry)  # the wall clock jumped ahead: wait for real time
            for entry in held:
                heapq.heappush(self._heap, entry)
        for kind, key in due:
            try:
                self._on_due(kind, key, now)
            except Exception:
                log.exception("timer %s %s failed", kind, key)
        return due

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edge-timers", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                wait = 1.0
                if self._heap:
                    at, mono_due = self._heap[0][:2]
                    wait = min(wait, max(0.0, at - self._clock.time(),
                                         mono_due - self._clock.monotonic()))
                if wait > 0:
                    self._cond.wait(wait)
                if self._stopping:
                    return
            try:
                self.tick(self._clock.time())
            except Exception:
                log.exception("timer loop error")

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)
