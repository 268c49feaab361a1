"""`edge` management commands: fork, queues (and `edge list --queue`), schedules, prune.

Registered on the typer app of edge/cli.py (which imports this module last); they
reuse its options declared once (``--url``/``EDGE_URL``, ``--api-token``,
``--api-token-file``) and
its error handling: every failure is one `error:` line, a `hint:` line and the
documented exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from edge import cli_inspect as out
from edge.cli import (
    DEFAULT_URL,
    JsonOpt,
    TokenFileOpt,
    TokenOpt,
    UrlOpt,
    _client,
    _echo_json,
    app,
)
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
    api_token_file: TokenFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Start a new workflow with ID's input, reusing its checkpoints before --from-step;
    prints the new id alone on stdout."""
    handle = _client(url, api_token, api_token_file).fork(id, from_step, new_id)
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
    from edge.views import summaries

    store = Store.inspect(Path(data_dir) / DB_NAME)
    try:
        (d,) = store_queues.depths(store, queue)
        rows = []
        for st in ("RUNNING", "SLEEPING", "WAITING", "PENDING"):
            rows.extend(store.list_workflows(status=st, queue=queue, limit=limit)[0])
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        shown = summaries(store, rows[:limit])
    finally:
        store.close()
    return {"queues": [{"name": queue, "concurrency": None, "rate": None,
                        "waiting": d.waiting, "active": d.active}],
            "workflows": shown}


@app.command()
def queues(
    action: Annotated[str, typer.Argument(
        help="list, or priority ID N.", show_default=False)] = "list",
    id: Annotated[str | None, typer.Argument(
        help="The queued workflow (for priority).", show_default=False)] = None,
    n: Annotated[str | None, typer.Argument(
        help="The new priority, a whole number (higher is admitted first).",
        show_default=False)] = None,
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
) -> None:
    """Queues with their limits and depth; `edge queues priority ID N` re-prioritises a
    workflow still waiting for a slot."""
    if action == "priority":
        if id is None or n is None:
            raise UsageError("`edge queues priority` needs the workflow ID and the priority N",
                             "e.g. edge queues priority o-9 10")
        try:
            prio = int(n)
        except ValueError:
            raise UsageError(f"priority {n!r} is not a whole number",
                             "e.g. edge queues priority o-9 10") from None
        res = _client(url, api_token, api_token_file).set_priority(id, prio)
        if json_:
            _echo_json(res)
        else:
            print(f"workflow {res['id']} on queue {res['queue']}: priority {res['priority']}")
        return
    if action != "list" or id is not None:
        raise UsageError(f"unknown action {action!r}" if action != "list" else
                         "`edge queues list` takes no other argument",
                         "edge queues, or edge queues priority ID N")
    info = _client(url, api_token, api_token_file).queues()
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
    api_token_file: TokenFileOpt = None,
) -> None:
    """Cron schedules: `edge schedules list`, `edge schedules pause|resume NAME`."""
    client = _client(url, api_token, api_token_file)
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
    api_token_file: TokenFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Delete finished workflows (and their steps, events, values) older than a duration."""
    from edge.config import parse_duration

    seconds = parse_duration(finished_before, "--finished-before")
    res = _client(url, api_token, api_token_file).prune(seconds)
    if json_:
        _echo_json(res)
        return
    print(f"pruned {res['deleted']} workflows that finished before {res['cutoff']}")
