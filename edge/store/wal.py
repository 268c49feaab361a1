"""The WAL bound: how large the write-ahead log is, and the one checkpoint the engine issues.

With a replica, only Litestream checkpoints (connection.py says why), so while the
sidecar is fenced or cannot run, nothing shrinks the WAL. ``truncate`` is the bound:
a TRUNCATE checkpoint copies every frame into the database and empties the WAL.

Invariants:
- ``truncate`` runs only while no Litestream process reads the database (the caller,
  edge/replicator.py, holds the sidecar halted across the call): a checkpoint under a
  running Litestream is the hazard the bound must not reintroduce;
- TRUNCATE, never PASSIVE or RESTART: a WAL that starts again from frame 0 with new
  salts is what Litestream recognises on its next start, answering it with a full
  snapshot instead of frames it would misread;
- the checkpoint takes the write lock through the busy handler (busy_timeout), so
  concurrent writers wait; a reader on an older snapshot makes it report ``busy`` and
  leave the WAL as it was, to be retried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edge.store.store import Store


@dataclass(frozen=True)
class Truncated:
    done: bool  # False: a reader or writer kept it from completing; retry later
    frames: int  # WAL frames before the checkpoint
    bytes_before: int


def wal_bytes(store: Store) -> int:
    """The size of the database's WAL file (0 when there is none)."""
    try:
        return os.stat(f"{store.path}-wal").st_size
    except FileNotFoundError:
        return 0


def truncate(store: Store) -> Truncated:
    """``PRAGMA wal_checkpoint(TRUNCATE)``: the WAL's frames into the file, the WAL emptied."""
    before = wal_bytes(store)
    with store.read() as conn:
        busy, frames, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return Truncated(done=busy == 0, frames=int(frames), bytes_before=before)
