"""The `edge` CLI's readable output: the workflow list, one workflow's timeline,
the node's (or a file's) status, a queue's line, and --json.

Invariants:
- the renderers take the very JSON objects the HTTP API serves (edge/views.py) and
  ``edge ... --data-dir`` builds (inspect.py), so a restored copy prints what the
  live node printed; a field newer than a renderer is shown, not hidden;
- ``--json`` output is the API's object, unchanged (``echo_json``);
- every error goes through ``print_error``: `error:`/`hint:` lines on stderr, or under
  ``--json`` one JSON object on one line, ``{"error": {"code", "message", "hint"}}``,
  the shape the HTTP API answers with;
- the characters are the same on a terminal and in a pipe; only colour and the
  clipping of the free-text last column depend on the terminal (text.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from edge.cli.text import (
    BOLD,
    DIM,
    GREEN,
    RED,
    STATUS_SGR,
    YELLOW,
    at_or_now,
    clip,
    cut,
    dumps,
    duration,
    paint,
    parse_time,
    relative,
    safe,
    seconds_between,
    short_time,
    table,
    term_width,
    use_color,
)


def json_requested(argv: Sequence[str] | None = None) -> bool:
    """Whether the command line asks for ``--json`` (then its errors are JSON too)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" in args:
        args = args[: args.index("--")]  # what follows is an argument, not an option
    return "--json" in args


def print_error(code: str, message: str, hint: str = "", *,
                as_json: bool | None = None) -> None:
    """One error on stderr: `error: ...` and `hint: ...`, or, under ``--json``, the JSON
    object the API answers with, on one line."""
    sys.stdout.flush()
    if as_json if as_json is not None else json_requested():
        text = json.dumps({"error": {"code": code, "message": message, "hint": hint}},
                          ensure_ascii=False)
        print(text.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)
        return
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def echo_json(obj: Any) -> None:
    """``--json``: the object on stdout, indented, non-ASCII as is."""
    print(dumps(obj))


def queue_line(q: dict[str, Any]) -> str:
    """``queue NAME: W waiting, A active, concurrency C[, rate ...]``."""
    limit = q.get("concurrency")
    rate = q.get("rate")
    parts = [f"queue {q['name']}: {q['waiting']} waiting, {q['active']} active",
             f"concurrency {limit if limit is not None else 'unlimited'}"]
    if rate:
        parts.append(f"rate {rate['limit']} per {rate['period']:g} s")
    if q.get("hold_slot_while_parked"):
        parts.append("slots held while parked")
    if not q.get("declared", True):
        parts.append("not declared in the app")
    return ", ".join(parts)


def _plain(_: str) -> str:
    return ""


def _status_sgr(cell: str) -> str:
    return STATUS_SGR.get(cell.strip(), "")


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
               f"({relative(w.get('wake_at'), now)})"
    if st == "FAILED" and w.get("error") is not None:
        return _error_text(w["error"])
    if st == "PENDING" and w.get("queue"):
        return f"queued on {w['queue']}"
    return ""


def _note_sgr(cell: str) -> str:
    if cell.startswith("blocked"):
        return RED
    return DIM if cell.startswith(("waiting", "sleeping", "queued")) else RED


