"""Supervise ``litestream replicate`` as a child of the node, and talk to its socket.

The node writes Litestream's config itself (one database, the current epoch's
replica path, the control socket, ``shutdown-sync-timeout``) and runs the binary
from one long-lived supervisor thread that spawns, waits and restarts it with
exponential backoff.

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
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edge.errors import ReplicationError
from edge.replication.target import (
    CA_BUNDLE_HINT,
    CA_BUNDLE_MARKER,
    ReplicaTarget,
    child_env,
    find_litestream,
    format_duration,
    parse_go_time,
)

__all__ = ["ControlClient", "Sidecar", "SyncResult"]

EventSink = Callable[[str, dict[str, Any]], None]

_MAX_SOCKET_BYTES = 100  # sun_path holds 108 bytes including the NUL; keep a margin
_STABLE_AFTER = 30.0  # a child that ran this long resets the restart backoff


# ---------------------------------------------------------------- control socket


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """Litestream 0.5's control socket (HTTP over a Unix socket).

    Routes (0.5.17): ``POST /sync {"path","wait","timeout"}`` ->
    ``{"status","path","txid","replicated_txid"}``; ``GET /list`` ->
    ``{"databases":[{"path","status","last_sync_at"?}]}``; ``GET /txid?path=``;
    ``POST /register {"path","replica_url"}``; ``POST /unregister``; ``POST /start``;
    ``POST /stop``; ``GET /info``. Errors are ``{"error": "..."}`` with a 4xx/5xx.
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> tuple[int, dict[str, Any]]:
        """One request; raises ``OSError``/``http.client.HTTPException`` on transport errors."""
        conn = _UnixHTTPConnection(self.socket_path, timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            data = {"error": raw.decode(errors="replace")[:300]}
        return status, data if isinstance(data, dict) else {"value": data}

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Like :meth:`request` but any failure is a ``ReplicationError``."""
        try:
            status, data = self.request(method, path, body, timeout=timeout)
        except TimeoutError:
            raise ReplicationError(
                f"litestream did not answer {method} {path} within {timeout:g}s",
                "the replica may be unreachable; check the bucket and the sidecar's log",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ReplicationError(
                f"litestream control socket {self.socket_path} is not answering: {exc}",
                "the sidecar is down or restarting; check its log",
            ) from None
        if status != 200:
            raise ReplicationError(
                f"litestream {method} {path} failed (HTTP {status}): {data.get('error', data)}",
                "check the sidecar's log",
            )
        return data


@dataclass(frozen=True)
class SyncResult:
    txid: int  # litestream's local position after the sync
    replicated_txid: int  # position confirmed in the replica (== txid after a waited sync)
    status: str  # "synced" or "no_change"
    at: float  # wall clock when the replica confirmed
    duration: float  # seconds the HTTP call took


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
        return {
            "socket": {"enabled": True, "path": self.socket_path, "permissions": 0o600},
            "shutdown-sync-timeout": format_duration(self.shutdown_sync_timeout),
            "dbs": [
                {
                    "path": str(self.db_path),
                    "replica": self.target.litestream_replica_config(
                        self.epoch, self.sync_interval
                    ),
                }
            ],
        }

    def _prepare(self) -> None:
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        candidate = self.run_dir / "litestream.sock"
        if len(os.fsencode(str(candidate))) <= _MAX_SOCKET_BYTES:
            self.socket_path = str(candidate)
        else:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="edge-ls-", dir="/tmp"))
            self.socket_path = str(self._socket_dir / "ls.sock")
        body = json.dumps(self.config(), indent=2).encode()
        tmp = self.config_path.with_name(self.config_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
            os.write(fd, body)
        finally:
            os.close(fd)
        os.replace(tmp, self.config_path)

    def _argv(self, binary: str) -> tuple[list[str], Callable[[], None] | None]:
        cmd = [binary, "replicate", "-config", str(self.config_path), "-no-expand-env"]
        setpriv = shutil.which("setpriv")
        if setpriv:
            return [setpriv, "--pdeathsig", "KILL", "--", *cmd], None
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork, never in the child

        def pdeathsig() -> None:
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG

        return cmd, pdeathsig

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
            argv, preexec = self._argv(binary)
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
                )
            except OSError as exc:
                with self._cond:
                    self._spawn_errors += 1
                    self._last_error = f"cannot run litestream: {exc}"
                    self._cond.notify_all()
                self._emit("spawn_failed", {"error": str(exc)})
            else:
                with self._cond:
                    self._proc = proc
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
        body = {"path": str(self.db_path), "wait": True, "timeout": max(1, math.ceil(timeout))}
        t0 = self._monotonic()
        data = ControlClient(self.socket_path).call("POST", "/sync", body, timeout=timeout)
        try:
            txid = int(data.get("txid", 0))
            replicated = int(data.get("replicated_txid", 0))
        except (TypeError, ValueError):
            raise ReplicationError(
                f"litestream returned a malformed sync reply: {data}",
                "check the litestream version (0.5.17 is pinned)",
            ) from None
        status = str(data.get("status", ""))
        if status not in ("synced", "no_change") or replicated < txid:
            raise ReplicationError(
                f"replica did not confirm the sync (status {status!r}, txid {txid}, "
                f"replicated {replicated})",
                "the replica may be unreachable; check the bucket",
            )
        return SyncResult(txid, replicated, status, self._wall(), self._monotonic() - t0)

    def refresh(self, timeout: float = 2.0) -> float | None:
        """Read Litestream's own ``last_sync_at`` (``GET /list``); returns the newest known."""
        listing = ControlClient(self.socket_path).call("GET", "/list", timeout=timeout)
        for db in listing.get("databases") or []:
            if db.get("path") == str(self.db_path) and isinstance(db.get("last_sync_at"), str):
                at = parse_go_time(db["last_sync_at"])
                with self._cond:
                    if at is not None and (self._last_sync_at is None or at > self._last_sync_at):
                        self._last_sync_at = at
        return self._last_sync_at

    def txid(self, timeout: float = 2.0) -> int:
        """Litestream's local position for the database (``GET /txid``)."""
        from urllib.parse import quote

        path = f"/txid?path={quote(str(self.db_path))}"
        return int(ControlClient(self.socket_path).call("GET", path, timeout=timeout)["txid"])
