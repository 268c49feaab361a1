"""Open SQLite connections the way edge needs them.

Invariants:
- every connection runs in autocommit mode (``isolation_level=None``): the
  store issues ``BEGIN IMMEDIATE`` itself for every write, because a deferred
  transaction that later writes fails with SQLITE_BUSY_SNAPSHOT instead of
  waiting for the lock;
- WAL journal, ``busy_timeout`` >= 5 s, ``synchronous=FULL`` unless the
  operator chose ``normal`` (a committed step may then be lost on power loss,
  never on a process crash);
- the engine never VACUUMs, and with a replica nothing but Litestream checkpoints
  the WAL: every connection of a replicated store has ``wal_autocheckpoint=0``
  (``autocheckpoint=False``). Litestream 0.5.17 does NOT tolerate SQLite's automatic
  checkpoint: a waited ``/sync`` cancels the context its read lock was taken with,
  and while that lock is gone an automatic PASSIVE checkpoint lets the next write
  restart the WAL under it; it then misses frames or reads torn pages, and the
  replica restores corrupt (14 of 20 restores under load, 0 of 32 without it). The
  one checkpoint the engine issues is the WAL bound's TRUNCATE while no Litestream
  runs (``Store.truncate_wal``). Without a replica SQLite's automatic checkpoints
  stay on: nothing else would ever shrink the WAL;
- read-only inspection opens with ``mode=ro`` (``immutable=1`` when there is
  no WAL file to read), so it cannot change a byte of a stopped node's file. A
  WAL without its ``-shm`` (a copy, or a stopped node's directory: SQLite would
  have to create the -shm beside it to read the WAL, and cannot at all in a
  read-only directory) is read through a private temporary copy of the file and
  its WAL (``private_copy``), never by writing next to the original;
- every connection can call ``edge_checksum`` (rows.register): the schema's
  checksum triggers need it;
- a database edge opens read-write is 0600 before SQLite first opens it
  (``make_private``): SQLite gives the -wal and -shm it creates the main file's
  mode, whatever the process umask.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

from edge.errors import DataError
from edge.store.rows import register

BUSY_TIMEOUT_MS = 5000
DURABILITY = {"full": "FULL", "normal": "NORMAL"}


def connect(path: Path, durability: str = "full",
            check: Callable[[sqlite3.Connection], object] | None = None,
            autocheckpoint: bool = True) -> sqlite3.Connection:
    """A read-write connection with edge's pragmas; the file is created if missing.
    ``autocheckpoint=False`` (a replicated store): this connection never checkpoints.

    ``check`` runs before any pragma that writes (journal_mode=WAL rewrites the
    header), so a foreign or newer file is refused without a byte changed.
    """
    conn = None
    try:
        conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        register(conn)
        if check is not None:
            check(conn)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        raise DataError(
            f"{path} is not a usable SQLite database: {exc}",
            "move the file aside (or restore it from the replica) and start again",
            code="corrupt_database",
        ) from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    if str(mode).lower() != "wal":
        conn.close()
        raise DataError(f"{path}: could not switch to WAL mode (got {mode})",
                        "check the filesystem")
    conn.execute(f"PRAGMA synchronous = {DURABILITY[durability]}")
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


def make_private(path: Path) -> None:
    """Make the database ``path`` 0600 (created empty when missing) and its -wal and
    -shm 0600 where they exist, so that SQLite creates its companions 0600 too.

    Call it before any connection to ``path`` exists in this process. The rule that
    the node never open()s and closes the database file is about SQLite's POSIX
    locks: closing any descriptor of the file drops every lock the process holds on
    it. Here no connection can hold one yet: O_EXCL proves the file did not exist
    (so no connection had it open), and an existing file is only chmod()ed by path,
    which opens no descriptor.
    """
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISREG(os.stat(file).st_mode):  # never chmod a directory
                        os.chmod(file, 0o600)
            return
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask (0o277 gives 0400)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DataError(f"cannot create or use the database {path}: {exc.strerror or exc}",
                        "check that its directory exists and this user owns and can write "
                        "it") from None


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write the file (inspection of a stopped node or a restored copy)."""
    if not path.exists():
        raise DataError(
            f"no database at {path}", "check --data-dir (the database is edge.db inside it)",
            code="no_database",
        )
    wal = Path(str(path) + "-wal")
    shm = Path(str(path) + "-shm")
    target = path
    if wal.exists() and not shm.exists():
        target = private_copy(path)
    # Without a WAL file there is nothing beyond the main file to read; immutable
    # stops SQLite from trying to create -shm/-wal next to a file we must not touch.
    flag = "mode=ro" if Path(str(target) + "-wal").exists() else "immutable=1"
    uri = f"file:{target.resolve()}?{flag}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               factory=_ReadOnly)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        register(conn)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise DataError(
            f"{path} is not a readable SQLite database: {exc}",
            "point --data-dir at an edge data directory or a restored copy",
            code="corrupt_database",
        ) from exc
    if target is not path:
        # The copy lives as long as the connection: removed when it is closed or collected.
        conn.cleanup = weakref.finalize(conn, shutil.rmtree, str(target.parent), True)
    return conn


class _ReadOnly(sqlite3.Connection):
    """A read-only connection that removes its private copy (if any) when closed."""

    cleanup: Callable[[], object] | None = None

    def close(self) -> None:
        super().close()
        if self.cleanup is not None:
            self.cleanup()


def private_copy(path: Path) -> Path:
    """Copy ``path`` and its -wal into a fresh 0700 temporary directory and return the copy.

    For a WAL whose -shm is missing: reading the WAL needs a -shm, which SQLite would
    create beside the original (or fail to, in a read-only directory)."""
    tmp = Path(tempfile.mkdtemp(prefix="edge-inspect-"))
    dst = tmp / path.name
    try:
        shutil.copyfile(path, dst)
        if Path(str(path) + "-wal").exists():
            shutil.copyfile(str(path) + "-wal", str(dst) + "-wal")
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot copy {path} for reading: {exc}",
                        "free space in the temporary directory (TMPDIR) or copy the data "
                        "directory somewhere writable", code="corrupt_database") from exc
    return dst
