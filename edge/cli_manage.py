"""`edge` management commands: fork, queues (and `edge list --queue`), schedules, prune.

Registered on the typer app of edge/cli.py (which imports this module last); they
reuse its options declared once (``--url``/``EDGE_URL``, ``--api-token``) and
its error handling: every failure is one `error:` line, a `hint:` line and the
documented exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from edge import cli_inspect as out
from edge.cli import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, _client, _echo_json, app
from edge.errors import UsageError


@app.command()
def fork(
    id: Annotated[str, typer.Argument(help="The workflow to fork.", show_default=False)],
    from_step: Annotated[int, typer.Option(
        "--from-step", show_default=False,
        help="The first seq to run again; checkpoints before it are reused.")],
    new_id: Annotated[str | None, typer.Option(
        "--id", show_default=False, help="The new workflow's id (default: ID:fork:RANDOM).")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Start a new workflow with ID's input, reusing its checkpoints before --from-step;
    prints the new id alone on stdout."""
    handle = _client(url, api_token).fork(id, from_step, new_id)
    if json_:
        _echo_json({"id": handle.id, "forked_from": id, "from_step": from_step})
    else:
        print(handle.id)


def _queue_line(q: dict[str, Any]) -> str:
    limit = q.get("concurrency")
    rate = q.get("rate")
    parts = [f"queue {q['name']}: {q['waiting']} waiting, {q['active']} active",
             f"concurrency {limit if limit is not None else 'unlimited'}"]
    if rate:
        parts.append(f"rate {rate['limit']} per {rate['period']:g} s")
    if not q.get("declared", True):
        parts.append("not declared in the app")
    return ", ".join(parts)


def list_queue(queue: str, status: str | None, workflow: str | None, limit: int,
                json_: bool, url: str, token: str | None, data_dir: Path | None) -> None:
    if data_dir is not None:
        info = _queue_file(data_dir, queue, limit)
    else:
        info = _client(url, token).queues(queue, limit)
    rows = [w for w in info["workflows"] if (status is None or w["status"] == status)
            and (workflow is None or w["workflow"] == workflow)]
    (q,) = info["queues"]
    if json_:
        _echo_json({"workflows": rows, "queue": q})
        return
    print(_queue_line(q))
    if rows:
        print(out.format_list({"workflows": rows}))


def _queue_file(data_dir: Path, queue: str, limit: int) -> dict[str, Any]:
    """A queue's depth and live workflows from a database file, read-only."""
    from edge.config import DB_NAME
    from edge.store import Store
    from edge.store import queues as store_queues
    from edge.views import workflow_summary

    store = Store.inspect(Path(data_dir) / DB_NAME)
    try:
        (d,) = store_queues.depths(store, queue)
        rows = []
        for st in ("RUNNING", "SLEEPING", "WAITING", "PENDING"):
            rows.extend(store.list_workflows(status=st, queue=queue, limit=limit)[0])
    finally:
        store.close()
    rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return {"queues": [{"name": queue, "concurrency": None, "rate": None,
                        "waiting": d.waiting, "active": d.active}],
            "workflows": [workflow_summary(r) for r in rows[:limit]]}


@app.command()
def queues(
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
) -> None:
    """Queues with their limits and depth (waiting for a slot, holding one)."""
    info = _client(url, api_token).queues()
    if json_:
        _echo_json(info)
        return
    if not info["queues"]:
        print("no queues", file=sys.stderr)
    for q in info["queues"]:
        print(_queue_line(q))


@app.command()
def schedules(
    action: Annotated[str, typer.Argument(
        help="list, pause or resume.", show_default=False)] = "list",
    name: Annotated[str | None, typer.Argument(
        help="The schedule (for pause and resume).", show_default=False)] = None,
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
) -> None:
    """Cron schedules: `edge schedules list`, `edge schedules pause|resume NAME`."""
    client = _client(url, api_token)
    if action == "list":
        if name is not None:
            raise UsageError(f"`edge schedules list` takes no NAME (got {name!r})",
                             "edge schedules list")
        rows = client.schedules()
        if json_:
            _echo_json({"schedules": rows})
        elif not rows:
            print("no schedules", file=sys.stderr)
        else:
            print(out.table(["NAME", "WORKFLOW", "CRON", "TZ", "STATE", "LAST", "NEXT"], [
                [r["name"], r["workflow"] or "-", r["cron"] or "-", r["tz"] or "-",
                 "paused" if r["paused"] else ("active" if r["in_code"] else "not in code"),
                 out.short_time(r["last_tick"]), out.short_time(r["next_tick"])]
                for r in rows]))
        return
    if action not in ("pause", "resume"):
        raise UsageError(f"unknown action {action!r}", "one of: list, pause NAME, resume NAME")
    if not name:
        raise UsageError(f"`edge schedules {action}` needs the schedule's NAME",
                         "see: edge schedules list")
    view = client.pause_schedule(name) if action == "pause" else client.resume_schedule(name)
    if json_:
        _echo_json(view)
    else:
        print(f"schedule {name} {'paused' if view['paused'] else 'resumed'}")


@app.command()
def prune(
    finished_before: Annotated[str, typer.Option(
        "--finished-before", show_default=False,
        help="Delete workflows that ended longer ago than this: 7d, 12h, 30m, 45s or seconds.")],
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Delete finished workflows (and their steps, events, values) older than a duration."""
    from edge.config import parse_duration

    seconds = parse_duration(finished_before, "--finished-before")
    res = _client(url, api_token).prune(seconds)
    if json_:
        _echo_json(res)
        return
    print(f"pruned {res['deleted']} workflows that finished before {res['cutoff']}")
