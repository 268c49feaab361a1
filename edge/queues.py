"""Queues: declared limits, per-start options, and the dispatcher that admits work.

    orders = app.queue("orders", concurrency=2, rate=(10, 60.0))  # 2 in flight, 10/min

    @app.workflow(queue="orders")
    def fulfil(order_id: str) -> dict: ...

    app.start(fulfil, "o-1")                                          # queued on "orders"
    app.start(fulfil, "o-2", queue=orders.options(priority=5, dedup="o-2"))

Semantics (the SQL and its invariants are in store/queues.py):
- PENDING means "accepted, waiting for a worker or a queue slot"; a slot is for
  running: it is held from admission until the workflow parks (sleeps, waits for an
  event or a child) or is final. A woken workflow needs a slot again before it runs:
  it waits like any start, ordered by the same rule, so at equal priority it goes
  before work started after it. ``hold_slot_while_parked=True`` keeps the slot
  through parks instead (a queue that limits how many are in flight, e.g. how many
  drive one machine at once). A queue without a concurrency limit never takes a slot
  back (nothing waits for one);
- higher ``priority`` is admitted first, then the oldest; children started
  inside a workflow with ``queue=`` queue like any start (priority 0, no dedup);
- a queue used without ``app.queue(...)`` has no limits (it is still a queue:
  FIFO by priority); a queue found in the database that this code does not
  declare runs unlimited rather than being stranded;
- the dispatcher is event-driven: it admits on every enqueue, every park and finish
  (or cancel) of a queued workflow, every wake of one that gave its slot back, at
  boot, and when a rate window opens (a timer).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.errors import ConfigError, UsageError, WriteFailed

if TYPE_CHECKING:
    from edge.runtime import Runtime

log = logging.getLogger("edge.queues")


@dataclass(frozen=True)
class Queued:
    """Per-start queue options: ``app.start(fn, ..., queue=Queued("q", priority=5))``."""

    name: str
    priority: int = 0
    dedup: str | None = None


@dataclass(frozen=True)
class QueueDef:
    name: str
    concurrency: int | None = None
    rate: tuple[int, float] | None = None  # at most n admissions per period seconds
    hold_slot_while_parked: bool = False

    @property
    def releases_parked(self) -> bool:
        """Whether a parked workflow gives its slot back (only a limit makes one scarce)."""
        return self.concurrency is not None and not self.hold_slot_while_parked

    def options(self, priority: int = 0, dedup: str | None = None) -> Queued:
        return Queued(self.name, priority, dedup)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "concurrency": self.concurrency,
                "rate": None if self.rate is None else {"limit": self.rate[0],
                                                        "period": self.rate[1]},
                "hold_slot_while_parked": self.hold_slot_while_parked}


def check_name(name: object, what: str = "queue name") -> str:
    from edge.limits import check_name as check

    return check(name, what)


def declare(name: str, concurrency: int | None, rate: tuple[int, float] | None,
            hold_slot_while_parked: bool = False) -> QueueDef:
    check_name(name)
    if not isinstance(hold_slot_while_parked, bool):
        raise ConfigError(f"queue {name}: hold_slot_while_parked {hold_slot_while_parked!r} "
                          "must be True or False", "False gives the slot back at a park")
    if concurrency is not None and (isinstance(concurrency, bool)
                                    or not isinstance(concurrency, int) or concurrency < 1):
        raise ConfigError(f"queue {name}: concurrency {concurrency!r} must be an integer >= 1",
                          "or None for no limit")
    if rate is not None:
        ok = (isinstance(rate, tuple) and len(rate) == 2 and isinstance(rate[0], int)
              and not isinstance(rate[0], bool) and rate[0] >= 1
              and isinstance(rate[1], (int, float)) and rate[1] > 0)
        if not ok:
            raise ConfigError(f"queue {name}: rate {rate!r} must be (n >= 1, period > 0 s)",
                              "e.g. rate=(10, 60.0): at most 10 starts a minute")
        rate = (rate[0], float(rate[1]))
    return QueueDef(name, concurrency, rate, hold_slot_while_parked)


def resolve(queue: str | QueueDef | Queued | None, default: str | None) -> Queued | None:
    """What ``queue=`` of a start means: a name, a declared queue, or Queued options."""
    if queue is None:
        return Queued(default) if default is not None else None
    if isinstance(queue, Queued):
        check_name(queue.name)
        if isinstance(queue.priority, bool) or not isinstance(queue.priority, int) \
                or abs(queue.priority) > 2**31:
            raise UsageError(f"invalid priority {queue.priority!r}",
                             "an integer; higher runs first")
        if queue.dedup is not None:
            check_name(queue.dedup, "dedup key")
        return queue
    if isinstance(queue, QueueDef):
        return Queued(queue.name)
    return Queued(check_name(queue))


class Dispatcher:
    """Admits queued workflows into their queue's free slots and hands them to workers."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._retry_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def definition(self, name: str) -> QueueDef:
        qd: QueueDef | None = self._rt.app.queues.get(name)
        if qd is None:
            if name not in self._warned:
                self._warned.add(name)
                log.warning("queue %r is not declared with app.queue(): it has no limits", name)
            return QueueDef(name)
        return qd

    def kick(self, name: str) -> list[str]:
        """Admit what fits now; returns the ids admitted."""
        from edge.store import queues as store_queues

        rt = self._rt
        qd = self.definition(name)
        now = rt.clock.time()
        try:
            admitted, retry_at = store_queues.admit(rt.store, name, qd.concurrency, qd.rate,
                                                    now, release_parked=qd.releases_parked)
        except WriteFailed as exc:
            rt.writes.strand_timer("queue", name, exc)  # admitted once writes succeed
            return []
        for wid in admitted:
            rt.workers.submit(wid)
        if retry_at is not None:
            with self._lock:
                pending = self._retry_at.get(name)
                arm = pending is None or pending <= now or retry_at < pending
                if arm:
                    self._retry_at[name] = retry_at
            if arm:
                rt.timers.add(retry_at, name, "queue")
        return admitted

    def parked(self, name: str) -> None:
        """A workflow of queue ``name`` parked: its slot goes to the next in line, unless
        the queue keeps slots through parks (then nothing changed, nothing is written)."""
        if self.definition(name).releases_parked:
            self.kick(name)

    def kick_all(self) -> None:
        from edge.store import queues as store_queues

        names = {d.queue for d in store_queues.depths(self._rt.store) if d.waiting}
        for name in sorted(names):
            self.kick(name)
