"""The JSON shapes users see (``edge show --json``, the HTTP API), built from store rows.

Invariant: one function per shape, shared by the HTTP API and the CLI's
read-only inspection, so a node and a restored copy print the same thing.
Times are ISO 8601 UTC; absent values are null.

Defence in depth: the door (edge/limits.py, serialization.encode) refuses what
cannot be rendered, but a row written by an older version or by hand must not
fail a whole listing. Each field is rendered on its own; one that cannot be
(a time past year 9999, JSON that does not decode, an input that is not an
object) becomes the string ``"<unrenderable: ...>"`` and the rest of the row,
and every other row, is served as usual. Lone surrogates in decoded strings
are left to the response encoders (api/routes.json_response, cli/text.dumps),
which escape them as JSON ``\\udXXXX``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edge.serialization import decode
from edge.store import OpRow, Store, WorkflowRow, listing

UNRENDERABLE = "<unrenderable: {}>"
# What decoding or rendering a damaged value can raise (datetime: ValueError,
# OverflowError, OSError; json: ValueError, RecursionError; a wrong shape: the rest).
_RENDER_ERRORS = (ValueError, OverflowError, OSError, RecursionError, TypeError,
                  AttributeError, KeyError)


def _placeholder(exc: BaseException) -> str:
    return UNRENDERABLE.format(f"{type(exc).__name__}: {str(exc)[:100]}")


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC; a time no datetime can hold renders as a placeholder, never raises."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    except _RENDER_ERRORS:
        return UNRENDERABLE.format(f"time {ts!r}")


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return decode(text)
    except _RENDER_ERRORS as exc:
        return _placeholder(exc)


def _input_view(text: str) -> Any:
    try:
        inp = decode(text)
        args, kwargs = inp.get("args", []), inp.get("kwargs", {})
    except _RENDER_ERRORS as exc:
        return _placeholder(exc)
    return {"args": args, "kwargs": kwargs}


def workflow_summary(wf: WorkflowRow, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": wf.id,
        "workflow": wf.workflow,
        "status": wf.status,
        "input": _input_view(wf.input),
        "output": _json_or_none(wf.output),
        "error": _json_or_none(wf.error),
        "created_at": iso(wf.created_at),
        "updated_at": iso(wf.updated_at),
        "wake_at": iso(wf.wake_at) if wf.status in ("SLEEPING", "WAITING") else None,
        "waiting_for": wf.waiting_for if wf.status == "WAITING" else None,
        "blocked_on": wf.blocked_on,
        "queue": wf.queue,
        "parent_id": wf.parent_id,
        "tags": dict(tags or {}),
    }


def summaries(store: Store, rows: list[WorkflowRow]) -> list[dict[str, Any]]:
    """The listed rows as users see them, with their tags (one read for the page)."""
    tags = listing.tags_for(store, [r.id for r in rows])
    return [workflow_summary(r, tags.get(r.id)) for r in rows]


def op_view(op: OpRow, attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One operation; ``attempts``: its failed attempts (``store.attempts.load``), shown as
    ``history`` with, for a step waiting to retry, ``next_retry_at``."""
    history = [{"attempt": a["attempt"], "error": _json_or_none(a["error"]),
                "finished_at": iso(a["finished_at"]), "retry_at": iso(a["retry_at"])}
               for a in attempts or []]
    retry_at = history[-1]["retry_at"] if history and op.status == "RUNNING" else None
    return {
        "seq": op.seq,
        "kind": op.kind,
        "name": op.name,
        "status": op.status,
        "attempts": op.attempts,
        "output": _json_or_none(op.output),
        "error": _json_or_none(op.error),
        "started_at": iso(op.started_at),
        "finished_at": iso(op.finished_at),
        "history": history,
        "next_retry_at": retry_at,
    }


def workflow_detail(wf: WorkflowRow, ops: list[OpRow], tags: dict[str, str] | None = None,
                    attempts: dict[int, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    view = workflow_summary(wf, tags)
    view["steps"] = [op_view(op, (attempts or {}).get(op.seq)) for op in ops]
    return view
