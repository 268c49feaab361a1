"""Plain dataclasses the store returns, and the row checksums.

Invariants:
- every column of a workflow, operation, event and published row is covered by
  the row's CRC-32 (schema 4; ``checksum`` itself excepted). ``PRAGMA
  integrity_check`` validates pages, not values: a flipped bit inside a
  payload, a status or a timestamp passes it;
- workflow and event checksums are maintained by SQLite triggers calling
  ``edge_checksum`` (registered on every connection, ``register``): every
  INSERT and every UPDATE of a covered column, whoever writes it, recomputes
  the checksum in the same statement, and the UPDATE trigger first verifies
  the old row, so a write never launders a damaged row into a valid one;
  operation and published checksums are computed here from the values written
  (their writers set every covered column);
- the store verifies the checksum and the columns' domains (status, flags)
  whenever it hands a row out; a mismatch is ``ChecksumMismatch`` (exit 4, API
  ``corrupt``) naming the row, never a silently different value.
"""

from __future__ import annotations

import sqlite3
import zlib
from dataclasses import dataclass

from edge.errors import ChecksumMismatch

FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
WORKFLOW_STATUSES = (
    "PENDING", "RUNNING", "SLEEPING", "WAITING", "SUCCEEDED", "FAILED", "CANCELLED",
)
OP_STATUSES = frozenset({"RUNNING", "SUCCEEDED", "FAILED"})
DAMAGED_HINT = ("the database file is damaged: stop the node and move it aside so it restores "
                "from the replica at boot (or `edge restore`), and inspect the copy with "
                "`edge show --data-dir`")


def checksum(*parts: object) -> int:
    """CRC-32 of the parts; the same function SQLite calls as ``edge_checksum``.

    Floats are written with repr so that a value written as 5 and read back from a
    REAL column as 5.0 hashes the same."""
    # A list, not a generator: str.join builds one first anyway, and the triggers call
    # this on every row they write (a third of its cost went to the generator).
    text = "\x1f".join(["\x00" if p is None else repr(float(p)) if isinstance(p, float)
                        else str(p) for p in parts])
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def register(conn: sqlite3.Connection) -> None:
    """Make ``edge_checksum(...)`` callable from SQL (the triggers of schema 4 need it)."""
    conn.create_function("edge_checksum", -1, checksum, deterministic=True)


def damaged(what: str) -> ChecksumMismatch:
    return ChecksumMismatch(f"{what} fails its checksum", DAMAGED_HINT)


@dataclass(frozen=True, slots=True)
class OpRow:
    workflow_id: str
    seq: int
    kind: str
    name: str
    status: str
    attempts: int
    output: str | None
    error: str | None
    started_at: float | None
    finished_at: float | None

    def digest(self) -> int:
        # The same bytes as checksum(...) of the ten fields, without the generator (a
        # step computes it twice: the hot path).
        out = "\x00" if self.output is None else self.output
        err = "\x00" if self.error is None else self.error
        st = "\x00" if self.started_at is None else repr(float(self.started_at))
        fin = "\x00" if self.finished_at is None else repr(float(self.finished_at))
        text = (f"{self.workflow_id}\x1f{self.seq}\x1f{self.kind}\x1f{self.name}"
                f"\x1f{self.status}\x1f{self.attempts}\x1f{out}\x1f{err}\x1f{st}\x1f{fin}")
        return zlib.crc32(text.encode("utf-8", "surrogatepass"))

    @classmethod
    def from_db(cls, row: tuple[object, ...]) -> OpRow:
        check_op_row(row)
        return cls(*row[:10])  # type: ignore[arg-type]


