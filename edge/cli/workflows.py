"""`edge start | list | show | send | cancel | resume | result`: one workflow at a time,
over HTTP (edge.Client), or read-only from a data directory or a site copy (list, show).

Invariants:
- thin: each command parses its options, makes one Client call (or one inspection,
  inspect.py) and prints the answer (render.py); `--json` prints the API's object;
- `start` and `fork` (manage.py) print the id alone on stdout, for scripts;
- `edge list` fetches pages of at most PAGE (the node's limit) until --limit rows;
- `edge result`'s exit code says how the workflow ended, so a script needs no
  parsing: 0 SUCCEEDED (the output as JSON on stdout), 5 FAILED, 6 CANCELLED,
  7 still not final after --timeout; and as for `edge show`: 1 unknown id or node
  unreachable, 2 usage. Those three outcome codes are `edge result`'s only
  (docs/CLI.md, exit codes).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from edge.auth import resolve_token
from edge.cli import inspect
from edge.cli.options import (
    DEFAULT_URL,
    AckOpt,
    IdArg,
    InspectOpt,
    JsonOpt,
    SiteOpt,
    SiteReplicaOpt,
    TokenFileOpt,
    TokenOpt,
    UrlOpt,
    client,
)
from edge.cli.render import echo_json, format_list, format_show, print_error, queue_line
from edge.cli.text import dumps, safe
from edge.errors import NonDeterminismError, UsageError, WorkflowCancelled, WorkflowFailed

EXIT_WORKFLOW_FAILED = 5
EXIT_WORKFLOW_CANCELLED = 6
EXIT_TIMEOUT = 7

PAGE = 1000  # the node's largest page (GET /v1/workflows?limit=)


def parse_input(text: str | None) -> dict[str, Any] | list[Any] | None:
    """--input: a JSON object = keyword arguments, a JSON array = positional arguments."""
    from edge.serialization import parse_json_arg

    if text is None:
        return None
    value = parse_json_arg(text, "--input")
    if not isinstance(value, (dict, list)):
        kind = type(value).__name__ if value is not None else "null"
        raise UsageError(
            f"--input must be a JSON object (keyword arguments) or array (positional "
            f"arguments), not {kind}",
            "e.g. --input '{\"name\": \"bob\"}' or --input '[\"bob\"]' "
            "(a single dict argument is '[{\"a\": 1}]')")
    return value


def start(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.", show_default=False)],
    input: Annotated[str | None, typer.Option(
        "--input", show_default=False,
        help="JSON: an object = keyword arguments, an array = positional arguments.")] = None,
    id: Annotated[str | None, typer.Option(
        "--id", show_default=False,
        help="Workflow id (idempotency key: an existing id is returned, never run twice).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", show_default=False,
        help="KEY=VALUE to search by (edge list --tag); repeatable.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    ack: AckOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Start a workflow on the running node; prints its id alone on stdout."""
    from edge.tags import parse_filters

    value = parse_input(input)
    tags = parse_filters(tag or [], "--tag")
    handle = client(url, api_token, api_token_file).start(workflow, value, id=id,
                                                          tags=tags or None, ack=ack)
    if json_:
        echo_json({"id": handle.id, "created": handle.created})
    else:
        print(handle.id)


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


