"""What the supervised ``litestream replicate`` child is launched with.

Job: the config document (one database, the epoch's replica block, the control
socket, ``shutdown-sync-timeout``), the file it is written to, the socket's path,
and the command line that ties the child's life to its spawning thread. When and
how often to launch is ``sidecar.py``'s.

Invariants:
* the config file is private (0600, also when it already existed) and replaced
  atomically: Litestream never reads half a file;
* the socket path fits ``sun_path`` (108 bytes with the NUL): a run directory too
  deep for it gets a private temp directory under /tmp, which the caller removes;
* the child gets the parent-death signal SIGKILL (``setpriv --pdeathsig KILL``, or
  ``prctl`` from a ``preexec_fn`` when setpriv is missing): it fires when the
  spawning THREAD exits, so that thread must live as long as the child;
* JSON is valid YAML, so no YAML library is needed and ``-no-expand-env`` keeps
  Litestream from reading anything into it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.replication.target import ReplicaTarget, format_duration

_MAX_SOCKET_BYTES = 100  # sun_path holds 108 bytes including the NUL; keep a margin


def config(
    *, db_path: Path, target: ReplicaTarget, epoch: int, sync_interval: float,
    shutdown_sync_timeout: float, socket_path: str,
) -> dict[str, Any]:
    """Litestream 0.5.17 config (JSON is valid YAML, so no YAML library is needed)."""
    return {
        "socket": {"enabled": True, "path": socket_path, "permissions": 0o600},
        "shutdown-sync-timeout": format_duration(shutdown_sync_timeout),
        "dbs": [
            {
                "path": str(db_path),
                "replica": target.litestream_replica_config(epoch, sync_interval),
            }
        ],
    }


def socket_path_in(run_dir: Path) -> tuple[str, Path | None]:
    """The control socket's path, and the temp directory made for it (None: in ``run_dir``)."""
    candidate = run_dir / "litestream.sock"
    if len(os.fsencode(str(candidate))) <= _MAX_SOCKET_BYTES:
        return str(candidate), None
    socket_dir = Path(tempfile.mkdtemp(prefix="edge-ls-", dir="/tmp"))
    return str(socket_dir / "ls.sock"), socket_dir


def write_config(path: Path, doc: dict[str, Any]) -> None:
    body = json.dumps(doc, indent=2).encode()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.write(fd, body)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def argv(binary: str, config_path: Path) -> tuple[list[str], Callable[[], None] | None]:
    """The command line, and the ``preexec_fn`` it needs (None with setpriv)."""
    cmd = [binary, "replicate", "-config", str(config_path), "-no-expand-env"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "KILL", "--", *cmd], None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork, never in the child

    def pdeathsig() -> None:
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG

    return cmd, pdeathsig
