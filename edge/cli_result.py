"""`edge result ID [--timeout S]`: wait for a workflow to end and print its output.

Registered on the typer app of edge/cli.py (imported last there). The exit code says
how the workflow ended, so a script needs no parsing: 0 SUCCEEDED (the output as JSON
on stdout), 5 FAILED, 6 CANCELLED, 7 still not final after --timeout; and as for
`edge show`: 1 unknown id or node unreachable, 2 usage. Those three outcome codes are
`edge result`'s only (docs/CLI.md, exit codes).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from edge.cli import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, _client, _echo_json, app
from edge.cli_inspect import dumps, safe
from edge.errors import WorkflowCancelled, WorkflowFailed

EXIT_WORKFLOW_FAILED = 5
EXIT_WORKFLOW_CANCELLED = 6
EXIT_TIMEOUT = 7


def _end(json_: bool, view: dict[str, Any], code: int, message: str, hint: str) -> None:
    if json_:
        _echo_json(view)
    else:
        print(f"error: {message}", file=sys.stderr)
        print(f"hint: {hint}", file=sys.stderr)
    raise SystemExit(code)


@app.command()
def result(
    id: Annotated[str, typer.Argument(help="The workflow id.", show_default=False)],
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0, show_default=False,
        help="Give up after this many seconds (exit 7); default: wait as long as it takes.")
    ] = None,
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
) -> None:
    """Wait until a workflow ends; print its output. Exit 0 SUCCEEDED, 5 FAILED,
    6 CANCELLED, 7 not final within --timeout."""
    handle = _client(url, api_token).handle(id)
    try:
        output = handle.result(timeout=timeout)
    except WorkflowFailed as exc:
        err = exc.error or {}
        _end(json_, {"id": id, "status": "FAILED", "error": err}, EXIT_WORKFLOW_FAILED,
             f"workflow {safe(id)} FAILED: {safe(err.get('type'))}: {safe(err.get('message'))}",
             f"see its steps with `edge show {id}`; after a fix, `edge resume {id}`")
    except WorkflowCancelled as exc:
        _end(json_, {"id": id, "status": "CANCELLED", "error": exc.error},
             EXIT_WORKFLOW_CANCELLED, f"workflow {safe(id)} was CANCELLED",
             f"`edge resume {id}` runs it again from its checkpoints")
    except TimeoutError as exc:
        state = str(exc).rpartition(" is still ")[2] or "not final"
        _end(json_, {"id": id, "status": state, "timeout": timeout}, EXIT_TIMEOUT,
             f"workflow {safe(id)} is still {state} after {timeout:g} s",
             f"wait longer (--timeout), or see what it waits for with `edge show {id}`")
    if json_:
        _echo_json({"id": id, "status": "SUCCEEDED", "output": output})
    else:
        print(dumps(output))
