"""The replica lease: at most one node writes to a replica prefix (DESIGN.md section 8).

The lease is one object, ``<prefix>/lease.json``, changed only by conditional
writes (``If-None-Match: *`` to create, ``If-Match: <etag>`` for everything else).
Its body is ``{"owner", "epoch", "expires_at", "released", "nonce", "ttl"}``; the
random nonce makes every write change the ETag even when nothing else changes
(moto's ETag is the body's MD5).

Invariants:

* Epochs only grow: a takeover writes ``epoch + 1``; release sets ``released``
  and never deletes the object.
* ``expires_at`` in the body is wall-clock and informational only. A standby
  takes over a live lease only after its ETag stayed unchanged for a full TTL
  measured on the standby's OWN monotonic clock, so clocks are never compared
  across machines.
* The holder's deadline (:attr:`Lease.expires_at`) is measured from the moment it
  SENT its last successful write, which is before any standby could have seen
  that write; stopping the sidecar before the deadline therefore always happens
  before a standby may take over.
* A write whose reply was lost (timeout) is remembered by nonce: if a later
  conditional write fails, the object is re-read and adopted when it carries that
  nonce, so a lost reply is never mistaken for a takeover.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from edge.errors import EXIT_REFUSED, DataError, EdgeError, Unreachable
from edge.replication.objects import ObjectStore, open_store
from edge.replication.target import ReplicaTarget

__all__ = ["LEASE_KEY", "AcquireResult", "Lease", "LeaseLost", "LeaseRecord", "aged_out"]

LEASE_KEY = "lease.json"

AcquireKind = Literal["created", "renewed", "took_over", "standby"]


class LeaseLost(EdgeError):
    """Another node took the replica lease over while this node believed it held it."""

    code = "lease_lost"
    exit_code = EXIT_REFUSED
    http_status = 409


@dataclass(frozen=True)
class LeaseRecord:
    owner: str
    epoch: int
    expires_at: float  # wall clock of the writer; informational only
    released: bool
    nonce: str
    etag: str
    ttl: float = 10.0

    @classmethod
    def parse(cls, body: bytes, etag: str, where: str) -> LeaseRecord:
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            record = cls(
                owner=str(data["owner"]),
                epoch=int(data["epoch"]),
                expires_at=float(data.get("expires_at", 0.0)),
                released=bool(data.get("released", False)),
                nonce=str(data.get("nonce", "")),
                etag=etag,
                ttl=float(data.get("ttl", 10.0)),
            )
        except RecursionError:
            # json.loads recurses once per level: a lease nested 100,000 deep is not a
            # bug of ours but a damaged (or hostile) object, and one site's fault.
            raise DataError(
                f"replica lease {where} is malformed: it nests too deep to be a lease",
                "inspect the object; if no node is running against this replica, delete it "
                "and start one node",
            ) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise DataError(
                f"replica lease {where} is malformed: {exc}",
                "inspect the object; if no node is running against this replica, delete it "
                "and start one node",
            ) from None
        if record.epoch < 1 or not record.owner:
            raise DataError(
                f"replica lease {where} has an invalid owner or epoch",
                "inspect the object; if no node is running against this replica, delete it",
            )
        return record


def aged_out(unchanged: float, ttl: float, record: LeaseRecord) -> bool:
    """The takeover rule: the holder's ETag stayed unchanged for a full TTL, the
    longer of ours and the one the holder wrote, on the observer's own clock."""
    return unchanged >= max(ttl, record.ttl)


@dataclass(frozen=True)
class AcquireResult:
    """The outcome of one :meth:`Lease.acquire` attempt.

    ``epoch`` is the epoch this node now holds, or the holder's when ``standby``.
    ``trusted_local`` is True when the local database may be kept as is: the lease
    was just created, or it is ours at the local database's epoch.
    """

    kind: AcquireKind
    epoch: int
    holder: str
    expires_at: float  # wall clock, informational (what /readyz shows for a standby)
    prev_epoch: int | None = None
    prev_owner: str | None = None
    trusted_local: bool = False
    unchanged_for: float = 0.0  # standby: how long the holder's ETag stayed unchanged

    @property
    def held(self) -> bool:
        return self.kind != "standby"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "epoch": self.epoch,
            "holder": self.holder,
            "expires_at": self.expires_at,
            "prev_epoch": self.prev_epoch,
            "prev_owner": self.prev_owner,
            "trusted_local": self.trusted_local,
        }


