"""The timer loop: one thread serves every sleeper, event timeout, deadline, queue,
schedule and retention tick.

Invariants: ``Timers.tick(now)`` is one iteration with time injected, so tests drive it
without sleeping; a deadline passes by the timers' rule (wall time past it *and*
monotonic progress), so a wall clock stepped forward cannot end a workflow early.
Imports only the clock.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable

from edge.clock import Clock

log = logging.getLogger("edge.worker")


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

    Workflow deadlines follow the same rule inside a run (``deadline_passed``, asked by
    ``RunContext.guard``): the monotonic due time of a workflow's deadline is learned once
    per process (when its ``deadline`` timer is first armed, or when a run of it starts)
    and kept until it is final (``forget_deadline``), so neither the timer nor the run
    ends it early after a wall-clock jump.
    """

    def __init__(self, clock: Clock, on_due: Callable[[str, str, float], None]) -> None:
        self._clock = clock
        self._on_due = on_due
        self._heap: list[tuple[float, float, str, str]] = []
        self._pending: set[tuple[float, str, str]] = set()  # (at, kind, key): no duplicates
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._deadlines: dict[str, tuple[float, float]] = {}  # key -> (at, mono_due)

    def learn_deadline(self, key: str, at: float) -> float:
        """The monotonic time at which deadline ``at`` of workflow ``key`` is due: learned
        at the first call in this process (first learned wins), kept until forgotten."""
        with self._cond:
            known = self._deadlines.get(key)
            if known is not None and known[0] == at:
                return known[1]
            due = self._clock.monotonic() + max(0.0, at - self._clock.time())
            self._deadlines[key] = (at, due)
            return due

    def deadline_passed(self, key: str, at: float) -> bool:
        """The timers' rule for a workflow deadline: wall time past ``at`` and the
        monotonic clock past the due time learned for it."""
        if self._clock.time() <= at:
            return False
        return self._clock.monotonic() >= self.learn_deadline(key, at)

    def forget_deadline(self, key: str) -> None:
        with self._cond:
            self._deadlines.pop(key, None)

    def add(self, at: float, key: str, kind: str = "wake") -> None:
        """Call ``on_due(kind, key, now)`` once wall time reaches ``at`` (and as much
        monotonic time as that was away has elapsed)."""
        if kind == "deadline":
            mono_due = self.learn_deadline(key, at)  # one due time per deadline, see above
        else:
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
