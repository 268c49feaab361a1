"""The CLI's readable output, and read-only inspection of a data directory.

Invariants:
- inspection opens ``<data-dir>/edge.db`` through ``Store.inspect`` (read-only,
  never migrates) and builds the very JSON shapes the HTTP API serves
  (edge/views.py), so ``edge show --data-dir`` of a restored copy prints what
  ``edge show`` of the live node printed;
- text output is plain columns (no box drawing): it survives pipes, logs and
  ``grep``; colour only on a terminal, and then the same characters; user data
  reaches the terminal with control characters escaped; ``--json`` output is the
  API's object, unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.config import DB_NAME
from edge.errors import NotFound, UsageError

# ---- read-only inspection ----------------------------------------------------------


@contextmanager
def _inspect(data_dir: Path) -> Iterator[Any]:
    from edge.store import Store, integrity

    # A file inspected is one we distrust (a copy, a crashed node's): its structure
    # is checked first (~0.1 s per 100 MB), so a damaged index answers exit 4, not a
    # silently shorter list.
    integrity.check_before_trust(Path(data_dir) / DB_NAME, force=True)
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
              limit: int, filters: dict[str, Any] | None = None,
              cursor: str | None = None) -> dict[str, Any]:
    """``filters``: the store's tags / since / until / id_prefix, already checked."""
    from edge.views import summaries

    with _inspect(data_dir) as store:
        rows, nxt = store.list_workflows(status=check_status_filter(status), workflow=workflow,
                                         limit=limit, cursor=cursor, **(filters or {}))
        return {"workflows": summaries(store, rows), "next_cursor": nxt}


PAGE = 1000  # the node's largest page (GET /v1/workflows?limit=)


def pages(fetch: Callable[[int, str | None], dict[str, Any]], limit: int,
          cursor: str | None) -> dict[str, Any]:
    """``limit`` rows from ``cursor`` on, fetched in pages of at most PAGE; ``next_cursor``
    continues after the last row returned (None when there is nothing after it)."""
    rows: list[dict[str, Any]] = []
    nxt = cursor
    while True:
        page = fetch(min(PAGE, limit - len(rows)), nxt)
        rows.extend(page["workflows"])
        nxt = page.get("next_cursor")
        if not nxt or len(rows) >= limit:
            return {"workflows": rows, "next_cursor": nxt}


def show_file(data_dir: Path, wid: str) -> dict[str, Any]:
    from edge.views import workflow_detail

    with _inspect(data_dir) as store:
        row = store.get_workflow(wid)
        if row is None:
            raise NotFound(f"no workflow with id {wid!r} in {Path(data_dir) / DB_NAME}",
                           f"list workflows with: edge list --data-dir {data_dir}")
        out: dict[str, Any] = workflow_detail(row, store.load_ops(wid),
                                              store.tags_for([wid]).get(wid),
                                              store.load_attempts(wid))
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
        "replication": replication_file(data_dir),
    }


