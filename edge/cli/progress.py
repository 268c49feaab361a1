"""A one-line progress bar on a terminal (``edge restore``): redrawn in place with
``\\r`` at most every 0.1 s, finished with a newline; nothing at all when the stream
is not a terminal, so logs and pipes get the plain result line only.

The total is an estimate (the replica's compressed objects); the bar never claims
100 % before the caller says it is done.
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 30


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


class ProgressBar:
    def __init__(self, stream: TextIO, label: str, *, interval: float = 0.1) -> None:
        self.stream = stream
        self.label = label
        self._interval = interval
        self._last = 0.0
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        share = min(0.99, done / total) if total > 0 else 0.0
        filled = int(share * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        about = f" of ~{_mb(total)}" if total > 0 else ""
        self.stream.write(f"\r{self.label} [{bar}] {share * 100:3.0f}% {_mb(done)}{about}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def finish(self, done: int | None = None) -> None:
        if not self._drawn:
            return
        size = f" {_mb(done)}" if done is not None else ""
        self.stream.write(f"\r{self.label} [{'#' * _WIDTH}] 100%{size}\x1b[K\n")
        self.stream.flush()
