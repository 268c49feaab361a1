"""Work stranded by a failed write (disk full, I/O error), retried until writes succeed.

A write the disk refused acknowledged nothing (``Store.write`` raised ``WriteFailed``
before returning), so the work it belonged to can always be redone from the database.

Invariants:
- a run whose write failed (claim, a checkpoint, a park, its finish) is never left
  stranded: it keeps its claim (RUNNING under its token) until a retry releases it
  (``store.recovery.release``, a CAS on that token) and hands it to the workers again, which
  re-run it from its last checkpoint; a workflow whose claim failed is simply handed
  back (it is still PENDING);
- a timer whose write failed (a wake-up, a deadline, a queue admission, a cron tick,
  retention) is fired again;
- retries run on the timer loop with exponential back-off (``MIN_DELAY`` doubling to
  ``MAX_DELAY``; a run that re-fails right after its retry backs off further), reset
  after ``QUIET`` seconds without a failure; while the store's last
  write failed and nothing is stranded, a probe write tests the disk, so the node
  becomes ready again on its own once space is back (no restart).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from edge.errors import WriteFailed
from edge.store import recovery

if TYPE_CHECKING:
    from edge.runtime import Runtime

log = logging.getLogger("edge.writes")

MIN_DELAY = 0.05
MAX_DELAY = 2.0
QUIET = 10.0
TIMER_KEY = "writes"


class WriteRecovery:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._lock = threading.Lock()
        self._runs: dict[str, str | None] = {}  # workflow id -> run token it still holds
        self._timers: set[tuple[str, str]] = set()  # (kind, key) to fire again
        self._delay = MIN_DELAY
        self._armed = False
        self._last_failure: float | None = None
        self._failing = False
        self._logged: float | None = None

    def on_write_error(self, err: WriteFailed | None) -> None:
        """The store's hook: ``err`` for every refused write, None once when writes
        succeed again. Counts, reports each transition, keeps a retry round armed."""
        rt = self._rt
        if err is None:
            if self._failing:
                self._failing = False
                rt.metrics.ready.set(1 if rt.ready else 0)
                log.debug("writes succeed again in %s", rt.settings.data_dir)
            return
        rt.metrics.write_error(err.code)
        if not self._failing:
            self._failing = True
            rt.metrics.ready.set(0)
            # Retries flap the state while the disk stays full: one line per QUIET s.
            mono = rt.clock.monotonic()
            if self._logged is None or mono - self._logged > QUIET:
                self._logged = mono
                log.error("writes fail: %s (%s)", err.message, err.hint)
        self.arm()

    def pending(self) -> int:
        with self._lock:
            return len(self._runs) + len(self._timers)

    def strand_run(self, wid: str, token: str | None, err: WriteFailed) -> None:
        """A run of ``wid`` stopped on a failed write; ``token``: the claim it still holds."""
        # Debug only: the node logs one error line per failing period (on_write_error).
        log.debug("workflow %s held: %s; it re-runs from its last checkpoint once "
                  "writes succeed", wid, err.message)
        with self._lock:
            if token is not None or wid not in self._runs:
                self._runs[wid] = token
        self.arm()

    def strand_timer(self, kind: str, key: str, err: WriteFailed) -> None:
        log.debug("timer %s %s deferred: %s", kind, key, err.message)
        with self._lock:
            self._timers.add((kind, key))
        self.arm()

    def arm(self) -> None:
        """Schedule the next retry round (once: later calls wait for that round)."""
        mono = self._rt.clock.monotonic()
        with self._lock:
            if self._last_failure is None or mono - self._last_failure > QUIET:
                self._delay = MIN_DELAY
            self._last_failure = mono
            if self._armed:
                return
            self._armed = True
            delay = self._delay
        rt = self._rt
        rt.timers.add(rt.clock.time() + delay, TIMER_KEY, TIMER_KEY)

    def retry(self, now: float) -> None:
        """One round: release and re-submit stranded runs, re-fire timers, probe the disk."""
        rt = self._rt
        with self._lock:
            self._armed = False
            runs, self._runs = self._runs, {}
            timers, self._timers = self._timers, set()
        left: dict[str, str | None] = dict(runs)
        left_timers = set(timers)
        try:
            for wid, token in runs.items():
                # CAS on the token it still holds: a newer state (resumed, recovered) wins.
                if token is None or recovery.release(rt.store, wid, token, now):
                    rt.workers.submit(wid)
                del left[wid]
            for kind, key in timers:
                left_timers.discard((kind, key))
                rt.fire_timer(kind, key, now)  # re-strands itself if it fails again
            if not runs and not timers and rt.store.write_fault is not None:
                rt.store.probe_write()
        except WriteFailed:
            pass  # still failing: keep what is left for the next round
        except Exception:
            # Not a disk fault (a bug): say so, but keep the retries armed.
            log.exception("write recovery round failed")
        with self._lock:
            for wid, token in left.items():
                if token is not None or wid not in self._runs:
                    self._runs[wid] = token
            self._timers |= left_timers
            busy = bool(self._runs or self._timers or rt.store.write_fault is not None)
            self._delay = min(MAX_DELAY, self._delay * 2)
        if busy:
            self.arm()
