"""`edge fork | queues | schedules | prune`: managing a running node's workflows,
queues and schedules over HTTP (edge.Client).

Invariants:
- thin: each command parses its arguments, makes one Client call and prints the answer
  (render.py, text.py); `--json` prints the API's object;
- the connection options (--url/EDGE_URL, --api-token, --api-token-file) are the
  shared ones of options.py; every failure is one `error:` line, a `hint:` line and
  the documented exit code (edge/errors.py), raised as an EdgeError for main to print.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from edge.cli.options import DEFAULT_URL, JsonOpt, TokenFileOpt, TokenOpt, UrlOpt, client
from edge.cli.render import echo_json, queue_line
from edge.cli.text import short_time, table
from edge.errors import UsageError


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
    handle = client(url, api_token, api_token_file).fork(id, from_step, new_id)
    if json_:
        echo_json({"id": handle.id, "forked_from": id, "from_step": from_step})
    else:
        print(handle.id)


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
        res = client(url, api_token, api_token_file).set_priority(id, prio)
        if json_:
            echo_json(res)
        else:
            print(f"workflow {res['id']} on queue {res['queue']}: priority {res['priority']}")
        return
    if action != "list" or id is not None:
        raise UsageError(f"unknown action {action!r}" if action != "list" else
                         "`edge queues list` takes no other argument",
                         "edge queues, or edge queues priority ID N")
    info = client(url, api_token, api_token_file).queues()
    if json_:
        echo_json(info)
        return
    if not info["queues"]:
        print("no queues", file=sys.stderr)
    for q in info["queues"]:
        print(queue_line(q))


def schedules(
    action: Annotated[str, typer.Argument(
        help="list, pause, resume or trigger.", show_default=False)] = "list",
    name: Annotated[str | None, typer.Argument(
        help="The schedule (for pause, resume and trigger).", show_default=False)] = None,
    backfill_from: Annotated[str | None, typer.Option(
        "--backfill-from", show_default=False,
        help="With trigger: start every tick since this time (ISO 8601, epoch seconds or "
             "an age such as 2d; at most 1,000) instead of one run now.")] = None,
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
) -> None:
    """Cron schedules: `edge schedules list`, `edge schedules pause|resume NAME`,
    `edge schedules trigger NAME [--backfill-from T]`."""
    remote = client(url, api_token, api_token_file)
    if backfill_from is not None and action != "trigger":
        raise UsageError("--backfill-from goes with `edge schedules trigger NAME`",
                         "edge schedules trigger NAME --backfill-from 2026-05-01T00:00:00Z")
    if action == "list":
        if name is not None:
            raise UsageError(f"`edge schedules list` takes no NAME (got {name!r})",
                             "edge schedules list")
        rows = remote.schedules()
        if json_:
            echo_json({"schedules": rows})
        elif not rows:
            print("no schedules", file=sys.stderr)
        else:
            print(table(["NAME", "WORKFLOW", "CRON", "TZ", "STATE", "LAST", "NEXT"], [
                [r["name"], r["workflow"] or "-", r["cron"] or "-", r["tz"] or "-",
                 "paused" if r["paused"] else ("active" if r["in_code"] else "not in code"),
                 short_time(r["last_tick"]), short_time(r["next_tick"])]
                for r in rows]))
        return
    if action not in ("pause", "resume", "trigger"):
        raise UsageError(f"unknown action {action!r}",
                         "one of: list, pause NAME, resume NAME, trigger NAME")
    if not name:
        raise UsageError(f"`edge schedules {action}` needs the schedule's NAME",
                         "see: edge schedules list")
    if action == "trigger":
        res = remote.trigger_schedule(name, backfill_from)
        if json_:
            echo_json(res)
            return
        for s in res["started"]:
            print(s["id"] if s["created"] else f"{s['id']} (already there)")
        if not res["started"]:
            print(f"no tick of schedule {name} since {backfill_from}", file=sys.stderr)
        return
    view = remote.pause_schedule(name) if action == "pause" else remote.resume_schedule(name)
    if json_:
        echo_json(view)
    else:
        print(f"schedule {name} {'paused' if view['paused'] else 'resumed'}")


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
    res = client(url, api_token, api_token_file).prune(seconds)
    if json_:
        echo_json(res)
        return
    print(f"pruned {res['deleted']} workflows that finished before {res['cutoff']}")
