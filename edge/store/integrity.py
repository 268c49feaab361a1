"""Whether a database file may be trusted: the clean-shutdown marker and the
structural check (``PRAGMA integrity_check``: the one place it is run and read).

``problems(conn)`` answers for an open connection (``Store.integrity_check``);
``file_problems(path)`` for a file nobody has opened yet, such as a restored copy
before it is linked into place (edge/replication/restore.py): the file is opened
``immutable=1``, read-only, so the check neither writes a -wal/-shm beside it nor
takes a lock on it; ``check_before_trust(path)`` at boot, before the node opens the
file read-write.

Invariants:
- reads only: the marker and the check go through ``connect_readonly`` (a
  private copy when a WAL has no -shm) or ``immutable=1``, never a byte written
  to the file judged;
- None means SQLite answered exactly ``ok``; anything else (its first three
  complaints, or the error that stopped it) is a problem;
- the structural check (``PRAGMA integrity_check``: pages, free list, and every
  index against its table, chosen by measurement in benchmarks/boot_check.py)
  runs whenever ``edge_meta.shutdown`` is not exactly ``clean``: a kill, a
  crash, a power loss, a file copied in from elsewhere, a file of an older edge,
  or a damaged marker all count as unclean; and at every boot while the file is
  under ``ALWAYS_BELOW`` (it is cheap there, and it alone sees damaged index
  entries). Past that size a clean close lets the boot skip it: bit rot after
  it is then caught by the row checksums on read, index damage only by
  ``edge status --data-dir`` / ``edge list --data-dir`` (which always check);
- a file that fails is ``CorruptDatabase`` (exit 4) whose hint says how to
  restore or inspect; the replicator quarantines it and restores instead.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.request import pathname2url

from edge.errors import CorruptDatabase, DataError
from edge.store.connection import connect_readonly
from edge.store.faults import classify
from edge.store.rows import checksum

CLEAN = "clean"
# Below this size the check runs at every boot, clean or not: it costs ~0.1 s per
# 100 MB with a warm cache (benchmarks/boot_check.py), and it is the only check that
# sees a damaged index entry (row checksums cover rows, not the indexes over them).
ALWAYS_BELOW = 1 << 30


def _answer(rows: list[tuple[object, ...]]) -> str | None:
    if rows == [("ok",)]:
        return None
    return "; ".join(str(r[0]) for r in rows[:3])


def problems(conn: sqlite3.Connection) -> str | None:
    """What ``PRAGMA integrity_check`` finds wrong on an open connection, or None."""
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    return _answer(rows)


def file_problems(path: Path) -> str | None:
    """``problems`` for a file nobody has open, opened ``immutable=1`` (no -wal/-shm)."""
    uri = f"file:{pathname2url(str(path))}?immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        return problems(con)
    finally:
        con.close()


def shutdown_was_clean(path: Path) -> bool:
    """True only if the file records a clean close (unreadable counts as unclean)."""
    try:
        conn = connect_readonly(path)
    except DataError:
        return False
    try:
        row = conn.execute("SELECT value, checksum FROM edge_meta WHERE key = 'shutdown'"
                           ).fetchone()
    except (sqlite3.Error, UnicodeDecodeError):
        return False
    finally:
        conn.close()
    return row is not None and row[0] == CLEAN and row[1] == checksum("shutdown", CLEAN)


def structure_problem(path: Path, quick: bool = False) -> str | None:
    """What ``PRAGMA integrity_check`` (or ``quick_check``) finds wrong, or None."""
    try:
        conn = connect_readonly(path)
    except DataError as exc:
        return exc.message
    try:
        rows = conn.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check"
                            ).fetchall()
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        err = classify(exc, path)
        return err.message if err is not None else str(exc)
    finally:
        conn.close()
    return _answer(rows)


def check_before_trust(path: Path, *, force: bool = False) -> bool:
    """At boot, before the file is opened read-write: check its structure unless the
    last shutdown was clean and the file is larger than ``ALWAYS_BELOW`` (``force``:
    check anyway, e.g. a file restored or copied in). Returns whether the check ran;
    raises ``CorruptDatabase`` if it failed."""
    if not path.exists():
        return False
    if not force and path.stat().st_size >= ALWAYS_BELOW and shutdown_was_clean(path):
        return False
    problem = structure_problem(path)
    if problem is not None:
        raise CorruptDatabase(
            f"{path} is damaged (integrity_check: {problem})",
            f"nothing was changed. Without a replica: stop here, copy {path.parent} "
            "aside and inspect it with `edge list --data-dir COPY`; restore a good copy "
            "with `edge restore --replica URL --output NEW` and move it into place, or "
            "start with --replica to have the node quarantine the file and restore",
        )
    return True
