"""The CLI's readable output, and read-only inspection of a data directory.

Invariants:
- inspection opens ``<data-dir>/edge.db`` through ``Store.inspect`` (read-only,
  never migrates) and builds the very JSON shapes the HTTP API serves
  (edge/views.py), so ``edge show --data-dir`` of a restored copy prints what
  ``edge show`` of the live node printed;
- text output is plain columns (no colour, no box drawing): it survives pipes,
  logs and ``grep``; ``--json`` output is the API's object, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.config import DB_NAME
from edge.errors import NotFound, UsageError

# ---- read-only inspection ----------------------------------------------------------


@contextmanager
def _inspect(data_dir: Path) -> Iterator[Any]:
    from edge.store import Store

    store = Store.inspect(Path(data_dir) / DB_NAME)
    try:
        yield store
    finally:
        store.close()


def check_status_filter(status: str | None) -> str | None:
    from edge.store import WORKFLOW_STATUSES

    if status is None:
        return None
    up = status.strip().upper()
    if up not in WORKFLOW_STATUSES:
        raise UsageError(f"--status: unknown status {status!r}",
                         f"one of {', '.join(WORKFLOW_STATUSES)}")
    return up


def list_file(data_dir: Path, status: str | None, workflow: str | None,
              limit: int) -> dict[str, Any]:
    from edge.views import workflow_summary

    with _inspect(data_dir) as store:
        rows, nxt = store.list_workflows(status=check_status_filter(status), workflow=workflow,
                                         limit=limit)
        return {"workflows": [workflow_summary(r) for r in rows], "next_cursor": nxt}


def show_file(data_dir: Path, wid: str) -> dict[str, Any]:
    from edge.views import workflow_detail

    with _inspect(data_dir) as store:
        row = store.get_workflow(wid)
        if row is None:
            raise NotFound(f"no workflow with id {wid!r} in {Path(data_dir) / DB_NAME}",
                           f"list workflows with: edge list --data-dir {data_dir}")
        out: dict[str, Any] = workflow_detail(row, store.load_ops(wid))
        return out


def status_file(data_dir: Path) -> dict[str, Any]:
    from edge.store import WORKFLOW_STATUSES

    data_dir = Path(data_dir)
    with _inspect(data_dir) as store:
        counts = store.counts()
        version = store.schema_version()
    try:
        node_id: str | None = (data_dir / "node-id").read_text().strip() or None
    except OSError:
        node_id = None
    return {
        "source": "file",
        "data_dir": str(data_dir),
        "database": str(data_dir / DB_NAME),
        "schema_version": version,
        "node_id": node_id,
        "workflows": {s: counts.get(s, 0) for s in WORKFLOW_STATUSES},
        "replication": None,
    }


# ---- text output -------------------------------------------------------------------


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


def short_time(iso: str | None) -> str:
    """``2026-01-02T03:04:05.678901Z`` -> ``2026-01-02 03:04:05Z``."""
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19] + "Z"


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def _clip(text: str, width: int = 100) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
             for r in [header, *rows]]
    return "\n".join(lines)


def format_list(page: dict[str, Any]) -> str:
    rows = [[w["id"], w["workflow"], w["status"], short_time(w.get("updated_at"))]
            for w in page["workflows"]]
    return table(["ID", "WORKFLOW", "STATUS", "UPDATED"], rows)


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        return f"{err.get('type', '?')}: {err.get('message', '')}"
    return json.dumps(err)


def _state_line(view: dict[str, Any]) -> str | None:
    st = view["status"]
    if view.get("blocked_on"):
        return f"blocked: {view['blocked_on']}"
    if st == "WAITING":
        what = view.get("waiting_for")
        line = f"waiting for {what}" if what else "waiting"
        if view.get("wake_at"):
            line += f" (times out at {short_time(view['wake_at'])})"
        return line
    if st == "SLEEPING":
        return f"sleeping until {short_time(view.get('wake_at'))}"
    return None


def format_show(view: dict[str, Any]) -> str:
    inp = view.get("input") or {}
    lines = [
        f"id:        {view['id']}",
        f"workflow:  {view['workflow']}",
        f"status:    {view['status']}",
    ]
    state = _state_line(view)
    if state:
        lines.append(f"state:     {state}")
    lines.append(f"input:     args={_clip(json.dumps(inp.get('args', [])))} "
                 f"kwargs={_clip(json.dumps(inp.get('kwargs', {})))}")
    if view.get("output") is not None:
        lines.append(f"output:    {_clip(json.dumps(view['output']))}")
    if view.get("error") is not None:
        lines.append(f"error:     {_clip(_error_text(view['error']))}")
    if view.get("parent_id"):
        lines.append(f"parent:    {view['parent_id']}")
    lines.append(f"created:   {short_time(view.get('created_at'))}")
    lines.append(f"updated:   {short_time(view.get('updated_at'))}")
    steps = view.get("steps") or []
    lines.append("")
    if not steps:
        lines.append("no steps recorded yet")
        return "\n".join(lines)
    rows = []
    for s in steps:
        rows.append([str(s["seq"]), s["kind"], s["name"], s["status"], str(s["attempts"]),
                     duration(_seconds_between(s.get("started_at"), s.get("finished_at")))])
    lines.append(table(["SEQ", "KIND", "NAME", "STATUS", "ATTEMPTS", "DURATION"], rows))
    for s in steps:
        if s.get("error") is not None:
            lines.append(f"  seq {s['seq']} error: {_clip(_error_text(s['error']))}")
    return "\n".join(lines)


def _counts_line(counts: dict[str, int]) -> str:
    return "  ".join(f"{k} {v}" for k, v in counts.items())


def format_status(st: dict[str, Any]) -> str:
    lines: list[str] = []
    if st.get("source") == "file":
        lines += [f"database:    {st['database']} (read-only inspection)",
                  f"schema:      version {st['schema_version']}",
                  f"node:        {st.get('node_id') or '-'}"]
    else:
        lines += [
            f"node:        {st.get('node_id') or '-'} (app {st.get('app')}, pid {st.get('pid')})",
            f"state:       {st.get('state')}" + ("" if st.get("ready") else " (not ready)"),
            f"leader:      {'yes' if st.get('leader') else 'no'}",
            f"data dir:    {st.get('data_dir')}",
            f"durability:  {st.get('durability')}",
        ]
        w = st.get("workers")
        if isinstance(w, dict):
            lines.append(f"workers:     {w.get('size')} (busy {w.get('busy')}, "
                         f"queued {w.get('queued')})")
    lines.append(f"workflows:   {_counts_line(st.get('workflows') or {})}")
    rep = st.get("replication")
    if not rep:
        lines.append("replication: none (no --replica: losing this disk loses every workflow)")
    elif isinstance(rep, dict):
        lines.append("replication:")
        for k, v in rep.items():
            lines.append(f"  {k}: {v if not isinstance(v, (dict, list)) else json.dumps(v)}")
    else:
        lines.append(f"replication: {rep}")
    return "\n".join(lines)
