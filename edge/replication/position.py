"""What the replica is known to hold: replication lag, from barriers and from probes.

Lag is the wall time of the oldest commit not yet proven in the replica (0 when
caught up). Two kinds of proof move it:

- a waited sync barrier that succeeded: every commit made before the barrier
  started is in the replica (``confirm``);
- a probe (an unwaited ``/sync``: Litestream's local TXID, which includes every
  commit made before the probe started, and the replica's TXID): once a later
  probe shows the replica at or past an earlier probe's local TXID, every commit
  before that earlier probe is in the replica (``observe``). The periodic monitor
  uses probes because a waited sync costs Litestream its read lock (control.py).

Invariants:
- a proof never clears a commit made after the point it proves: a commit at or
  after that point leaves the lag counting from the point itself (a conservative
  bound);
- probe positions that go backwards (a new epoch path, a sidecar that starts from
  a snapshot) discard the earlier probes instead of waiting for TXIDs that the new
  position will never reach.
"""

from __future__ import annotations

import threading
from collections import deque

from edge.replication.control import SyncResult


class Position:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first_unsynced: float | None = None
        self._last_commit = 0.0
        self._probes: deque[tuple[float, int]] = deque()  # (started, local txid), unproven

    def committed(self, now: float) -> None:
        with self._lock:
            if self._first_unsynced is None:
                self._first_unsynced = now
            self._last_commit = now

    def lag(self, now: float) -> float:
        with self._lock:
            first = self._first_unsynced
        return 0.0 if first is None else max(0.0, now - first)

    def confirm(self, started: float) -> None:
        """The replica holds every commit made before ``started``."""
        with self._lock:
            self._confirm(started)

    def _confirm(self, started: float) -> None:
        if self._first_unsynced is not None and self._first_unsynced <= started:
            self._first_unsynced = None if self._last_commit <= started else started

    def observe(self, started: float, probe: SyncResult) -> float | None:
        """Record a probe that started at ``started``; returns the point it proves
        (every commit before it is in the replica), or None when it proves nothing new."""
        with self._lock:
            if self._probes and probe.txid < self._probes[-1][1]:
                self._probes.clear()
            self._probes.append((started, probe.txid))
            proven: float | None = None
            while self._probes and self._probes[0][1] <= probe.replicated_txid:
                proven = self._probes.popleft()[0]
            if proven is not None:
                self._confirm(proven)
            return proven

    def oldest_unproven(self) -> float | None:
        """When the oldest probe the replica has not caught up with started (None: none)."""
        with self._lock:
            return self._probes[0][0] if self._probes else None

    def forget_probes(self) -> None:
        """The sidecar stopped answering (fenced, restarting): earlier positions are moot."""
        with self._lock:
            self._probes.clear()
