"""A Litestream sidecar that runs in another container (``--replication external``).

The node does not spawn it; it drives it through the shared control socket:
``/unregister`` then ``/register {"path", "replica_url"}`` for the current
epoch's path, ``/stop`` and ``/start`` for fencing, ``/sync`` as the barrier
(batched by the inherited ``Sidecar.sync``).

Invariants:
- a registration names the current epoch's path: an existing registration
  (an earlier run of this node, or a static entry) is removed first, because
  Litestream answers "already_registered" and keeps the old URL;
- registrations live in the sidecar's memory, so a watcher re-registers
  whenever our database disappears from ``/list`` (the sidecar restarted);
- while fenced the watcher never re-registers: a fenced node must not upload;
- the database counts as halted (``while_halted``: the WAL bound may checkpoint) only
  once the sidecar confirmed ``/stop`` of a fence: an unreachable sidecar may still hold
  the database open and read its WAL.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from edge.errors import ReplicationError
from edge.replication.control import ControlClient
from edge.replication.sidecar import Sidecar
from edge.replication.target import ReplicaTarget


class ExternalSidecar(Sidecar):
    def __init__(self, *, db_path: Path, target: ReplicaTarget, epoch: int, socket_path: str,
                 check_interval: float = 2.0, **kw: Any) -> None:
        super().__init__(db_path=db_path, target=target, epoch=epoch,
                         run_dir=db_path.parent / "sidecar", **kw)
        self.socket_path = socket_path
        self._check_interval = check_interval
        self._registered = False
        self._stop_confirmed = False  # a fence's /stop answered: Litestream closed the db
        self._stop_watch = threading.Event()

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None,
                 timeout: float = 5.0) -> dict[str, Any]:
        return ControlClient(self.socket_path).call(method, path, body, timeout=timeout)

    def _listed(self) -> bool:
        listing = self._control("GET", "/list", timeout=2.0)
        return any(db.get("path") == str(self.db_path) for db in listing.get("databases") or [])

    def _register(self) -> None:
        if self._listed():
            self._control("POST", "/unregister", {"path": str(self.db_path)})
        self._control("POST", "/register", {"path": str(self.db_path),
                                             "replica_url": self.target.litestream_url(self.epoch)})
        self._registered = True
        self._emit("registered", {"epoch": self.epoch, "socket": self.socket_path})

    @property
    def up(self) -> bool:
        with self._cond:
            return self._ready and not self._fenced

    @property
    def pid(self) -> int | None:
        return None

    def status(self) -> dict[str, Any]:
        out = super().status()
        out.update({"up": self.up, "pid": None, "mode": "external"})
        return out

    def start(self) -> None:
        try:
            self._register()
        except ReplicationError as exc:
            raise ReplicationError(
                f"cannot register the database with the external sidecar: {exc.message}",
                f"check that the sidecar runs and shares {self.socket_path} with this container",
            ) from exc
        with self._cond:
            self._ready = True
            self._thread = threading.Thread(target=self._keep_registered, name="edge-sidecar-watch",
                                            daemon=True)
            self._thread.start()

    def _keep_registered(self) -> None:
        while not self._stop_watch.wait(self._check_interval):
            with self._cond:
                if self._fenced or self._stopping:
                    continue
            try:
                if not self._listed():
                    self._register()  # the sidecar restarted and forgot us
                    with self._cond:
                        self._restarts += 1
                    self._emit("restarted", {"mode": "external"})
                with self._cond:
                    self._ready = True
            except ReplicationError as exc:
                with self._cond:
                    self._ready = False
                    self._last_error = exc.message

    def fence(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._fenced = True
        try:
            self._control("POST", "/stop", {"path": str(self.db_path)}, timeout=timeout)
            with self._cond:
                self._stop_confirmed = self._fenced
        except ReplicationError as exc:
            # The sidecar is unreachable too; it cannot upload for us without the db's
            # registration surviving, and the watcher will not re-register while fenced.
            self._last_error = exc.message
        self._emit("fenced", {})

    def _halted(self) -> bool:
        return self._fenced and self._stop_confirmed

    def unfence(self) -> None:
        with self._cond:
            self._stop_confirmed = False
        try:
            self._control("POST", "/start", {"path": str(self.db_path)})
        except ReplicationError:
            self._register()
        super().unfence()  # clears the fence and wakes sync waiters, as for the embedded one

    def stop(self, flush: bool = True) -> None:
        with self._cond:
            if self._stopping:
                return
            can_flush = flush and self._ready and not self._fenced
        if can_flush:
            try:
                self.sync(timeout=self.shutdown_sync_timeout)
            except ReplicationError as exc:
                self._last_error = exc.message
        with self._cond:
            self._stopping = True
        self._stop_watch.set()
        try:
            # The next boot registers its own epoch's path; leave nothing behind.
            self._control("POST", "/unregister", {"path": str(self.db_path)}, timeout=2.0)
        except ReplicationError:
            pass
        self._emit("exited", {"mode": "external", "expected": True})