def list_(
    status: Annotated[str | None, typer.Option(
        "--status", show_default=False,
        help="Only this status (PENDING RUNNING SLEEPING WAITING SUCCEEDED FAILED "
             "CANCELLED).")] = None,
    workflow: Annotated[str | None, typer.Option(
        "--workflow", show_default=False, help="Only this workflow name.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", min=1,
        help="At most this many, newest first (fetched in pages of 1000).")] = 50,
    queue: Annotated[str | None, typer.Option(
        "--queue", show_default=False,
        help="Only this queue's live workflows, after a line with its depth.")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", show_default=False,
        help="Only workflows tagged KEY=VALUE; repeatable (all must match).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", show_default=False,
        help="Created at or after: ISO 8601 (no zone = UTC), epoch seconds, or an age "
             "(30m, 12h, 7d).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", show_default=False, help="Created before (the same forms).")] = None,
    prefix: Annotated[str | None, typer.Option(
        "--prefix", show_default=False, help="Only ids that start with this.")] = None,
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    data_dir: InspectOpt = None,
    site: SiteOpt = None,
    replica: SiteReplicaOpt = None,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", show_default=False,
        help="Continue after a previous page: the next_cursor it printed.")] = None,
) -> None:
    """List workflows, newest first; `--cursor` pages on (`next_cursor` in `--json`)."""
    import time

    from edge.search import check_prefix, parse_when
    from edge.tags import parse_filters

    st = inspect.check_status_filter(status)
    if queue is not None and cursor is not None:
        raise UsageError("--cursor pages `edge list`; `--queue` lists a queue's live "
                         "workflows in one page", "drop --cursor, or raise --limit")
    if queue is not None and limit > PAGE:
        raise UsageError(f"--limit {limit} with --queue: a queue's live workflows come in one "
                         f"page of at most {PAGE}", f"use --limit 1..{PAGE}")
    tags = parse_filters(tag or [], "--tag")
    now = time.time()
    lo, hi = parse_when(since, now, "--since"), parse_when(until, now, "--until")
    id_prefix = check_prefix(prefix)
    data_dir = inspect.site_copy(site, replica, data_dir) if site is not None else data_dir
    if queue is not None:
        token = resolve_token(api_token, api_token_file, "--api-token")
        list_queue(queue, st, workflow, limit, json_, url, token, data_dir)
        return
    if data_dir is not None:
        filters = {"tags": tags, "since": lo, "until": hi, "id_prefix": id_prefix}

        def fetch(n: int, after: str | None) -> dict[str, Any]:
            return inspect.list_file(data_dir, st, workflow, n, filters, cursor=after)
    else:
        remote = client(url, api_token, api_token_file)

        def fetch(n: int, after: str | None) -> dict[str, Any]:
            return remote.list(status=st, workflow=workflow, limit=n, cursor=after,
                               tags=tags or None, since=lo, until=hi, prefix=id_prefix)
    page = pages(fetch, limit, cursor)
    if json_:
        echo_json(page)
        return
    if not page["workflows"]:
        print("no workflows", file=sys.stderr)
        return
    print(format_list(page))
    if page.get("next_cursor"):
        print(f"(more: add --cursor {page['next_cursor']})", file=sys.stderr)


def list_queue(queue: str, status: str | None, workflow: str | None, limit: int,
               json_: bool, url: str, token: str | None, data_dir: Path | None) -> None:
    """`edge list --queue`: the queue's line, then its live workflows (one page)."""
    if data_dir is not None:
        info = inspect.queue_file(data_dir, queue, limit)
    else:
        info = client(url, token).queues(queue, limit)
    rows = [w for w in info["workflows"] if (status is None or w["status"] == status)
            and (workflow is None or w["workflow"] == workflow)]
    (q,) = info["queues"]
    if json_:
        echo_json({"workflows": rows, "queue": q})
        return
    print(queue_line(q))
    if rows:
        print(format_list({"workflows": rows}))


def show(
    id: IdArg,
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    data_dir: InspectOpt = None,
    site: SiteOpt = None,
    replica: SiteReplicaOpt = None,
) -> None:
    """Show one workflow: status, input, output or error, and its step timeline."""
    data_dir = inspect.site_copy(site, replica, data_dir) if site is not None else data_dir
    if data_dir is not None:
        view = inspect.show_file(data_dir, id)
    else:
        view = client(url, api_token, api_token_file).get(id)
    if json_:
        echo_json(view)
    else:
        print(format_show(view))


