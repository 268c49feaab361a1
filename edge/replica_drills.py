"""The node's restore drills, wired to what the node has: replicator.py starts one
``NodeDrills`` while it holds the lease (DESIGN.md section 4, step 5).

Job: what a drill of this node means (the lease's current epoch, compared with the
live store, scratch space in ``<data-dir>/drill/``, litestream under ``nice``), when
the node is busy, and what each result updates (metrics, the status block). The
schedule is edge/replication/drills.py's; the drill itself drill.py's; the heal (a
fresh epoch under the same lease, never two writers) is the replicator's, passed in.

Invariants:
- the metrics are those of DESIGN.md's list plus ``edge_replica_*``: the verified
  TXID and the last success time move only on an ok drill; every failed drill with
  a verdict or ``unavailable`` adds one to ``edge_replica_drill_failures_total{kind}``
  (what the alert in deploy/prometheus reads); ``no_replica`` (no upload yet in a new
  epoch) counts nowhere;
- reads only the live database (one read transaction per drill, store/compare.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from edge.replication.drill import DrillResult, drill
from edge.replication.drills import BUSY_LAG_INTERVALS, BUSY_WRITES_PER_S, DrillLoop
from edge.replication.objects import ObjectStore
from edge.replication.target import ReplicaTarget

DRILL_NICE = 10  # litestream restores run behind the workers


class NodeDrills:
    def __init__(self, link: Any, target: ReplicaTarget, objects: ObjectStore, *,
                 epoch: Callable[[], int], lag: Callable[[], float],
                 replicating: Callable[[], bool],
                 heal: Callable[[DrillResult], bool]) -> None:
        self.link = link  # replicator.Link (typed loosely: the replicator imports us)
        self.target, self.objects = target, objects
        self._epoch, self._lag, self._replicating = epoch, lag, replicating
        self._seen: tuple[float, int] | None = None  # (monotonic, writes) at the last look
        self._lock = threading.Lock()
        self.loop = DrillLoop(interval=link.settings.drill_interval, run=self.run,
                              busy=self.busy, on_result=self.record, heal=heal,
                              clock=link.clock)

    def start(self) -> None:
        self.link.metrics.drill_interval.set(self.loop.interval)
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        self.link.metrics.drill_interval.set(0)

    def poke(self, reason: str) -> None:
        self.loop.poke(reason)

    def run(self) -> DrillResult:
        clock = self.link.clock
        return drill(self.target, epoch=self._epoch(), local=self.link.store(),
                     scratch=self.link.settings.data_dir / "drill", store=self.objects,
                     nice=DRILL_NICE if hasattr(os, "nice") else 0,
                     monotonic=clock.monotonic, wall=clock.time)

    def busy(self) -> bool:
        """Writes per second since the last look above BUSY_WRITES_PER_S, a replica
        more than BUSY_LAG_INTERVALS sync intervals behind, or no sidecar replicating
        (fenced, a heal under way: the replica is not moving, and a slow bucket is
        better left to the lease's renews)."""
        if not self._replicating():
            return True
        now, writes = self.link.clock.monotonic(), self.link.store().commit_stats[1]
        with self._lock:
            seen, self._seen = self._seen, (now, writes)
        rate = (writes - seen[1]) / max(1e-3, now - seen[0]) if seen is not None else 0.0
        return (rate > BUSY_WRITES_PER_S
                or self._lag() > BUSY_LAG_INTERVALS * self.link.settings.sync_interval)

    def record(self, result: DrillResult) -> None:
        m = self.link.metrics
        m.drill_seconds.set(result.seconds)
        if result.ok:
            m.verified_txid.set(result.txid or 0)
            m.drill_success.set(result.finished_at)
        elif result.kind != "no_replica" and result.kind is not None:
            m.drill_failures.labels(result.kind).inc()

    def status(self) -> dict[str, Any]:
        """The last drill and the next one (``edge status``, the dashboard)."""
        last = self.loop.last
        left = self.loop.next_at - self.link.clock.monotonic()
        return {"interval": self.loop.interval,
                "next_in_seconds": round(max(0.0, left), 1),
                "last": last.to_dict() if last is not None else None}
