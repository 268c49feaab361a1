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

A page of steps (``workflow_page``, the API's ``GET /v1/workflows/{id}``) lists a step's
output, error or attempt error whose stored JSON is over ``LISTED_MAX`` bytes as a
marker, ``{"truncated": true, "bytes": N, "href": ...}`` (an error keeps its ``type``
and the start of its ``message`` beside them); ``href`` serves the step in full
(``step_view``). The whole-timeline view (``workflow_detail``, ``edge show``) never
truncates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from edge.serialization import decode
from edge.store import OpRow, Store, WorkflowRow, listing

UNRENDERABLE = "<unrenderable: {}>"
LISTED_MAX = 64 * 1024  # bytes of a value's JSON above which a page of steps shows a marker
_MESSAGE_KEPT = 1000  # characters of a truncated error's message kept in the listing
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


def step_href(wid: str, seq: int) -> str:
    """The API path that serves step ``seq`` of ``wid`` in full."""
    return f"/v1/workflows/{quote(wid, safe='')}/steps/{seq}"


def _listed(text: str | None, href: str | None, error: bool = False) -> Any:
    """A stored value as a page of steps shows it: itself, or a marker when over LISTED_MAX."""
    if text is None or href is None or len(text) * 4 <= LISTED_MAX:
        return _json_or_none(text)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= LISTED_MAX:
        return _json_or_none(text)
    marker: dict[str, Any] = {"truncated": True, "bytes": size, "href": href}
    if not error:
        return marker
    value = _json_or_none(text)
    if not isinstance(value, dict):
        return {"type": "unknown", "message": "", **marker}
    return {"type": str(value.get("type", "unknown")),
            "message": str(value.get("message", ""))[:_MESSAGE_KEPT], **marker}


def op_view(op: OpRow, attempts: list[dict[str, Any]] | None = None,
            href: str | None = None) -> dict[str, Any]:
    """One operation; ``attempts``: its failed attempts (``store.attempts.load``), shown as
    ``history`` with, for a step waiting to retry, ``next_retry_at``. ``href``: a listing's
    link to the full step, given when values over LISTED_MAX are to be truncated."""
    history = [{"attempt": a["attempt"], "error": _listed(a["error"], href, error=True),
                "finished_at": iso(a["finished_at"]), "retry_at": iso(a["retry_at"])}
               for a in attempts or []]
    retry_at = history[-1]["retry_at"] if history and op.status == "RUNNING" else None
    return {
        "seq": op.seq,
        "kind": op.kind,
        "name": op.name,
        "status": op.status,
        "attempts": op.attempts,
        "output": _listed(op.output, href),
        "error": _listed(op.error, href, error=True),
        "started_at": iso(op.started_at),
        "finished_at": iso(op.finished_at),
        "history": history,
        "next_retry_at": retry_at,
    }


def workflow_detail(wf: WorkflowRow, ops: list[OpRow], tags: dict[str, str] | None = None,
                    attempts: dict[int, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The whole timeline, every value in full (``edge show``)."""
    view = workflow_summary(wf, tags)
    view["steps"] = [op_view(op, (attempts or {}).get(op.seq)) for op in ops]
    return view


def workflow_page(wf: WorkflowRow, ops: list[OpRow], tags: dict[str, str] | None,
                  attempts: dict[int, list[dict[str, Any]]], next_cursor: int | None
                  ) -> dict[str, Any]:
    """One page of the timeline (the API): large values as markers, and the cursor of the
    next page (``next_steps_cursor``, null at the end)."""
    view = workflow_summary(wf, tags)
    view["steps"] = [op_view(op, attempts.get(op.seq), step_href(wf.id, op.seq)) for op in ops]
    view["next_steps_cursor"] = next_cursor
    return view
