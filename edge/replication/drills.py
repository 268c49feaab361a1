"""Continuous restore drills inside the node: when to drill, and what follows a failure.

Job: one thread (``DrillLoop``, started by replicator.py while the node holds the
lease) that runs a drill (drill.py: restore the current epoch into scratch space
under ``nice``, check structure and checksums, compare with the live database)
every ``interval`` seconds, and ``SOON`` seconds after an event (``poke``: a sidecar
restart, a takeover, a WAL bound); reports each result (``on_result``: metrics,
``edge status``); and after a damaged result calls ``heal`` (a fresh, fully
snapshotted replica on the next epoch path) and drills again at once to verify it.

"Busy" (``busy()``, decided by the replicator): the node committed more than
``BUSY_WRITES_PER_S`` writes per second since the previous look (many workflows
running), or the replica lags by more than ``BUSY_LAG_INTERVALS`` sync intervals (the
sidecar is behind). A drill is skipped then, and retried after ``BUSY_RETRY``
seconds: a drill costs a full restore's CPU and disk and must not compete with the
hot path. After ``MAX_SKIPS`` skips in a row it runs anyway (a node that is always
busy still proves its replica; ``nice`` keeps it behind the workers).

Invariants:
- time is the injected clock's (``Clock``): tests drive ``tick()`` with a fake clock;
- one drill at a time, never on a caller's thread: the loop thread alone runs them;
- a result with no verdict (``unavailable``, ``no_replica``: the bucket did not
  answer, the new epoch has no upload yet) never heals; it is retried after
  ``SOON`` (unavailable is reported as a failure, no_replica is not);
- a heal that fails (lease lost, bucket down) is logged and retried at the next drill.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge.clock import Clock
from edge.replication.drill import DrillResult

log = logging.getLogger("edge.replication")

SOON = 5.0  # s after an event (or a result with no verdict) before the next drill
BUSY_RETRY = 30.0  # s before a drill skipped while busy is tried again
MAX_SKIPS = 20  # busy skips in a row before a drill runs anyway (10 minutes)
BUSY_WRITES_PER_S = 200.0
BUSY_LAG_INTERVALS = 10.0


class DrillLoop:
    def __init__(
        self,
        *,
        interval: float,
        run: Callable[[], DrillResult],
        busy: Callable[[], bool],
        on_result: Callable[[DrillResult], None],
        heal: Callable[[DrillResult], bool],
        clock: Clock,
        first_after: float = SOON,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self._run, self._busy, self._on_result, self._heal = run, busy, on_result, heal
        self._clock = clock
        self.next_at = clock.monotonic() + first_after
        self.skips = 0
        self.last: DrillResult | None = None
        self.reason = "first drill"
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- scheduling (no thread: tests call these) ------------------------------------

    def poke(self, reason: str) -> None:
        """An event worth a drill soon: a sidecar restart, a takeover, a WAL bound."""
        with self._lock:
            soon = self._clock.monotonic() + SOON
            if soon < self.next_at:
                self.next_at, self.reason = soon, reason
        self._wake.set()

    def tick(self) -> DrillResult | None:
        """Run a drill if one is due (and the node is not busy); returns what ran."""
        now = self._clock.monotonic()
        with self._lock:
            if now < self.next_at:
                return None
            reason = self.reason
        if self.skips < MAX_SKIPS and self._busy():
            self.skips += 1
            self._schedule(BUSY_RETRY, reason)
            log.debug("restore drill skipped: the node is busy (%d in a row)", self.skips)
            return None
        self.skips = 0
        result = self._drill(reason)
        if result.damaged and self._heal(result):
            result = self._drill("after healing")
        if result.kind in ("unavailable", "no_replica"):
            self._schedule(SOON, "retry")
        else:
            self._schedule(self.interval, "periodic")
        return result

    def _drill(self, reason: str) -> DrillResult:
        result = self._run()
        self.last = result
        self._on_result(result)
        if result.ok:
            log.info("restore drill (%s): TXID %s of epoch %s verified in %.1f s", reason,
                     result.txid, result.epoch, result.seconds)
        elif result.damaged:
            log.error("restore drill (%s) found the replica damaged: %s: %s", reason,
                      result.kind, result.detail)
        else:
            log.warning("restore drill (%s): no verdict: %s: %s", reason, result.kind,
                        result.detail)
        return result

    def _schedule(self, delay: float, reason: str) -> None:
        with self._lock:
            self.next_at, self.reason = self._clock.monotonic() + delay, reason

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edge-drill", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the tick: a poke during it is not lost
            try:
                self.tick()
            except Exception:  # a bug in a drill must not end the drills for good
                log.exception("restore drill crashed; retrying at the next interval")
                self._schedule(self.interval, "periodic")
            with self._lock:
                wait = self.next_at - self._clock.monotonic()
            if wait > 0:
                self._clock.sleep(min(wait, 1.0), self._wake)
