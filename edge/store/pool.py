"""The store's pool of read connections.

Invariants:
- a reader is handed to one thread at a time; a burst of concurrent reads opens as
  many as it needs (a read never waits for another), but at most ``keep`` idle ones
  stay open afterwards: one returned past that is closed. Before this bound, 2,000
  concurrent API connections left 181 readers (362 descriptors, +60 MB) open until exit;
- a reader whose read failed is never pooled again (the caller says so): a cursor the
  error's traceback keeps open would pin it to an old snapshot;
- a closed reader frees its memory, but SQLite's unix VFS keeps its descriptor on the
  database file open while other connections of the process hold locks on that file,
  and reuses it for the next connection it opens: the process's descriptors on the file
  stay at the peak number of readers open at once (the API's worker pool bounds it);
- ``close`` closes every reader the pool opened, idle or handed out; a reader handed
  back after it is closed (and after the store closed) is closed, not pooled.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

__all__ = ["KEEP_IDLE_READERS", "ReaderPool"]

# Idle readers kept open: enough for the API's usual concurrency (a reader is held
# only for one query's length), each ~0.3 MB and two descriptors (the file and -shm).
KEEP_IDLE_READERS = 8


class ReaderPool:
    """Read connections opened by ``opener``, at most ``keep`` of them idle."""

    def __init__(self, opener: Callable[[], sqlite3.Connection],
                 keep: int = KEEP_IDLE_READERS) -> None:
        self._opener = opener
        self.keep = keep
        self._idle: list[sqlite3.Connection] = []
        self._open: set[sqlite3.Connection] = set()
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        # Opened outside the lock: a connect can wait on the file (busy_timeout).
        conn = self._opener()
        with self._lock:
            if not self._closed:
                self._open.add(conn)
                return conn
        conn.close()
        raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    def give(self, conn: sqlite3.Connection, reusable: bool) -> None:
        """Hand ``conn`` back: pooled if ``reusable`` and fewer than ``keep`` are idle."""
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self.keep:
                self._idle.append(conn)
                return
            self._open.discard(conn)
        conn.close()

    @property
    def sizes(self) -> tuple[int, int]:
        """(idle, open): open counts the idle ones and those handed out."""
        with self._lock:
            return len(self._idle), len(self._open)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._open = self._open, set()
            self._idle.clear()
        for conn in conns:
            conn.close()
