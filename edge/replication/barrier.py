"""The replication barrier's two users: replicated steps and replicated acknowledgements.

A barrier (``barrier(timeout) -> bool``, the replicator's waited sync) proves that
every commit made before it started is in the replica. This module decides how long
each user waits for one and what it reports meanwhile.

Invariants:
- ``wait`` returns True only after a barrier succeeded, False when the node stops
  first (the engine decides what follows); meanwhile ``on_block`` hears True once,
  then False, and ``edge_blocked_on_replication`` counts the waiter;
- ``ack`` is bounded: it returns, or raises ``not_replicated`` (503); it never
  acknowledges what the replica does not hold.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from edge.clock import Clock
from edge.errors import ReplicationError
from edge.metrics import Metrics

ACK_TIMEOUT = 5.0  # longest a replicated ack waits for a barrier before answering 503


class Barriers:
    def __init__(self, barrier: Callable[[float], bool], *, clock: Clock, metrics: Metrics,
                 sync_interval: float, draining: threading.Event,
                 why: Callable[[], str]) -> None:
        self._barrier = barrier
        self._clock = clock
        self._metrics = metrics
        self._sync_interval = sync_interval
        self._draining = draining
        self._why = why  # why the replica cannot confirm now (for the 503)
        self._lock = threading.Lock()
        self.blocked = 0  # waiters past their first failed barrier

    def wait(self, on_block: Callable[[bool], None] | None = None) -> bool:
        """Block until a barrier confirmed every commit so far: True; False when the node
        stops first. ``on_block(True)`` once a wait outlasts one barrier, then
        ``on_block(False)`` when it ends."""
        blocked = False
        try:
            while not self._barrier(5.0):
                if not blocked:
                    blocked = True
                    with self._lock:
                        self.blocked += 1
                    self._metrics.blocked.inc()
                    if on_block is not None:
                        on_block(True)
                if self._clock.sleep(0.5, self._draining):
                    return False
        finally:
            if blocked:
                self._metrics.blocked.dec()
                with self._lock:
                    self.blocked -= 1
                if on_block is not None:
                    on_block(False)
        return True

    def ack(self, what: str) -> None:
        """Return once a barrier proved every commit before the call is in the replica;
        raise a 503 ``not_replicated`` instead of waiting on a bucket that does not answer."""
        clock = self._clock
        deadline = clock.monotonic() + max(ACK_TIMEOUT, self._sync_interval * 3)
        # Retried until the deadline: a sync that raced a newer commit answers
        # "replicated < txid" (about 1 in 150 under load) and the next one succeeds.
        while (left := deadline - clock.monotonic()) > 0:
            if self._barrier(left):
                return
            if clock.sleep(min(0.05, max(0.0, left)), self._draining):
                break
        raise ReplicationError(
            f"{what} is recorded on this node but not in the replica yet ({self._why()})",
            "retry with the same id (or dedup key): the retry is idempotent and answers once "
            "the bucket holds it; or send with ack local", code="not_replicated")
