"""The `edge` command line (typer): the root app, its command groups, and `main`.

Layout (one job per module; docs/ARCHITECTURE.md has the table):
- options.py declares every shared option once; text.py, render.py, inspect.py,
  help.py and progress.py are the layers the command groups stand on;
- the groups (run.py, workflows.py, status.py, restore.py, manage.py, fleet.py)
  define plain functions and import only those layers, never each other nor this
  module; this module registers them on ``app``, in the order `edge --help` lists
  them (tests/unit/test_cli_package.py scans the imports for cycles);

Invariants:
- every failure is one `error: ...` line (and a `hint: ...` line) on stderr and the
  documented exit code (edge/errors.py), never a traceback: ``main`` prints every
  EdgeError a command raises, and an unexpected exception as one line too; with
  ``--json`` it is one JSON object on stderr instead, ``{"error": {"code", "message",
  "hint"}}``, usage errors included (``render.print_error``);
- importing this package loads no engine, node, store, prometheus_client or
  http.server (tests/unit/test_lazy_imports.py): a client command stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, NoReturn

import typer

from edge.cli import fleet, manage, restore, run, status, workflows
from edge.cli.help import command
from edge.cli.render import json_requested, print_error
from edge.errors import EXIT_FAILED, EXIT_USAGE, EdgeError

app = typer.Typer(
    name="edge", add_completion=True, pretty_exceptions_enable=False, no_args_is_help=True,
    help="Durable workflows on one SQLite file, replicated by Litestream.",
)

# The order here is the order of `edge --help`.
for _name, _command in (
    ("run", run.run),
    ("start", workflows.start),
    ("list", workflows.list_),
    ("show", workflows.show),
    ("send", workflows.send),
    ("cancel", workflows.cancel),
    ("resume", workflows.resume),
    ("status", status.status),
    ("restore", restore.restore),
    ("verify-replica", restore.verify_replica),
    ("fork", manage.fork),
    ("queues", manage.queues),
    ("schedules", manage.schedules),
    ("prune", manage.prune),
    ("result", workflows.result),
):
    app.command(_name)(_command)
app.add_typer(fleet.fleet_app, name="fleet")


def fail(exc: EdgeError) -> NoReturn:
    """Print the error (and hint) the way every command does, and exit with its code."""
    print_error(exc.code, exc.message, exc.hint)
    raise SystemExit(exc.exit_code)


def _run_json() -> None:
    """The app with click's own error printing off: under ``--json`` a usage error (an
    unknown option, a missing argument, a bad value) is the JSON error object too."""
    try:
        rv = command(app)(prog_name="edge", standalone_mode=False)
    except typer.Abort:
        raise SystemExit(130) from None
    except Exception as exc:
        # click's exceptions (typer ships its own copy of click: matched by shape)
        fmt, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
        if isinstance(exc, EdgeError) or fmt is None or not isinstance(code, int):
            raise
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())  # `edge fleet --json`: the help, as without --json
            raise SystemExit(EXIT_USAGE) from None
        where = ctx.command_path if ctx is not None else "edge"
        print_error("usage", str(fmt()), f"see `{where} --help`")
        raise SystemExit(code) from None
    if isinstance(rv, int) and rv:
        raise SystemExit(rv)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("edge-durable", "edge"):  # the distribution's name, then the old one
            try:
                print(f"edge {version(dist)}")
                break
            except PackageNotFoundError:
                continue
        else:
            print("edge (version unknown)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Durable workflows on one SQLite file, replicated by Litestream."""


def main() -> None:
    """The `edge` console script: the typer app, with every error as one line and an exit code."""
    try:
        if json_requested():
            _run_json()
        else:
            command(app)(prog_name="edge")
    except EdgeError as exc:
        fail(exc)
    except BrokenPipeError:
        # stdout closed early (`edge list | head`): not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:  # a bug: still one line, never a traceback
        print_error("internal", f"unexpected {type(exc).__name__}: {exc}",
                    "this is a bug in edge; please report it with the command you ran")
        raise SystemExit(EXIT_FAILED) from None