def replication_file(data_dir: Path) -> dict[str, Any]:
    """What a data directory says about its replica: the embedded sidecar's last config
    (``sidecar/litestream.yml``, JSON written by the node). Lag and lease are live state:
    only the running node knows them."""
    config = Path(data_dir) / "sidecar" / "litestream.yml"
    found: dict[str, Any] = {"source": "file", "config": None, "replica": None, "epoch": None}
    try:
        block = json.loads(config.read_text())["dbs"][0]["replica"]
        path = str(block["path"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return found
    base, _, tail = path.rpartition("/")
    epoch = int(tail[1:]) if tail[:1] == "e" and tail[1:].isdigit() else None
    prefix = base if epoch is not None else path
    if block.get("type") == "file":
        url = f"file://{prefix}"
    else:
        url = f"s3://{block.get('bucket')}/{prefix}"
        extra = [f"{k}={block[k]}" for k in ("endpoint", "region") if block.get(k)]
        url += ("?" + "&".join(extra)) if extra else ""
    found.update(config=str(config), replica=url, epoch=epoch)
    return found


# ---- text output -------------------------------------------------------------------
#
# Tables are plain columns separated by two spaces. On a terminal (stdout a TTY,
# NO_COLOR unset, TERM not "dumb"; FORCE_COLOR forces it) statuses, headers and
# errors are coloured and the free-text last column is clipped to the terminal's
# width; the characters are otherwise the same, so a pipe gets exactly what the
# terminal shows minus the escape codes. User data (ids, names, errors) never
# carries a control character to the terminal: they are shown escaped.

_STATUS_SGR = {"PENDING": "", "RUNNING": "36", "SLEEPING": "35", "WAITING": "33",
               "SUCCEEDED": "32", "FAILED": "1;31", "CANCELLED": "2"}
_BOLD, _DIM, _RED, _GREEN, _YELLOW = "1", "2", "31", "32", "33"
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_SEP = "  "


def use_color(stream: Any = None) -> bool:
    """Colour for ``stream`` (stdout by default): a TTY, unless NO_COLOR or TERM=dumb."""
    env = os.environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    if env.get("TERM") == "dumb":
        return False
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _term_width(color: bool) -> int | None:
    """The terminal's width when writing to one (``color`` stands for "a terminal")."""
    if not color:
        return None
    return shutil.get_terminal_size((100, 24)).columns


def safe(text: Any) -> str:
    """``text`` with control and bidi-override characters escaped, newlines as spaces."""
    s = str(text)
    if s.isprintable():
        return s
    out = []
    for ch in s:
        code = ord(ch)
        if ch in "\n\r\t":
            out.append(" ")
        elif code in _BIDI or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _width(text: str) -> int:
    """Terminal cells of ``text`` (wide East Asian characters take two, combining none)."""
    if text.isascii():
        return len(text)
    n = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        n += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return n


def _cut(text: str, cells: int) -> str:
    """``text`` clipped to ``cells`` terminal cells, ending in ``...`` when cut."""
    if _width(text) <= cells:
        return text
    if cells <= 3:
        return "." * max(cells, 0)
    out, used = [], 0
    for ch in text:
        w = _width(ch)
        if used + w > cells - 3:
            break
        out.append(ch)
        used += w
    return "".join(out) + "..."


def _paint(text: str, sgr: str, color: bool) -> str:
    return f"\x1b[{sgr}m{text}\x1b[0m" if color and sgr and text else text


def dumps(obj: Any) -> str:
    # A lone surrogate (a row stored before the door refused them) has no UTF-8 form:
    # print it as the JSON escape \udXXXX (still valid JSON), never fail the command.
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def short_time(iso: str | None) -> str:
    """``2026-01-02T03:04:05.678901Z`` -> ``2026-01-02 03:04:05Z``."""
    if not iso:
        return "-"
    if _parse(iso) is None:  # a placeholder such as "<unrenderable: time 1e+20>": as is
        return safe(iso)
    return iso.replace("T", " ")[:19] + "Z"


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        ts = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = _parse(start), _parse(end)
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _relative(iso: str | None, now: datetime) -> str:
    """``in 14.9 min`` / ``3.00 s ago`` / ``now``."""
    ts = _parse(iso)
    if ts is None:
        return "-"
    delta = (ts - now).total_seconds()
    if abs(delta) < 0.5:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _clip(text: str, width: int = 100) -> str:
    return _cut(safe(text), width)


def table(header: list[str], rows: list[list[str]], *, color: bool = False,
          styles: list[Callable[[str], str]] | None = None, width: int | None = None,
          header_sgr: str = _BOLD) -> str:
    """Columns of ``rows`` under ``header``; ``styles[i](cell)`` is cell i's SGR code.

    With ``width``, the last column is clipped so each line fits (never below 12
    cells): it holds the free text (an error, a note)."""
    cells = [[safe(c) for c in r] for r in [header, *rows]]
    ncols = max(len(r) for r in cells)
    for r in cells:
        r.extend([""] * (ncols - len(r)))
    widths = [max(_width(r[i]) for r in cells) for i in range(ncols)]
    if width is not None and ncols > 1:
        fixed = sum(widths[:-1]) + len(_SEP) * (ncols - 1)
        room = max(12, width - fixed)
        if widths[-1] > room:
            for r in cells:
                r[-1] = _cut(r[-1], room)
            widths[-1] = room
    lines = []
    for n, r in enumerate(cells):
        parts = []
        for i, cell in enumerate(r):
            if n == 0:
                sgr = header_sgr
            elif styles is not None and i < len(styles):
                sgr = styles[i](cell)
            else:
                sgr = ""
            pad = " " * (widths[i] - _width(cell)) if i < ncols - 1 else ""
            parts.append(_paint(cell, sgr, color) + pad)
        lines.append(_SEP.join(parts).rstrip())
    return "\n".join(lines)


def _plain(_: str) -> str:
    return ""


def _status_sgr(cell: str) -> str:
    return _STATUS_SGR.get(cell.strip(), "")


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        return f"{err.get('type', '?')}: {err.get('message', '')}"
    return json.dumps(err)


def _waiting_for(what: str | None) -> str:
    if not what:
        return "waiting"
    if what.startswith("child:"):
        return f"waiting for child workflow {what[len('child:'):]}"
    return f'waiting for event "{what}"'


def _note(w: dict[str, Any], now: datetime) -> str:
    """One line on why a listed workflow is where it is."""
    st = w.get("status")
    if w.get("blocked_on"):
        return f"blocked: {w['blocked_on']}"
    if st == "WAITING":
        return _waiting_for(w.get("waiting_for"))
    if st == "SLEEPING":
        return f"sleeping until {short_time(w.get('wake_at'))} " \
               f"({_relative(w.get('wake_at'), now)})"
    if st == "FAILED" and w.get("error") is not None:
        return _error_text(w["error"])
    if st == "PENDING" and w.get("queue"):
        return f"queued on {w['queue']}"
    return ""


def _note_sgr(cell: str) -> str:
    if cell.startswith("blocked"):
        return _RED
    return _DIM if cell.startswith(("waiting", "sleeping", "queued")) else _RED


def format_list(page: dict[str, Any], *, color: bool | None = None, width: int | None = None,
                now: datetime | None = None) -> str:
    """``ID WORKFLOW STATUS UPDATED`` and, unheaded, what a workflow waits for or its error."""
    color = use_color() if color is None else color
    width = _term_width(color) if width is None else width
    at = _now(now)
    rows = [[w["id"], w["workflow"], w["status"], short_time(w.get("updated_at")),
             _note(w, at)] for w in page["workflows"]]
    if not any(r[-1] for r in rows):
        rows = [r[:-1] for r in rows]
    return table(["ID", "WORKFLOW", "STATUS", "UPDATED"], rows, color=color, width=width,
                 styles=[_plain, _plain, _status_sgr, _plain, _note_sgr])


def _state_line(view: dict[str, Any], now: datetime) -> str | None:
    st = view["status"]
    if view.get("blocked_on"):
        return f"blocked: {view['blocked_on']}"
    if st == "WAITING":
        line = _waiting_for(view.get("waiting_for"))
        if view.get("wake_at"):
            line += f", times out at {short_time(view['wake_at'])} " \
                    f"({_relative(view['wake_at'], now)})"
        return line
    if st == "SLEEPING":
        return f"sleeping until {short_time(view.get('wake_at'))} " \
               f"({_relative(view.get('wake_at'), now)})"
    if st == "PENDING":
        return "queued: waiting for a worker" + (
            f" or a slot on queue {view['queue']}" if view.get("queue") else "")
    if st == "RUNNING":
        return "running"
    return None


def _step_rows(view: dict[str, Any], now: datetime) -> list[list[str]]:
    t0 = view.get("created_at")
    rows = []
    for s in view.get("steps") or []:
        start, end = s.get("started_at"), s.get("finished_at")
        started = _parse(start)
        if end is None and s.get("status") == "RUNNING" and started is not None:
            took = duration((now - started).total_seconds()) + " so far"
        else:
            took = duration(_seconds_between(start, end))
        offset = _seconds_between(t0, start)
        at = "-" if offset is None else "+" + duration(offset)
        err = "" if s.get("error") is None else _error_text(s["error"])
        rows.append([str(s["seq"]), s["kind"], s["name"], s["status"], str(s["attempts"]), at,
                     took, err])
    return rows


def format_show(view: dict[str, Any], *, color: bool | None = None, width: int | None = None,
                now: datetime | None = None) -> str:
    """One workflow: status, its waiting/sleeping state, input, output or error, and the
    timeline of its durable operations (``SEQ KIND NAME STATUS ATTEMPTS AT DURATION
    ERROR``; AT is the start, counted from the workflow's creation)."""
    color = use_color() if color is None else color
    width = _term_width(color) if width is None else width
    at = _now(now)
    inp = view.get("input") or {}

    def field(label: str, value: str, sgr: str = "") -> str:
        return f"{label + ':':<11}" + _paint(value, sgr, color)

    lines = [
        field("id", safe(view["id"]), _BOLD),
        field("workflow", safe(view["workflow"])),
        field("status", view["status"], _STATUS_SGR.get(view["status"], "")),
    ]
    state = _state_line(view, at)
    if state:
        lines.append(field("state", safe(state), _RED if view.get("blocked_on") else ""))
    if isinstance(inp, dict):
        lines.append(field("input", f"args={_clip(json.dumps(inp.get('args', [])))} "
                                    f"kwargs={_clip(json.dumps(inp.get('kwargs', {})))}"))
    else:  # a placeholder for an input that could not be rendered (edge/views.py)
        lines.append(field("input", _clip(str(inp))))
    if view.get("output") is not None:
        lines.append(field("output", _clip(json.dumps(view["output"]), 400)))
    if view.get("error") is not None:
        lines.append(field("error", _clip(_error_text(view["error"]), 1000), _RED))
    if view.get("parent_id"):
        lines.append(field("parent", safe(view["parent_id"])))
    if view.get("queue"):
        lines.append(field("queue", safe(view["queue"])))
    if view.get("tags"):
        lines.append(field("tags", safe(" ".join(f"{k}={v}" for k, v in view["tags"].items()))))
    created = view.get("created_at")
    lines.append(field("created", f"{short_time(created)} ({_relative(created, at)})"))
    lines.append(field("updated", short_time(view.get("updated_at"))))
    if view["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
        lines.append(field("took", duration(_seconds_between(created, view.get("updated_at")))))
    steps = _step_rows(view, at)
    lines.append("")
    if not steps:
        lines.append("no steps recorded yet")
        return "\n".join(lines)
    header = ["SEQ", "KIND", "NAME", "STATUS", "ATTEMPTS", "AT", "DURATION", "ERROR"]
    if not any(r[-1] for r in steps):
        header, steps = header[:-1], [r[:-1] for r in steps]

    def attempts_sgr(cell: str) -> str:
        return _YELLOW if cell.strip() not in ("", "1", "0") else ""

    lines.append(table(header, steps, color=color, width=width, styles=[
        _plain, _plain, _plain, _status_sgr, attempts_sgr, _plain, _plain,
        lambda c: _RED if c else ""]))
    history = [(s, a) for s in view.get("steps") or [] for a in s.get("history") or []]
    if history:
        lines.append("")
        lines.append("failed attempts:")
        for s, a in history:
            retry = f", retry at {short_time(a['retry_at'])}" if a.get("retry_at") else ""
            lines.append(safe(f"  seq {s['seq']} {s['name']} attempt {a['attempt']} "
                              f"at {short_time(a['finished_at'])}{retry}: "
                              f"{_clip(_error_text(a['error']), 300)}"))
    for s in view.get("steps") or []:
        if s.get("next_retry_at"):
            lines.append(safe(f"next retry of seq {s['seq']} {s['name']}: "
                              f"{short_time(s['next_retry_at'])} "
                              f"({_relative(s['next_retry_at'], at)})"))
    return "\n".join(lines)


def _counts_line(counts: dict[str, int], color: bool = False) -> str:
    total = sum(int(v) for v in counts.values())
    parts = [_paint(f"{k} {v}", _STATUS_SGR.get(k, "") if v else _DIM, color)
             for k, v in counts.items()]
    return f"{total} total: " + "  ".join(parts)


def _replication_lines(rep: dict[str, Any], color: bool, now: datetime) -> list[str]:
    rest = dict(rep)

    def take(key: str) -> Any:
        return rest.pop(key, None)

    def sub(label: str, value: str, sgr: str = "") -> str:
        return f"  {label + ':':<10} " + _paint(safe(value), sgr, color)

    replica, epoch = take("replica"), take("epoch")
    lines = [f"{'replication:':<13}{safe(replica or '-')}"
             + (f" (epoch {epoch})" if epoch is not None else "")]
    holding, lease = take("holding_lease"), take("lease")
    if holding:
        lines.append(sub("lease", "held by this node", _GREEN))
    elif isinstance(lease, dict) and lease.get("holder"):
        lines.append(sub("lease", f"held by {lease['holder']} (epoch {lease.get('epoch')}); "
                                  "this node stands by", _YELLOW))
    else:
        lines.append(sub("lease", "not held", _YELLOW))
    lag = take("lag_seconds")
    if isinstance(lag, (int, float)):
        lines.append(sub("lag", "0 s (caught up)" if lag <= 0 else
                         f"{duration(float(lag))} (the oldest commit not yet in the replica)",
                         _GREEN if lag <= 0 else _YELLOW if lag < 60 else _RED))
    sidecar = take("sidecar")
    if isinstance(sidecar, dict):
        up = bool(sidecar.get("up"))
        text = ("up" if up else "down") + (f" (pid {sidecar['pid']})" if sidecar.get("pid")
                                           else "")
        text += f", {sidecar.get('restarts') or 0} restart(s)"
        last = sidecar.get("last_sync_at")
        if isinstance(last, (int, float)):
            when = datetime.fromtimestamp(last, UTC)
            text += f", last sync {when.strftime('%Y-%m-%d %H:%M:%SZ')} " \
                    f"({_relative(when.isoformat(), now)})"
        elif up:
            text += ", no sync yet"
        lines.append(sub("sidecar", text, _GREEN if up else _RED))
        if sidecar.get("last_error"):
            lines.append(sub("error", _cut(safe(sidecar["last_error"]), 200), _RED))
    elif sidecar is None and "sidecar" in rep:
        lines.append(sub("sidecar", "external (not supervised by this node)"))
    fenced = take("fenced")
    lines.append(sub("fenced", safe(fenced) if fenced else "no", _RED if fenced else ""))
    blocked = take("blocked_on_replication")
    if blocked:
        lines.append(sub("blocked", f"{blocked} step(s) wait for the replica", _YELLOW))
    restored = take("restored_from_epoch")
    if restored is not None:
        lines.append(sub("restored", f"from epoch {restored}"))
    for k, v in rest.items():  # anything newer than this renderer: shown, not hidden
        lines.append(sub(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v)))
    return lines


def format_status(st: dict[str, Any], *, color: bool | None = None,
                  now: datetime | None = None) -> str:
    color = use_color() if color is None else color
    at = _now(now)

    def field(label: str, value: str, sgr: str = "") -> str:
        return f"{label + ':':<13}" + _paint(value, sgr, color)

    lines: list[str] = []
    if st.get("source") == "file":
        lines += [field("database", f"{safe(st['database'])} (read-only inspection)"),
                  field("schema", f"version {st['schema_version']}"),
                  field("node", safe(st.get("node_id") or "-"))]
    else:
        ready = bool(st.get("ready"))
        lines += [
            field("node", f"{safe(st.get('node_id') or '-')} (app {safe(st.get('app'))}, "
                          f"pid {st.get('pid')})"),
            field("state", f"{st.get('state')}" + ("" if ready else " (not ready)"),
                  _GREEN if ready else _YELLOW),
            field("leader", "yes" if st.get("leader") else "no",
                  _GREEN if st.get("leader") else _YELLOW),
            field("data dir", safe(st.get("data_dir"))),
            field("durability", str(st.get("durability"))),
        ]
        w = st.get("workers")
        if isinstance(w, dict):
            lines.append(field("workers", f"{w.get('size')} (busy {w.get('busy')}, "
                                          f"queued {w.get('queued')})"))
    lines.append(field("workflows", _counts_line(st.get("workflows") or {}, color)))
    damage = st.get("damage")
    if isinstance(damage, dict):
        lines.append(field("damage", f"{safe(damage.get('message'))} (hint: "
                                     f"{safe(damage.get('hint'))})", _RED))
    rep = st.get("replication")
    if isinstance(rep, dict) and rep.get("source") == "file":
        if rep.get("replica"):
            lines.append(field("replication", f"{safe(rep['replica'])} (epoch {rep['epoch']}; "
                               "from the node's last sidecar config; lag and lease: ask the "
                               "running node with `edge status`)"))
        else:
            lines.append(field("replication", "not recorded in this directory (an external "
                               "sidecar, or never replicated): ask the running node with "
                               "`edge status`", _YELLOW))
    elif not rep:
        lines.append(field("replication", "none (no --replica: losing this disk loses every "
                                          "workflow)", _YELLOW))
    elif isinstance(rep, dict):
        lines += _replication_lines(rep, color, at)
    else:
        lines.append(field("replication", safe(rep)))
    return "\n".join(lines)