def op_row_digest(row: tuple[object, ...]) -> int:
    """``OpRow.digest`` of a raw operations row (OP_COLUMNS order), without building
    the OpRow: the same bytes, so a row is verified before (or without) becoming one."""
    wid, seq, kind, name, status, attempts, output, error, started, finished = row[:10]
    out = "\x00" if output is None else output
    err = "\x00" if error is None else error
    st = "\x00" if started is None else _real(started)
    fin = "\x00" if finished is None else _real(finished)
    text = (f"{wid}\x1f{seq}\x1f{kind}\x1f{name}"
            f"\x1f{status}\x1f{attempts}\x1f{out}\x1f{err}\x1f{st}\x1f{fin}")
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def _real(value: object) -> str:
    # A REAL column as the digest writes it. Damage can change the stored type (a flipped
    # serial type reads back as bytes or text): that value hashes as itself, so the row
    # fails its checksum instead of float() raising a ValueError past the check.
    return repr(float(value)) if isinstance(value, int | float) else repr(value)


def check_op_row(row: tuple[object, ...]) -> None:
    """Raise ``ChecksumMismatch`` unless the raw operations row passes its checksum and
    its status is one of OP_STATUSES (what ``OpRow.from_db`` verifies)."""
    if op_row_digest(row) != row[10] or row[4] not in OP_STATUSES:
        raise damaged(f"checkpoint of workflow {row[0]!r} at seq {row[1]}")


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    id: str
    workflow: str
    status: str
    input: str
    output: str | None
    error: str | None
    queue: str | None
    parent_id: str | None
    deadline: float | None
    created_at: float
    updated_at: float
    wake_at: float | None
    waiting_for: str | None
    blocked_on: str | None
    cancel_requested: int
    run_token: str | None
    priority: int = 0
    dedup: str | None = None
    admitted_at: float | None = None

    @staticmethod
    def digest_of(id: str, workflow: str, input: str, output: str | None, error: str | None) -> int:
        """Schema 1's checksum (identity and payload only). Kept for the values UPDATEs
        still pass: the schema 4 trigger overwrites them with the full-row checksum."""
        return checksum(id, workflow, input, output, error)

    @classmethod
    def from_db(cls, row: tuple[object, ...]) -> WorkflowRow:
        wf = cls(*row[:19])  # type: ignore[arg-type]
        if (checksum(*row[:19]) != row[19] or wf.status not in WORKFLOW_STATUSES
                or wf.cancel_requested not in (0, 1)):
            raise damaged(f"workflow {wf.id!r} (its row: status, times, input/output)")
        return wf

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    workflow_id: str
    name: str
    value: str
    dedup: str | None
    created_at: float
    consumed_seq: int | None

    @classmethod
    def from_db(cls, row: tuple[object, ...]) -> EventRow:
        ev = cls(*row[:7])  # type: ignore[arg-type]
        if checksum(*row[:7]) != row[7]:
            raise damaged(f"event {ev.name!r} (id {ev.id}) of workflow {ev.workflow_id!r}")
        return ev


def published_digest(workflow_id: str, key: str, value: str, seq: int, updated_at: float) -> int:
    # float() only for a number: a damaged row's updated_at may read back as bytes (see
    # _real), and must fail the comparison, not raise.
    at = float(updated_at) if isinstance(updated_at, int) else updated_at
    return checksum(workflow_id, key, value, seq, at)


_WF = ("id, workflow, status, input, output, error, queue, parent_id, deadline, created_at, "
       "updated_at, wake_at, waiting_for, blocked_on, cancel_requested, run_token, priority, "
       "dedup, admitted_at")
WORKFLOW_FIELDS = _WF  # every column but the checksum: WorkflowRow's fields, in order
WORKFLOW_COLUMNS = _WF + ", checksum"
OP_COLUMNS = (
    "workflow_id, seq, kind, name, status, attempts, output, error, started_at, finished_at, "
    "checksum"
)
EVENT_COLUMNS = "id, workflow_id, name, value, dedup, created_at, consumed_seq, checksum"
PUBLISHED_COLUMNS = "workflow_id, key, value, seq, updated_at, checksum"
