"""Classify SQLite errors into edge's errors, in one place.

Invariant: no ``sqlite3`` exception leaves ``edge/store/`` unclassified where a
caller can see it: damage to the file becomes ``CorruptDatabase`` (exit 4, HTTP
``corrupt``), a failed write becomes ``WriteFailed`` (``disk_full`` or
``io_error``, HTTP 503); anything else is a bug and keeps its own type.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.errors import CorruptDatabase, EdgeError, WriteFailed

# Primary result codes (the low byte of the extended code): sqlite3.h.
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26


def classify(exc: BaseException, where: Path | str) -> EdgeError | None:
    """The edge error ``exc`` stands for, or None if it is not a data or disk fault."""
    if isinstance(exc, EdgeError):
        return exc
    if isinstance(exc, UnicodeDecodeError):
        return CorruptDatabase(
            f"{where}: a text column holds invalid UTF-8 ({exc.reason})",
            _CORRUPT_HINT,
        )
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    text = str(exc)
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in text \
            or "edge_checksum" in text or "decode to UTF-8" in text:
        # edge_checksum: a checksum trigger refused to rewrite a damaged row (rows.py).
        return CorruptDatabase(f"{where}: {text}", _CORRUPT_HINT)
    if primary == SQLITE_FULL or "database or disk is full" in text:
        return WriteFailed(f"{where}: the disk is full ({text})",
                           f"free space on the volume holding {Path(where).parent}; "
                           "the node retries on its own once writes succeed",
                           code="disk_full")
    if primary in (SQLITE_IOERR, SQLITE_CANTOPEN) or "disk I/O error" in text:
        return WriteFailed(f"{where}: I/O error ({text})",
                           f"check the volume holding {Path(where).parent} "
                           "(dmesg, mount options); the node retries on its own",
                           code="io_error")
    return None


_CORRUPT_HINT = ("the database file is damaged: stop the node and move the file aside so it "
                 "restores from the replica at boot, or restore a copy with edge restore "
                 "and inspect it with --data-dir")
