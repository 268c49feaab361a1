"""Litestream 0.5's control socket: the client the sidecar and its users talk through.

Job: HTTP over the Unix socket Litestream serves, every failure mapped to one
``ReplicationError``, and the replies the node relies on parsed and checked
(``/sync``, ``/list``, ``/txid``). It holds no state beyond the socket's path and
decides nothing about when to call: batching, fencing and restarts are
``sidecar.py``'s.

Invariants:
* a transport failure, a timeout or a non-200 answer is a ``ReplicationError``
  with a hint (``call``); only ``request`` lets transport errors through, for the
  supervisor's readiness probe;
* a waited ``/sync`` counts as confirmed only when Litestream reports
  ``synced``/``no_change`` and ``replicated_txid >= txid``; a malformed reply is an
  error, never a zero position;
* Litestream 0.5.17 gives a waited ``/sync`` a timeout context (30 s when none is
  sent) and cancels it when the reply goes out; a checkpoint Litestream made inside
  that call re-took its long-lived read lock with that context, so the lock is lost
  when the call returns. ``probe`` sends neither ``wait`` nor ``timeout``: the
  server's own context serves it, and the periodic probes never drop the lock. Only
  barriers (``sync``) wait, because only a waited sync proves the replica holds a
  commit at the moment it answers.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from edge.errors import ReplicationError
from edge.replication.target import parse_go_time

__all__ = ["ControlClient", "SyncResult"]


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


@dataclass(frozen=True)
class SyncResult:
    txid: int  # litestream's local position after the sync
    replicated_txid: int  # position confirmed in the replica (== txid after a waited sync)
    status: str  # "synced" or "no_change"
    at: float  # wall clock when the replica confirmed
    duration: float  # seconds the HTTP call took


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

    def sync(
        self, db_path: str, timeout: float, *,
        monotonic: Callable[[], float], wall: Callable[[], float],
    ) -> SyncResult:
        """One waited ``POST /sync``: the replica holds every commit made before it."""
        body = {"path": db_path, "wait": True, "timeout": max(1, math.ceil(timeout))}
        t0 = monotonic()
        data = self.call("POST", "/sync", body, timeout=timeout)
        txid, replicated = _positions(data)
        status = str(data.get("status", ""))
        if status not in ("synced", "no_change") or replicated < txid:
            raise ReplicationError(
                f"replica did not confirm the sync (status {status!r}, txid {txid}, "
                f"replicated {replicated})",
                "the replica may be unreachable; check the bucket",
            )
        return SyncResult(txid, replicated, status, wall(), monotonic() - t0)

    def probe(self, db_path: str, timeout: float, *,
              monotonic: Callable[[], float], wall: Callable[[], float]) -> SyncResult:
        """One unwaited ``POST /sync``: Litestream's local position (which includes every
        commit made before the call) and the replica's position, without waiting."""
        t0 = monotonic()
        data = self.call("POST", "/sync", {"path": db_path}, timeout=timeout)
        txid, replicated = _positions(data)
        return SyncResult(txid, replicated, str(data.get("status", "")), wall(), monotonic() - t0)

    def last_sync_times(self, db_path: str, timeout: float) -> list[float]:
        """Litestream's own ``last_sync_at`` of ``db_path`` (``GET /list``), as wall times."""
        listing = self.call("GET", "/list", timeout=timeout)
        out: list[float] = []
        for db in listing.get("databases") or []:
            if db.get("path") == db_path and isinstance(db.get("last_sync_at"), str):
                at = parse_go_time(db["last_sync_at"])
                if at is not None:
                    out.append(at)
        return out

    def txid(self, db_path: str, timeout: float) -> int:
        """Litestream's local position for the database (``GET /txid``)."""
        path = f"/txid?path={quote(db_path)}"
        return int(self.call("GET", path, timeout=timeout)["txid"])


def _positions(data: dict[str, Any]) -> tuple[int, int]:
    """(txid, replicated_txid) of a ``/sync`` reply; a malformed one is an error."""
    try:
        return int(data["txid"]), int(data.get("replicated_txid", 0))
    except (KeyError, TypeError, ValueError):
        raise ReplicationError(
            f"litestream returned a malformed sync reply: {data}",
            "check the litestream version (0.5.17 is pinned)",
        ) from None
