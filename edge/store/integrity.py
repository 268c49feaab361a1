"""``PRAGMA integrity_check``: the one place it is run and read.

``problems(conn)`` answers for an open connection (``Store.integrity_check``);
``file_problems(path)`` for a file nobody has opened yet, such as a restored copy
before it is linked into place (edge/replication/restore.py): the file is opened
``immutable=1``, read-only, so the check neither writes a -wal/-shm beside it nor
takes a lock on it.

Invariant: None means SQLite answered exactly ``ok``; anything else (its first
three complaints, or the error that stopped it) is a problem.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.request import pathname2url


def problems(conn: sqlite3.Connection) -> str | None:
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    if rows == [("ok",)]:
        return None
    return "; ".join(str(r[0]) for r in rows[:3])


def file_problems(path: Path) -> str | None:
    uri = f"file:{pathname2url(str(path))}?immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        return problems(con)
    finally:
        con.close()
