"""Helpers shared by the test apps that crash on purpose and the tests that kill them."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time


def append_line(path: str, line: str) -> None:
    """Append one line durably: O_APPEND + fsync, so it survives our own SIGKILL a
    microsecond later (the effect logs that crash tests count)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def kill_at_random(proc: subprocess.Popen[str], rng: random.Random, lo: float,
                   hi: float) -> bool:
    """SIGKILL ``proc`` at a random moment in [lo, hi] s unless it exits first;
    returns whether it was killed. The kill time itself is what we randomise."""
    deadline = time.monotonic() + rng.uniform(lo, hi)
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    return True
