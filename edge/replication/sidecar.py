"""Supervise ``litestream replicate`` as a child of the node, and batch its syncs.

The node writes Litestream's config itself (one database, the current epoch's
replica path, the control socket, ``shutdown-sync-timeout``: ``launch.py``) and
runs the binary from one long-lived supervisor thread that spawns, waits and
restarts it with exponential backoff. It talks to the child through its control
socket (``control.py``); this module decides when: readiness, fencing, restarts,
and the batching of concurrent sync barriers.

Invariants and hazards:

* The child must die with the node. It is spawned through
  ``setpriv --pdeathsig KILL``; the parent-death signal fires when the SPAWNING
  THREAD exits, so the supervisor thread that calls ``Popen`` lives as long as the
  child. The child stays in the node's process group, so killing the group kills
  it too.
* Litestream 0.5.17 cannot build its S3 client when ``AWS_CA_BUNDLE`` is set; the
  variable is dropped from the child's environment for plain-http endpoints and
  file replicas, and otherwise the failure becomes a ``ReplicationError`` with a
  hint (it would fail the same way on every restart, so it is not retried).
* Concurrent ``sync()`` callers are batched: one ``POST /sync {"wait": true}``
  serves every caller that arrived before it started; a caller arriving while one
  is in flight waits for the next. A result is never attributed to a caller whose
  commit may postdate the request.
* ``fence()`` kills the child and keeps it down until ``unfence()``: a node that
  may lose its lease stops writing to the replica at once.
* ``while_halted(fn)`` runs ``fn`` only while no child runs or is being spawned and
  none can be (fenced, unusable or stopping), holding the supervisor's condition so
  that no unfence or respawn starts one meanwhile: the WAL bound's checkpoint must
  never meet a running Litestream.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

from edge.errors import ReplicationError
from edge.replication import launch
from edge.replication.control import ControlClient, SyncResult
from edge.replication.target import (
    CA_BUNDLE_HINT,
    CA_BUNDLE_MARKER,
    ReplicaTarget,
    child_env,
    find_litestream,
)

__all__ = ["ControlClient", "Sidecar", "SyncResult"]

EventSink = Callable[[str, dict[str, Any]], None]
T = TypeVar("T")

_STABLE_AFTER = 30.0  # a child that ran this long resets the restart backoff


# ---------------------------------------------------------------------- sidecar


class Sidecar:
    """One supervised ``litestream replicate`` for one database and one epoch."""

    def __init__(
        self,
        *,
        db_path: Path,
        target: ReplicaTarget,
        epoch: int,
        run_dir: Path,
        sync_interval: float = 1.0,
        shutdown_sync_timeout: float = 5.0,
        litestream_bin: str | None = None,
        env: Mapping[str, str] | None = None,
        on_event: EventSink | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        restart_backoff: tuple[float, float] = (0.5, 10.0),
        ready_timeout: float = 10.0,
    ) -> None:
        self.db_path = Path(os.path.abspath(db_path))
        self.target = target
        self.epoch = epoch
        self.run_dir = Path(os.path.abspath(run_dir))
        self.sync_interval = sync_interval
        self.shutdown_sync_timeout = shutdown_sync_timeout
        self._bin_arg = litestream_bin
        self._env_arg = env
        self._on_event = on_event
        self._monotonic = monotonic
        self._wall = wall
        self._backoff_base, self._backoff_cap = restart_backoff
        self._ready_timeout = ready_timeout
        self.config_path = self.run_dir / "litestream.yml"
        self.socket_path = ""
        self._socket_dir: Path | None = None

        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._fenced = False
        self._stopping = False
        self._fatal: str | None = None
        self._spawning = False  # between leaving the wait and publishing _proc
        self._exits = 0
        self._spawn_errors = 0
        self._restarts = 0
        self._last_error: str | None = None
        self._last_line = ""
        self._last_sync_at: float | None = None
        self._last_result: SyncResult | None = None
        # sync batching: generations of /sync calls started and finished
        self._sync_started = 0
        self._sync_done = 0
        self._sync_in_flight = False
        self._sync_outcome: SyncResult | ReplicationError | None = None
        self.sync_requests = 0

    # -- observable state -------------------------------------------------------

    @property
    def up(self) -> bool:
        """The child runs and its control socket has answered since it started."""
        with self._cond:
            return self._ready and self._proc is not None and not self._fenced

    @property
    def fenced(self) -> bool:
        return self._fenced

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def last_sync_at(self) -> float | None:
        return self._last_sync_at

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def status(self) -> dict[str, Any]:
        with self._cond:
            last = self._last_result
            return {
                "up": self._ready and self._proc is not None and not self._fenced,
                "fenced": self._fenced,
                "pid": self._proc.pid if self._proc is not None else None,
                "epoch": self.epoch,
                "replica": self.target.describe(self.epoch),
                "restarts": self._restarts,
                "last_sync_at": self._last_sync_at,
                "txid": last.txid if last else None,
                "replicated_txid": last.replicated_txid if last else None,
                "last_error": self._last_error,
                "config_path": str(self.config_path),
                "socket_path": self.socket_path,
            }

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        with contextlib.suppress(Exception):  # a broken sink must not kill supervision
            self._on_event(name, data)

    # -- config -------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Litestream 0.5.17 config (JSON is valid YAML, so no YAML library is needed)."""
        return launch.config(
            db_path=self.db_path, target=self.target, epoch=self.epoch,
            sync_interval=self.sync_interval, shutdown_sync_timeout=self.shutdown_sync_timeout,
            socket_path=self.socket_path,
        )

    def _prepare(self) -> None:
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket_path, self._socket_dir = launch.socket_path_in(self.run_dir)
        launch.write_config(self.config_path, self.config())

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Write the config, start supervising, and wait until the socket answers.

        Raises ``ReplicationError`` (binary missing, config rejected, AWS_CA_BUNDLE
        hazard, socket not up within ``ready_timeout``); nothing is left running then.
        """
        with self._cond:
            if self._thread is not None:
                return
            binary = find_litestream(self._bin_arg)
            self._prepare()
            self._stopping = False
            self._fatal = None
            exits, spawn_errors = self._exits, self._spawn_errors
            argv, preexec = launch.argv(binary, self.config_path)
            env = child_env(self.target, self._env_arg)
            self._thread = threading.Thread(
                target=self._supervise,
                args=(argv, preexec, env),
                name=f"edge-litestream-e{self.epoch}",
                daemon=True,
            )
            self._thread.start()
            deadline = self._monotonic() + self._ready_timeout
            while not self._ready and self._exits == exits and self._spawn_errors == spawn_errors:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            ready = self._ready
            fatal, last_line, last_error = self._fatal, self._last_line, self._last_error
        if ready:
            return
        self.stop(flush=False)
        if fatal:
            raise ReplicationError(f"litestream cannot start: {fatal}", CA_BUNDLE_HINT)
        detail = last_error or last_line or f"control socket not up within {self._ready_timeout:g}s"
        raise ReplicationError(
            f"litestream failed to start for {self.target.describe(self.epoch)}: {detail}",
            f"check the replica settings and {self.config_path}",
        )

    def wait_ready(self, timeout: float) -> bool:
        deadline = self._monotonic() + timeout
        with self._cond:
            while not (self._ready and self._proc is not None):
                remaining = deadline - self._monotonic()
                if remaining <= 0 or self._stopping:
                    return False
                self._cond.wait(remaining)
            return True

    def _supervise(
        self, argv: list[str], preexec: Callable[[], None] | None, env: dict[str, str]
    ) -> None:
        delay = self._backoff_base
        while True:
            with self._cond:
                while (self._fenced or self._fatal) and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                self._spawning = True
            started = self._monotonic()
            try:
                # This thread must outlive the child: its exit fires the pdeathsig.
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=env,
                    close_fds=True,
                    preexec_fn=preexec,
                    umask=0o077,  # its LTX files and directories are private whatever ours is
                )
            except OSError as exc:
                with self._cond:
                    self._spawning = False
                    self._spawn_errors += 1
                    self._last_error = f"cannot run litestream: {exc}"
                    self._cond.notify_all()
                self._emit("spawn_failed", {"error": str(exc)})
            else:
                with self._cond:
                    self._proc = proc
                    self._spawning = False
                    # stop()/fence() may have run before _proc was visible to them.
                    if self._stopping or self._fenced:
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                    self._cond.notify_all()
                self._emit("spawned", {"pid": proc.pid, "restarts": self._restarts})
                self._watch(proc)
            with self._cond:
                if self._stopping:
                    return
                if self._fenced or self._fatal:
                    delay = self._backoff_base
                    continue
            if self._monotonic() - started >= _STABLE_AFTER:
                delay = self._backoff_base
            self._emit("restart_scheduled", {"delay": delay, "last_error": self._last_error})
            with self._cond:
                end = self._monotonic() + delay
                while not (self._stopping or self._fenced):
                    remaining = end - self._monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if not (self._stopping or self._fenced):
                    self._restarts += 1
            delay = min(delay * 2, self._backoff_cap)

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        reader = threading.Thread(
            target=self._read_output, args=(proc.stdout,), name="edge-litestream-log", daemon=True
        )
        reader.start()
        client = ControlClient(self.socket_path)
        while proc.poll() is None:
            with self._cond:
                if self._stopping or self._fenced:
                    break
            try:
                client.request("GET", "/list", timeout=0.5)
            except (OSError, http.client.HTTPException):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.02)
                continue
            with self._cond:
                self._ready = True
                self._cond.notify_all()
            self._emit("ready", {"pid": proc.pid})
            break
        rc = proc.wait()
        reader.join(timeout=2.0)
        with self._cond:
            self._proc = None
            self._ready = False
            self._exits += 1
            expected = self._stopping or self._fenced
            if not expected:
                self._last_error = self._fatal or (
                    f"litestream exited with status {rc}: {self._last_line}".rstrip(": ")
                )
            self._cond.notify_all()
        self._emit("exited", {"pid": proc.pid, "returncode": rc, "expected": expected})

    def _read_output(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            with self._cond:
                if "level=INFO" not in line and "level=DEBUG" not in line:
                    self._last_line = line  # errors and warnings explain an exit best
                if CA_BUNDLE_MARKER in line:
                    self._fatal = "AWS_CA_BUNDLE is set and Litestream cannot use it"
                    self._last_error = f"{self._fatal} ({line})"
            self._emit("log", {"line": line})
        stream.close()

    def fence(self, timeout: float = 5.0) -> None:
        """Stop replicating now (kill the child) and do not restart until ``unfence``."""
        with self._cond:
            self._fenced = True
            proc = self._proc
            if proc is not None:
                # SIGKILL, not SIGTERM: a fenced node must not upload anything more,
                # and Litestream resumes from its local state after a hard kill.
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            self._cond.notify_all()
            deadline = self._monotonic() + timeout
            while self._proc is not None and self._monotonic() < deadline:
                self._cond.wait(deadline - self._monotonic())
        self._emit("fenced", {})

    def while_halted(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` while no Litestream runs for this database and none can start before it
        returns; None (``fn`` not called) when one runs or may."""
        with self._cond:
            if not self._halted():
                return None
            return fn()

    def _halted(self) -> bool:
        held_down = self._fenced or self._fatal is not None or self._stopping
        return held_down and self._proc is None and not self._spawning

    def unfence(self) -> None:
        """Resume replicating (the supervisor respawns the child at once)."""
        with self._cond:
            self._fenced = False
            self._cond.notify_all()
        self._emit("unfenced", {})

    def stop(self, flush: bool = True) -> None:
        """Flush (bounded by ``shutdown_sync_timeout``), SIGTERM, SIGKILL at +2 s."""
        with self._cond:
            thread = self._thread
            if thread is None or self._stopping:
                return
            can_flush = flush and self._ready and not self._fenced
        budget_end = self._monotonic() + self.shutdown_sync_timeout + 2.0
        if can_flush:
            try:
                self.sync(timeout=self.shutdown_sync_timeout)
            except ReplicationError as exc:
                self._emit("flush_failed", {"error": exc.message})
        with self._cond:
            self._stopping = True
            proc = self._proc
            self._cond.notify_all()
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        thread.join(timeout=max(1.0, budget_end - self._monotonic()))
        if thread.is_alive():
            with self._cond:
                proc = self._proc
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            thread.join(timeout=5.0)
        with self._cond:
            self._thread = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        self._emit("stopped", {})

    # -- replication position ----------------------------------------------------------

    def sync(self, timeout: float = 10.0) -> SyncResult:
        """Make the replica hold every commit made before this call (batched).

        Raises ``ReplicationError`` when the sidecar is down, fenced, or the replica
        does not confirm within ``timeout``.
        """
        deadline = self._monotonic() + timeout
        with self._cond:
            want = self._sync_started + 1  # only a call started after our arrival counts
            while True:
                self._check_usable()
                if self._sync_done >= want:
                    return self._outcome(self._sync_outcome)
                if not self._sync_in_flight and self._ready:
                    self._sync_in_flight = True
                    self._sync_started += 1
                    mine = self._sync_started
                    break
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    raise ReplicationError(
                        f"replication sync did not complete within {timeout:g}s",
                        "the sidecar is restarting or the replica is slow; check /readyz",
                    )
                self._cond.wait(remaining)
        outcome: SyncResult | ReplicationError
        try:
            outcome = self._sync_once(max(0.05, deadline - self._monotonic()))
        except ReplicationError as exc:
            outcome = exc
        with self._cond:
            self._sync_in_flight = False
            self._sync_done = mine
            self._sync_outcome = outcome
            if isinstance(outcome, SyncResult):
                self._last_sync_at = outcome.at
                self._last_result = outcome
            else:
                self._last_error = outcome.message
            self._cond.notify_all()
        return self._outcome(outcome)

    def _check_usable(self) -> None:
        if self._thread is None or self._stopping:
            raise ReplicationError(
                "the replication sidecar is not running", "start the node with a replica configured"
            )
        if self._fenced:
            raise ReplicationError(
                "replication is fenced (the lease cannot be renewed)",
                "it resumes when the bucket is reachable again",
            )
        if self._fatal:
            raise ReplicationError(f"litestream cannot run: {self._fatal}", CA_BUNDLE_HINT)

    @staticmethod
    def _outcome(outcome: SyncResult | ReplicationError | None) -> SyncResult:
        if isinstance(outcome, SyncResult):
            return outcome
        if outcome is None:
            raise ReplicationError("replication sync produced no result", "retry")
        raise ReplicationError(outcome.message, outcome.hint)  # a fresh traceback per caller

    def _sync_once(self, timeout: float) -> SyncResult:
        self.sync_requests += 1
        return ControlClient(self.socket_path).sync(
            str(self.db_path), timeout, monotonic=self._monotonic, wall=self._wall)

    def probe(self, timeout: float = 2.0) -> SyncResult:
        """Litestream's local and replicated positions, without waiting (never drops its
        read lock: control.py); raises ``ReplicationError`` when it cannot answer."""
        with self._cond:
            self._check_usable()
        res = ControlClient(self.socket_path).probe(
            str(self.db_path), timeout, monotonic=self._monotonic, wall=self._wall)
        if res.replicated_txid >= res.txid:  # caught up: as good as a waited sync
            with self._cond:
                self._last_sync_at = res.at
                self._last_result = res
        return res

    def refresh(self, timeout: float = 2.0) -> float | None:
        """Read Litestream's own ``last_sync_at`` (``GET /list``); returns the newest known."""
        times = ControlClient(self.socket_path).last_sync_times(str(self.db_path), timeout)
        with self._cond:
            for at in times:
                if self._last_sync_at is None or at > self._last_sync_at:
                    self._last_sync_at = at
        return self._last_sync_at

    def txid(self, timeout: float = 2.0) -> int:
        """Litestream's local position for the database (``GET /txid``)."""
        return ControlClient(self.socket_path).txid(str(self.db_path), timeout)
