"""The fence watchdog: one thread that fences the sidecar when the lease's bound passes.

The bound is read from the lease, never remembered here: the holder's deadline is
the SEND time of its last successful renew plus the TTL (``Lease.expires_at``),
and the node fences a margin before it. A renew whose reply is slow therefore
never pushes the bound later than the moment its write could have reached the
bucket, which is the earliest a standby could start counting its TTL.

Invariants:
- the thread does nothing but wait and fire, so no barrier, renew or restart
  call can delay it: it wakes at the bound itself (or at ``backstop`` at the
  latest, and whenever ``poke`` says the bound may have moved);
- ``bound()`` and ``fire()`` are the owner's: ``bound`` returns the monotonic
  time to fence at, or None when there is nothing to guard (not holding,
  already fenced); ``fire`` is called once the clock reaches the bound and must
  make the next ``bound()`` return None or a later time;
- ``bound`` must not block: it runs on this thread, and the lease's own lock
  may be held by a renew stuck on a slow bucket.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["FenceWatchdog"]

log = logging.getLogger("edge.replication")


class FenceWatchdog:
    def __init__(
        self,
        bound: Callable[[], float | None],
        fire: Callable[[float], None],
        monotonic: Callable[[], float],
        *,
        backstop: float = 1.0,
        name: str = "edge-fence",
    ) -> None:
        self._bound = bound
        self._fire = fire
        self._monotonic = monotonic
        self._backstop = max(0.01, backstop)
        self._cond = threading.Condition()
        self._stopped = False
        self._poked = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.fired = 0

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def poke(self) -> None:
        """The bound may have moved (renewed, started, unfenced): look again now."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                self._poked = False
            at = self._bound()
            now = self._monotonic()
            if at is not None and now >= at:
                try:
                    self._fire(now - at)
                except Exception as exc:  # a failed fence is retried at the next wake
                    log.error("fence watchdog: fencing failed: %s", exc)
                self.fired += 1
                wait = self._backstop
            else:
                wait = self._backstop if at is None else min(self._backstop, at - now)
            with self._cond:
                if not (self._stopped or self._poked):
                    self._cond.wait(max(0.0, wait))
