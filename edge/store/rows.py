"""Plain dataclasses the store returns, and the row checksums.

Invariant: every operation, workflow and event row carries a CRC-32 of its
identity and payload. ``PRAGMA integrity_check`` validates pages, not values:
a flipped bit inside a JSON payload passes it. The store verifies the
checksum whenever it hands a row to the engine, and a mismatch is an error
naming the workflow and seq, never a silently different value.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from edge.errors import ChecksumMismatch

FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
WORKFLOW_STATUSES = (
    "PENDING", "RUNNING", "SLEEPING", "WAITING", "SUCCEEDED", "FAILED", "CANCELLED",
)


def checksum(*parts: object) -> int:
    text = "\x1f".join("\x00" if p is None else str(p) for p in parts)
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


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
        # Same bytes as checksum(...) of these fields, without the generator (hot path).
        out = "\x00" if self.output is None else self.output
        err = "\x00" if self.error is None else self.error
        text = (f"{self.workflow_id}\x1f{self.seq}\x1f{self.kind}\x1f{self.name}"
                f"\x1f{self.status}\x1f{out}\x1f{err}")
        return zlib.crc32(text.encode("utf-8", "surrogatepass"))

    @classmethod
    def from_db(cls, row: tuple[object, ...]) -> OpRow:
        op = cls(*row[:10])  # type: ignore[arg-type]
        if op.digest() != row[10]:
            raise ChecksumMismatch(
                f"checkpoint of workflow {op.workflow_id!r} at seq {op.seq} fails its checksum",
                "the database file is damaged: restore it from the replica "
                "(edge restore) or move it aside so the node restores at boot",
            )
        return op


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

    @staticmethod
    def digest_of(id: str, workflow: str, input: str, output: str | None, error: str | None) -> int:
        return checksum(id, workflow, input, output, error)

    @classmethod
    def from_db(cls, row: tuple[object, ...]) -> WorkflowRow:
        wf = cls(*row[:16])  # type: ignore[arg-type]
        if cls.digest_of(wf.id, wf.workflow, wf.input, wf.output, wf.error) != row[16]:
            raise ChecksumMismatch(
                f"workflow {wf.id!r} (seq 0: its input/output) fails its checksum",
                "the database file is damaged: restore it from the replica (edge restore)",
            )
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


WORKFLOW_COLUMNS = (
    "id, workflow, status, input, output, error, queue, parent_id, deadline, created_at, "
    "updated_at, wake_at, waiting_for, blocked_on, cancel_requested, run_token, checksum"
)
OP_COLUMNS = (
    "workflow_id, seq, kind, name, status, attempts, output, error, started_at, finished_at, "
    "checksum"
)
