"""The fence watchdog fires by its bound from its own thread, whatever else is busy."""

from __future__ import annotations

import threading
import time

from edge.replication.watchdog import FenceWatchdog
from tests.conftest import wait_until


class Guarded:
    """The owner's side: a bound that moves on renew and is None once fenced."""

    def __init__(self, bound: float) -> None:
        self.bound: float | None = bound
        self.fired: list[float] = []  # monotonic times of each fence

    def get(self) -> float | None:
        return self.bound

    def fire(self, late: float) -> None:
        self.fired.append(time.monotonic())
        self.bound = None


def test_fires_at_the_bound_while_another_thread_holds_a_lock_for_long():
    busy = threading.Lock()
    busy.acquire()  # a renew or barrier stuck on a slow bucket
    g = Guarded(time.monotonic() + 0.3)
    start = time.monotonic()
    dog = FenceWatchdog(g.get, g.fire, time.monotonic, backstop=5.0)
    dog.start()
    try:
        wait_until(lambda: g.fired, 3.0, "fence fired")
        assert g.fired[0] >= start + 0.3
        assert g.fired[0] - (start + 0.3) < 0.5  # woke at the bound, not at the backstop
        assert len(g.fired) == 1
    finally:
        dog.stop()
        busy.release()


def test_a_bound_moved_by_a_renew_is_honoured_and_nothing_fires_early():
    g = Guarded(time.monotonic() + 0.4)
    dog = FenceWatchdog(g.get, g.fire, time.monotonic, backstop=5.0)
    dog.start()
    try:
        time.sleep(0.2)  # the renew interval of this scenario, not synchronisation
        g.bound = time.monotonic() + 0.6
        dog.poke()
        moved_to = g.bound
        wait_until(lambda: g.fired, 3.0, "fence fired")
        assert g.fired[0] >= moved_to
    finally:
        dog.stop()


def test_nothing_to_guard_never_fires_and_stop_ends_the_thread():
    g = Guarded(0.0)
    g.bound = None
    dog = FenceWatchdog(g.get, g.fire, time.monotonic, backstop=0.05)
    dog.start()
    time.sleep(0.3)  # several backstop wakes with nothing to guard
    dog.stop()
    assert not g.fired and not dog.alive


class FailsTwice(Guarded):
    def fire(self, late: float) -> None:
        self.fired.append(time.monotonic())
        if len(self.fired) < 3:
            raise RuntimeError("sidecar busy")
        self.bound = None


def test_a_failing_fence_is_retried_at_the_backstop():
    g = FailsTwice(0.0)
    dog = FenceWatchdog(g.get, g.fire, time.monotonic, backstop=0.05)
    dog.start()
    try:
        wait_until(lambda: g.bound is None, 3.0, "third fence attempt")
        assert len(g.fired) == 3
    finally:
        dog.stop()