class Lease:
    """One node's view of the replica lease. Methods are thread-safe; none blocks
    beyond one round trip to the store (short timeouts, see ``objects.open_store``)."""

    def __init__(
        self,
        target: ReplicaTarget,
        node_id: str,
        ttl: float = 10.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        store: ObjectStore | None = None,
    ) -> None:
        if not node_id:
            raise ValueError("node_id must be non-empty")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.target = target
        self.node_id = node_id
        self.ttl = float(ttl)
        self._monotonic = monotonic
        self._wall = wall
        self._store = store if store is not None else open_store(target)
        self._lock = threading.RLock()
        self._etag: str | None = None
        self._epoch = 0
        self._deadline = 0.0
        self._uncertain: set[str] = set()  # nonces of writes whose reply we never got
        self._seen: tuple[str, float] | None = None  # (foreign etag, first seen on our clock)
        self.last: LeaseRecord | None = None

    # -- state -----------------------------------------------------------------

    @property
    def holding(self) -> bool:
        return self._etag is not None

    @property
    def epoch(self) -> int:
        """The epoch held (0 when not holding)."""
        return self._epoch if self._etag is not None else 0

    @property
    def expires_at(self) -> float:
        """Monotonic deadline: stop replicating before this unless renewed.

        The send time of the last successful write plus the TTL (never the reply's
        arrival). Read without the lock, so a watchdog can read it while a renew
        is stuck on a slow bucket."""
        return self._deadline if self._etag is not None else 0.0

    @property
    def renew_interval(self) -> float:
        return self.ttl / 3.0

    def where(self) -> str:
        return self.target.location(LEASE_KEY)

    # -- store round trips -------------------------------------------------------

    def read(self) -> LeaseRecord | None:
        got = self._store.get(LEASE_KEY)
        if got is None:
            return None
        body, etag = got
        record = LeaseRecord.parse(body, etag, self.where())
        with self._lock:
            self.last = record
        return record

    def _body(self, epoch: int, released: bool, nonce: str) -> bytes:
        data = {
            "owner": self.node_id,
            "epoch": epoch,
            "expires_at": round(self._wall() + self.ttl, 3),
            "released": released,
            "nonce": nonce,
            "ttl": self.ttl,
        }
        return json.dumps(data, sort_keys=True).encode()

    def _write(self, epoch: int, released: bool, etag: str | None) -> tuple[str | None, float]:
        """One conditional write; returns (new etag or None, monotonic send time)."""
        nonce = secrets.token_hex(8)
        body = self._body(epoch, released, nonce)
        sent = self._monotonic()
        try:
            if etag is None:
                new = self._store.put_if_absent(LEASE_KEY, body)
            else:
                new = self._store.put_if_match(LEASE_KEY, body, etag)
        except Unreachable:
            self._uncertain.add(nonce)
            raise
        if new is None and etag is not None:
            new = self._adopt_lost_reply(epoch, released)
        if new is not None:
            self._uncertain.clear()
        return new, sent

    def _adopt_lost_reply(self, epoch: int, released: bool) -> str | None:
        if not self._uncertain:
            return None
        record = self.read()
        if (
            record is not None
            and record.owner == self.node_id
            and record.epoch == epoch
            and record.nonce in self._uncertain
        ):
            # Our earlier write landed after all: retry once from its ETag.
            body = self._body(epoch, released, secrets.token_hex(8))
            return self._store.put_if_match(LEASE_KEY, body, record.etag)
        return None

    def _hold(self, epoch: int, etag: str, sent: float) -> None:
        self._etag = etag
        self._epoch = epoch
        self._deadline = sent + self.ttl
        self._seen = None

    # -- the three verbs -----------------------------------------------------------

    def acquire(self, local_epoch: int | None) -> AcquireResult:
        """One attempt to become (or stay) the writer; never waits.

        Raises ``Unreachable`` when the store gives no answer, ``DataError`` when
        the lease object is malformed.
        """
        with self._lock:
            record = self.read()
            if record is None:
                return self._create(local_epoch)
            if record.owner == self.node_id:
                return self._renew_own(record, local_epoch)
            if record.released:
                return self._take_over(record)
            return self._standby_or_take_over(record)

    def _create(self, local_epoch: int | None) -> AcquireResult:
        # A database that already recorded epoch N keeps it: epochs never go back.
        epoch = max(1, local_epoch or 0)
        etag, sent = self._write(epoch, False, None)
        if etag is None:
            return self._lost_race("creation")
        self._hold(epoch, etag, sent)
        return AcquireResult(
            "created", epoch, self.node_id, self._wall() + self.ttl, trusted_local=True
        )

    def _lost_race(self, during: str) -> AcquireResult:
        """Another writer's conditional write won: stand by behind whatever is there now."""
        latest = self.read()
        if latest is None:
            raise Unreachable(
                f"replica lease {self.where()} vanished during {during}",
                "another process is deleting the lease object; stop it",
            )
        return self._standby(latest)

    def _renew_own(self, record: LeaseRecord, local_epoch: int | None) -> AcquireResult:
        etag, sent = self._write(record.epoch, False, record.etag)
        if etag is None:
            return self._standby(self.read() or record)
        self._hold(record.epoch, etag, sent)
        return AcquireResult(
            "renewed",
            record.epoch,
            self.node_id,
            self._wall() + self.ttl,
            prev_epoch=record.epoch,
            prev_owner=record.owner,
            trusted_local=local_epoch == record.epoch,
        )

    def _take_over(self, record: LeaseRecord) -> AcquireResult:
        epoch = record.epoch + 1
        etag, sent = self._write(epoch, False, record.etag)
        if etag is None:
            return self._lost_race("takeover")
        self._hold(epoch, etag, sent)
        return AcquireResult(
            "took_over",
            epoch,
            self.node_id,
            self._wall() + self.ttl,
            prev_epoch=record.epoch,
            prev_owner=record.owner,
        )

    def _standby_or_take_over(self, record: LeaseRecord) -> AcquireResult:
        now = self._monotonic()
        if self._seen is None or self._seen[0] != record.etag:
            self._seen = (record.etag, now)
            return self._standby(record)
        unchanged = now - self._seen[1]
        if aged_out(unchanged, self.ttl, record):
            return self._take_over(record)
        return self._standby(record, unchanged)

    def _standby(self, record: LeaseRecord, unchanged: float = 0.0) -> AcquireResult:
        self._etag = None
        if self._seen is None or self._seen[0] != record.etag:
            self._seen = (record.etag, self._monotonic())
        return AcquireResult(
            "standby",
            record.epoch,
            record.owner,
            record.expires_at,
            unchanged_for=unchanged,
        )

    def renew(self) -> None:
        """Extend the held lease (``If-Match`` on the held ETag).

        Raises ``LeaseLost`` when someone else wrote the object (this node is now a
        zombie), ``Unreachable`` when the store gives no answer (still holding
        until :attr:`expires_at`; call again when the store is back).
        """
        with self._lock:
            if self._etag is None:
                raise LeaseLost(
                    f"cannot renew replica lease {self.where()}: this node does not hold it",
                    "acquire the lease first",
                )
            etag, sent = self._write(self._epoch, False, self._etag)
            if etag is None:
                self._etag = None
                holder = self.read()
                who = f" by {holder.owner} at epoch {holder.epoch}" if holder else ""
                raise LeaseLost(
                    f"replica lease {self.where()} was taken over{who}; "
                    f"this node (epoch {self._epoch}) is no longer the writer",
                    "stop this node; its local database is quarantined for review and "
                    "the current holder's replica is the truth",
                )
            self._hold(self._epoch, etag, sent)

    def next_epoch(self) -> int:
        """Move the held lease to ``epoch + 1`` (a fresh replica path: the heal after a
        failed restore drill) with the same conditional write as ``renew``; returns the
        new epoch. Raises ``LeaseLost`` / ``Unreachable`` as ``renew`` does. Epochs only
        grow, and the holder stays the same: a standby sees an ETag change, as for a
        renew, and keeps standing by."""
        with self._lock:
            if self._etag is None:
                raise LeaseLost(
                    f"cannot move replica lease {self.where()}: this node does not hold it",
                    "acquire the lease first",
                )
            epoch = self._epoch + 1
            etag, sent = self._write(epoch, False, self._etag)
            if etag is None:
                self._etag = None
                raise LeaseLost(
                    f"replica lease {self.where()} was taken over before epoch {epoch}",
                    "stop this node; the current holder's replica is the truth",
                )
            self._hold(epoch, etag, sent)
            return epoch

    def release(self) -> None:
        """Mark the lease released (never deletes it). No-op when not holding.

        Raises ``LeaseLost`` when someone else wrote the object meanwhile and
        ``Unreachable`` when the store gives no answer.
        """
        with self._lock:
            if self._etag is None:
                return
            etag, _sent = self._write(self._epoch, True, self._etag)
            self._etag = None
            if etag is None:
                raise LeaseLost(
                    f"replica lease {self.where()} was taken over before release",
                    "nothing to do: another node holds it now",
                )
