"""Every error edge raises on purpose, with an exit code and an operator hint.

Invariant: an ``EdgeError`` carries a stable machine ``code``, a one-line
``message`` saying what went wrong, and a ``hint`` saying what to do; the CLI
prints exactly those two and exits with ``exit_code``; the HTTP API serialises
them as ``{"error": {"code", "message", "hint"}}`` with ``http_status``.

``Cancelled`` is a ``BaseException`` so that a user's ``except Exception`` inside
a workflow cannot swallow a cancellation.
"""

from __future__ import annotations

import re
from typing import Any

# Documented CLI exit codes (DESIGN.md section 5).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_DATA = 4


class EdgeError(Exception):
    """Base class: what went wrong, what to do about it, and how to exit."""

    code = "error"
    exit_code = EXIT_FAILED
    http_status = 400

    def __init__(self, message: str, hint: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        return self.message


class UsageError(EdgeError):
    """The caller sent something malformed (bad JSON, wrong arguments)."""

    code = "bad_request"
    exit_code = EXIT_USAGE
    http_status = 400


class ConfigError(UsageError):
    """A setting is invalid; the message names the field."""

    code = "bad_config"


class NotFound(EdgeError):
    """An unknown workflow name or id."""

    code = "not_found"
    exit_code = EXIT_FAILED
    http_status = 404


class Conflict(EdgeError):
    """The request is valid but the workflow's state does not allow it."""

    code = "conflict"
    exit_code = EXIT_FAILED
    http_status = 409


class NotReady(EdgeError):
    """The node is booting, standing by or shutting down."""

    code = "not_ready"
    exit_code = EXIT_FAILED
    http_status = 503


class Unreachable(EdgeError):
    """A node, bucket or endpoint could not be reached. ``transient`` is True when what
    failed is the connection itself (refused, reset, cut mid-answer, timed out): what a
    node that is restarting looks like, so a long wait (``edge result``) tries again;
    False for what waiting will not fix (a name that does not resolve, TLS, garbage)."""

    code = "unreachable"
    exit_code = EXIT_FAILED
    http_status = 502

    def __init__(self, message: str, hint: str = "", *, code: str | None = None,
                 transient: bool = False) -> None:
        super().__init__(message, hint, code=code)
        self.transient = transient


class LockHeld(EdgeError):
    """Another process holds the single-writer lock or the replica lease."""

    code = "lock_held"
    exit_code = EXIT_REFUSED
    http_status = 409


class DataError(EdgeError):
    """A database or replica is corrupt, foreign, from a newer schema, or failed to restore."""

    code = "data_error"
    exit_code = EXIT_DATA
    http_status = 500


class CorruptDatabase(DataError):
    """SQLite reported damage (malformed image, invalid text) while the node was running.

    A 503 in the API (the fault is the server's, not the request's), exit 4 in the CLI."""

    code = "corrupt"
    http_status = 503


class WriteFailed(EdgeError):
    """A write could not be committed (disk full, I/O error); nothing was acknowledged.

    ``code`` is ``disk_full`` or ``io_error``; the node releases the work and retries
    it once writes succeed again."""

    code = "io_error"
    exit_code = EXIT_FAILED
    http_status = 503


class ChecksumMismatch(CorruptDatabase):
    """A row does not match its checksum, or a column is outside its domain: damage
    SQLite cannot see. The same ``corrupt`` code as any other damage."""


class SerializationError(UsageError):
    """A value is not JSON-serialisable or exceeds the size limit."""

    code = "serialization"


class ReplicationError(EdgeError):
    """The Litestream sidecar or the replica misbehaved."""

    code = "replication"
    exit_code = EXIT_FAILED
    http_status = 503


_DIVERGED = re.compile(r"diverged at seq (\d+):")


class NonDeterminismError(EdgeError):
    """A workflow's code took a different path than the one recorded."""

    code = "non_determinism"

    def __init__(self, workflow_id: str, seq: int, recorded: str, current: str) -> None:
        super().__init__(
            f"workflow {workflow_id!r} diverged at seq {seq}: recorded {recorded}, "
            f"current code does {current}",
            self.fork_hint(workflow_id, seq),
        )
        self.workflow_id = workflow_id
        self.seq = seq
        self.recorded = recorded
        self.current = current

    @staticmethod
    def fork_hint(workflow_id: str, seq: int) -> str:
        """What works after a divergence at ``seq`` (a resume replays into it again)."""
        return (f"the code changed under it, so `edge resume` would diverge again: `edge fork "
                f"{workflow_id} --from-step {seq}` runs it with the current code from seq "
                f"{seq}, reusing the {seq - 1} checkpoint(s) before the divergence (or guard "
                "the change with edge.patched(...) and resume)")

    @staticmethod
    def seq_in(message: str) -> int | None:
        """The divergent seq a stored error's message names (the message built above)."""
        m = _DIVERGED.search(message or "")
        return int(m.group(1)) if m else None


class NotInWorkflow(EdgeError):
    """``edge.context()`` or a durable operation was called outside a workflow."""

    code = "not_in_workflow"

    def __init__(self, what: str = "edge.context()") -> None:
        super().__init__(
            f"{what} was called outside a workflow or step",
            "call it from a function decorated with @app.workflow() or @app.step()",
        )


class StepFailed(Exception):
    """A step's final failure, as the workflow sees it (first run and replay alike)."""

    def __init__(self, type: str, message: str, step: str = "", seq: int = 0) -> None:
        super().__init__(f"step {step or '?'} failed: {type}: {message}")
        self.type = type
        self.message = message
        self.step = step
        self.seq = seq


class WorkflowFailed(Exception):
    """``handle.result()`` of a FAILED workflow; ``.error`` is ``{"type", "message"}``."""

    def __init__(self, workflow_id: str, error: dict[str, Any]) -> None:
        super().__init__(
            f"workflow {workflow_id} failed: {error.get('type')}: {error.get('message')}"
        )
        self.workflow_id = workflow_id
        self.error = error


class WorkflowCancelled(Exception):
    """``handle.result()`` of a CANCELLED workflow."""

    def __init__(self, workflow_id: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(f"workflow {workflow_id} was cancelled")
        self.workflow_id = workflow_id
        self.error = error


class Cancelled(BaseException):
    """Raised inside a workflow at its next durable operation after a cancel."""


class RequestRefused(UsageError):
    """A node answered a 4xx: the request was well formed for the client, the node refused it
    (wrong workflow arguments, a value out of range). Exit 1 (DESIGN.md: 2 is for bad flags
    and bad JSON only); a UsageError still, for callers of edge.Client."""

    code = "refused"
    exit_code = EXIT_FAILED