def format_list(page: dict[str, Any], *, color: bool | None = None, width: int | None = None,
                now: datetime | None = None) -> str:
    """``ID WORKFLOW STATUS UPDATED`` and, unheaded, what a workflow waits for or its error."""
    color = use_color() if color is None else color
    width = term_width(color) if width is None else width
    at = at_or_now(now)
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
                    f"({relative(view['wake_at'], now)})"
        return line
    if st == "SLEEPING":
        return f"sleeping until {short_time(view.get('wake_at'))} " \
               f"({relative(view.get('wake_at'), now)})"
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
        started = parse_time(start)
        if end is None and s.get("status") == "RUNNING" and started is not None:
            took = duration((now - started).total_seconds()) + " so far"
        else:
            took = duration(seconds_between(start, end))
        offset = seconds_between(t0, start)
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
    width = term_width(color) if width is None else width
    at = at_or_now(now)
    inp = view.get("input") or {}

    def field(label: str, value: str, sgr: str = "") -> str:
        return f"{label + ':':<11}" + paint(value, sgr, color)

    lines = [
        field("id", safe(view["id"]), BOLD),
        field("workflow", safe(view["workflow"])),
        field("status", view["status"], STATUS_SGR.get(view["status"], "")),
    ]
    state = _state_line(view, at)
    if state:
        lines.append(field("state", safe(state), RED if view.get("blocked_on") else ""))
    if isinstance(inp, dict):
        lines.append(field("input", f"args={clip(json.dumps(inp.get('args', [])))} "
                                    f"kwargs={clip(json.dumps(inp.get('kwargs', {})))}"))
    else:  # a placeholder for an input that could not be rendered (edge/views.py)
        lines.append(field("input", clip(str(inp))))
    if view.get("output") is not None:
        lines.append(field("output", clip(json.dumps(view["output"]), 400)))
    if view.get("error") is not None:
        lines.append(field("error", clip(_error_text(view["error"]), 1000), RED))
    if view.get("parent_id"):
        lines.append(field("parent", safe(view["parent_id"])))
    if view.get("queue"):
        lines.append(field("queue", safe(view["queue"])))
    if view.get("tags"):
        lines.append(field("tags", safe(" ".join(f"{k}={v}" for k, v in view["tags"].items()))))
    created = view.get("created_at")
    lines.append(field("created", f"{short_time(created)} ({relative(created, at)})"))
    lines.append(field("updated", short_time(view.get("updated_at"))))
    if view["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
        lines.append(field("took", duration(seconds_between(created, view.get("updated_at")))))
    steps = _step_rows(view, at)
    lines.append("")
    if not steps:
        lines.append("no steps recorded yet")
        return "\n".join(lines)
    header = ["SEQ", "KIND", "NAME", "STATUS", "ATTEMPTS", "AT", "DURATION", "ERROR"]
    if not any(r[-1] for r in steps):
        header, steps = header[:-1], [r[:-1] for r in steps]

    def attempts_sgr(cell: str) -> str:
        return YELLOW if cell.strip() not in ("", "1", "0") else ""

    lines.append(table(header, steps, color=color, width=width, styles=[
        _plain, _plain, _plain, _status_sgr, attempts_sgr, _plain, _plain,
        lambda c: RED if c else ""]))
    history = [(s, a) for s in view.get("steps") or [] for a in s.get("history") or []]
    if history:
        lines.append("")
        lines.append("failed attempts:")
        for s, a in history:
            retry = f", retry at {short_time(a['retry_at'])}" if a.get("retry_at") else ""
            lines.append(safe(f"  seq {s['seq']} {s['name']} attempt {a['attempt']} "
                              f"at {short_time(a['finished_at'])}{retry}: "
                              f"{clip(_error_text(a['error']), 300)}"))
    for s in view.get("steps") or []:
        if s.get("next_retry_at"):
            lines.append(safe(f"next retry of seq {s['seq']} {s['name']}: "
                              f"{short_time(s['next_retry_at'])} "
                              f"({relative(s['next_retry_at'], at)})"))
    return "\n".join(lines)


def _counts_line(counts: dict[str, int], color: bool = False) -> str:
    total = sum(int(v) for v in counts.values())
    parts = [paint(f"{k} {v}", STATUS_SGR.get(k, "") if v else DIM, color)
             for k, v in counts.items()]
    return f"{total} total: " + "  ".join(parts)


def _replication_lines(rep: dict[str, Any], color: bool, now: datetime) -> list[str]:
    rest = dict(rep)

    def take(key: str) -> Any:
        return rest.pop(key, None)

    def sub(label: str, value: str, sgr: str = "") -> str:
        return f"  {label + ':':<10} " + paint(safe(value), sgr, color)

    replica, epoch = take("replica"), take("epoch")
    lines = [f"{'replication:':<13}{safe(replica or '-')}"
             + (f" (epoch {epoch})" if epoch is not None else "")]
    holding, lease = take("holding_lease"), take("lease")
    if holding:
        lines.append(sub("lease", "held by this node", GREEN))
    elif isinstance(lease, dict) and lease.get("holder"):
        lines.append(sub("lease", f"held by {lease['holder']} (epoch {lease.get('epoch')}); "
                                  "this node stands by", YELLOW))
    else:
        lines.append(sub("lease", "not held", YELLOW))
    lag = take("lag_seconds")
    if isinstance(lag, (int, float)):
        lines.append(sub("lag", "0 s (caught up)" if lag <= 0 else
                         f"{duration(float(lag))} (the oldest commit not yet in the replica)",
                         GREEN if lag <= 0 else YELLOW if lag < 60 else RED))
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
                    f"({relative(when.isoformat(), now)})"
        elif up:
            text += ", no sync yet"
        lines.append(sub("sidecar", text, GREEN if up else RED))
        if sidecar.get("last_error"):
            lines.append(sub("error", cut(safe(sidecar["last_error"]), 200), RED))
    elif sidecar is None and "sidecar" in rep:
        lines.append(sub("sidecar", "external (not supervised by this node)"))
    fenced = take("fenced")
    lines.append(sub("fenced", safe(fenced) if fenced else "no", RED if fenced else ""))
    blocked = take("blocked_on_replication")
    if blocked:
        lines.append(sub("blocked", f"{blocked} step(s) wait for the replica", YELLOW))
    restored = take("restored_from_epoch")
    if restored is not None:
        lines.append(sub("restored", f"from epoch {restored}"))
    drill = take("drill")
    if isinstance(drill, dict):
        lines.append(_drill_line(drill, sub, now))
    for k, v in rest.items():  # anything newer than this renderer: shown, not hidden
        lines.append(sub(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v)))
    return lines