def send(
    id: IdArg,
    event: Annotated[str, typer.Argument(help="The event's name.", show_default=False)],
    value: Annotated[str | None, typer.Option(
        "--value", show_default=False, help="The event's value as JSON (default null).")
    ] = None,
    dedup: Annotated[str | None, typer.Option(
        "--dedup", show_default=False,
        help="Dedup key: a retried send with the same key is delivered once.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    ack: AckOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Send an event to a workflow (kept until its wait_event takes it)."""
    from edge.serialization import parse_json_arg

    parsed = None if value is None else parse_json_arg(value, "--value")
    res = client(url, api_token, api_token_file).send(id, event, parsed, dedup=dedup, ack=ack)
    if json_:
        echo_json(res)
    elif res.get("duplicate"):
        print(f"duplicate: event {event} with dedup key {dedup!r} was already sent to {id}")
    else:
        print(f"sent event {event} to {id}")


def cancel(
    id: IdArg,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Cancel a workflow and its children (at their next durable operation)."""
    res = client(url, api_token, api_token_file).cancel(id)
    if json_:
        echo_json(res)
    elif res.get("cancel") == "done":
        print(f"cancelled {id}")
    else:
        print(f"cancel requested for {id} (status {res.get('status')}; it stops at its next "
              "durable operation)")


def resume(
    id: IdArg,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run a FAILED or CANCELLED workflow again from its checkpoints."""
    res = client(url, api_token, api_token_file).resume(id)
    if json_:
        echo_json(res)
    else:
        print(f"resumed {id} ({res.get('status', 'PENDING')})")


def failed_hint(id: str, err: dict[str, Any]) -> str:
    """What to do about a FAILED workflow: resume after a fix, except after a divergence
    (a resume replays into it again), where a fork from the divergent seq is what works."""
    seq = (NonDeterminismError.seq_in(str(err.get("message") or ""))
           if err.get("type") == "NonDeterminismError" else None)
    if seq is not None:
        return NonDeterminismError.fork_hint(id, seq)
    return f"see its steps with `edge show {id}`; after a fix, `edge resume {id}`"


def _end(json_: bool, view: dict[str, Any], code: int, kind: str, message: str,
         hint: str) -> None:
    if json_:
        echo_json(view)  # the outcome on stdout, as for a success; the error on stderr
    print_error(kind, message, hint, as_json=json_)
    raise SystemExit(code)


def result(
    id: IdArg,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0, show_default=False,
        help="Give up after this many seconds (exit 7); default: wait as long as it takes.")
    ] = None,
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
) -> None:
    """Wait until a workflow ends; print its output. Exit 0 SUCCEEDED, 5 FAILED,
    6 CANCELLED, 7 not final within --timeout."""
    handle = client(url, api_token, api_token_file).handle(id)
    try:
        output = handle.result(timeout=timeout)
    except WorkflowFailed as exc:
        err = exc.error or {}
        _end(json_, {"id": id, "status": "FAILED", "error": err}, EXIT_WORKFLOW_FAILED,
             "workflow_failed",
             f"workflow {safe(id)} FAILED: {safe(err.get('type'))}: {safe(err.get('message'))}",
             failed_hint(id, err))
    except WorkflowCancelled as exc:
        _end(json_, {"id": id, "status": "CANCELLED", "error": exc.error},
             EXIT_WORKFLOW_CANCELLED, "workflow_cancelled", f"workflow {safe(id)} was CANCELLED",
             f"`edge resume {id}` runs it again from its checkpoints")
    except TimeoutError as exc:
        state = str(exc).rpartition(" is still ")[2] or "not final"
        _end(json_, {"id": id, "status": state, "timeout": timeout}, EXIT_TIMEOUT,
             "timeout", f"workflow {safe(id)} is still {state} after {timeout:g} s",
             f"wait longer (--timeout), or see what it waits for with `edge show {id}`")
    if json_:
        echo_json({"id": id, "status": "SUCCEEDED", "output": output})
    else:
        print(dumps(output))
