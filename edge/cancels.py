"""In-memory cancel flags of running workflows, and waits that a cancel interrupts.

The durable truth is the ``cancel_requested`` column (``store.lifecycle.request_cancel``); this is a
cache the engine checks before every durable operation without a database read.

Invariants:
- ``add`` and ``watch`` take the same lock, so a cancel that lands just before a step's
  retry back-off starts still interrupts it (the watch finds the flag already set);
- a drain (``interrupt_all``, after the node's ``draining`` event is set) interrupts
  every back-off too, also one whose watch starts afterwards.
"""

from __future__ import annotations

import threading
from typing import Protocol


class _Sleeper(Protocol):
    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> bool: ...


class CancelFlags:
    def __init__(self, draining: threading.Event) -> None:
        self._draining = draining
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._watch: dict[str, threading.Event] = {}

    def __contains__(self, wid: object) -> bool:
        return wid in self._ids

    def add(self, wid: str) -> None:
        with self._lock:
            self._ids.add(wid)
            ev = self._watch.get(wid)
        if ev is not None:
            ev.set()

    def discard(self, wid: str) -> None:
        with self._lock:
            self._ids.discard(wid)

    def interrupt_all(self) -> None:
        with self._lock:
            events = list(self._watch.values())
        for ev in events:
            ev.set()

    def sleep(self, wid: str, clock: _Sleeper, seconds: float) -> bool:
        """``clock.sleep(seconds)``, cut short by a cancel of ``wid`` or a drain; True if
        it was cut short."""
        ev = threading.Event()
        with self._lock:
            self._watch[wid] = ev
            if wid in self._ids or self._draining.is_set():
                ev.set()
        try:
            return clock.sleep(seconds, ev)
        finally:
            with self._lock:
                if self._watch.get(wid) is ev:
                    del self._watch[wid]