def _drill_line(drill: dict[str, Any], sub: Callable[..., str], now: datetime) -> str:
    """The last restore drill of the replica (edge/replica_drills.py's status block)."""
    last = drill.get("last")
    if not isinstance(last, dict):
        return sub("drill", f"none yet (every {duration(float(drill.get('interval') or 0))})")
    when = datetime.fromtimestamp(float(last.get("finished_at") or 0), UTC)
    at = f"{relative(when.isoformat(), now)}, epoch {last.get('epoch')}"
    if last.get("ok"):
        return sub("drill", f"verified TXID {last.get('txid_hex')} ({at}, "
                            f"{float(last.get('seconds') or 0):.1f} s)", GREEN)
    return sub("drill", f"FAILED {last.get('kind')}: {cut(str(last.get('detail')), 160)} "
                        f"({at})", RED if last.get("kind") != "no_replica" else YELLOW)


def format_status(st: dict[str, Any], *, color: bool | None = None,
                  now: datetime | None = None) -> str:
    color = use_color() if color is None else color
    at = at_or_now(now)

    def field(label: str, value: str, sgr: str = "") -> str:
        return f"{label + ':':<13}" + paint(value, sgr, color)

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
                  GREEN if ready else YELLOW),
            field("leader", "yes" if st.get("leader") else "no",
                  GREEN if st.get("leader") else YELLOW),
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
                                     f"{safe(damage.get('hint'))})", RED))
    rep = st.get("replication")
    if isinstance(rep, dict) and rep.get("source") == "file":
        if rep.get("replica"):
            lines.append(field("replication", f"{safe(rep['replica'])} (epoch {rep['epoch']}; "
                               "from the node's last sidecar config; lag and lease: ask the "
                               "running node with `edge status`)"))
        else:
            lines.append(field("replication", "not recorded in this directory (an external "
                               "sidecar, or never replicated): ask the running node with "
                               "`edge status`", YELLOW))
    elif not rep:
        lines.append(field("replication", "none (no --replica: losing this disk loses every "
                                          "workflow)", YELLOW))
    elif isinstance(rep, dict):
        lines += _replication_lines(rep, color, at)
    else:
        lines.append(field("replication", safe(rep)))
    return "\n".join(lines)
