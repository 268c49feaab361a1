"""Time, injected: the engine never calls time.time() or time.sleep() directly.

``SystemClock`` is the real one; ``FakeClock`` lets tests advance time by hand
so that retries, sleeps and timers are tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What a Node needs of time (``edge.Node(app, clock=...)``)."""

    def time(self) -> float:
        """Wall clock, seconds since the epoch (recorded in the database)."""
        ...

    def monotonic(self) -> float:
        """For measuring durations and waits within a run."""
        ...

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Sleep; returns True early if ``interrupt`` was set."""
        ...


class SystemClock:
    """The real clock (the default)."""

    def time(self) -> float:
        """``time.time()``."""
        return time.time()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Sleep; returns True early if ``interrupt`` was set."""
        if interrupt is None:
            time.sleep(max(0.0, seconds))
            return False
        return interrupt.wait(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def time(self) -> float:
        """The fake wall clock."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """The fake monotonic clock."""
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def jump(self, seconds: float) -> None:
        """Step the wall clock only (NTP, a resumed VM): monotonic time does not move."""
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Advance by ``seconds`` at once (recorded in ``.slept``)."""
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        return bool(interrupt is not None and interrupt.is_set())
