"""The local single-writer lock: one node process per data directory.

Invariant: the lock is an exclusive ``flock`` on ``<data-dir>/edge.lock``, a
file separate from the database. The database file itself is never opened
with plain ``open()`` in the node process: closing such a descriptor drops
every POSIX lock SQLite holds on it (the one exception, creating it 0600 before
any connection exists, is ``store.connection.make_private``). The kernel releases
the flock when the process dies, so a SIGKILLed node never leaves a stale lock
behind. The lock and ``node-id`` files are 0600 whatever the umask.
(The replica lease, the single writer across machines, is in replication/lease.py.)
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from edge.errors import LockHeld

LOCK_NAME = "edge.lock"


class LocalLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeld(
                    f"another edge node (pid {holder}) is running on {self.path.parent}",
                    "stop it first, or give this node its own --data-dir",
                ) from None
            raise
        os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def node_id(data_dir: Path) -> str:
    """A node id generated once per data directory and stored in it."""
    import uuid

    path = data_dir / "node-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        nid = f"node-{uuid.uuid4().hex[:12]}"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a .tmp left by a crash keeps its old mode otherwise
            os.write(fd, (nid + "\n").encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return nid
