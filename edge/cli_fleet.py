"""`edge fleet` (every site under a bucket prefix, read-only) and `edge fleet serve`
(its page and /metrics), and the site copies `edge list/show --site` read.

Registered on the typer app of edge/cli.py (imported last there). Every failure
is one `error:` line, a `hint:` line and the documented exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.cli import JsonOpt, _echo_json, app
from edge.fleet import open_fleet

fleet_app = typer.Typer(help="The head office's read-only view of every site in a bucket.",
                        invoke_without_command=True, no_args_is_help=False)
app.add_typer(fleet_app, name="fleet")

FleetReplicaOpt = Annotated[str | None, typer.Option(
    "--replica", envvar="EDGE_FLEET_REPLICA", show_default=False,
    help="The prefix holding one sub-prefix per site: s3://BUCKET/PREFIX[?endpoint=...] "
         "or file:///dir.")]
CacheOpt = Annotated[Path | None, typer.Option(
    "--cache-dir", envvar="EDGE_FLEET_CACHE", show_default=False,
    help="Where the sites' restored copies live (default ~/.cache/edge/fleet/<hash>).")]
ParallelOpt = Annotated[int, typer.Option(
    "--parallel", min=1, max=64, help="Sites read at once.")]


@fleet_app.callback()
def fleet(
    ctx: typer.Context,
    replica: FleetReplicaOpt = None,
    cache_dir: CacheOpt = None,
    parallel: ParallelOpt = 8,
    json_: JsonOpt = False,
) -> None:
    """Every site under a bucket prefix: lease, replica age, workflows, failures (read-only)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (replica, cache_dir, parallel)
        return
    from edge.fleet.text import format_fleet

    f = open_fleet(replica, cache_dir, parallel)
    report = f.read_all()
    f.cache.save_observed(f.judge.snapshot())
    if json_:
        _echo_json(report)
    else:
        print(format_fleet(report))


@fleet_app.command("serve")
def fleet_serve(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option(
        "--listen", envvar="EDGE_FLEET_LISTEN", help="HOST:PORT of the page and /metrics.")
    ] = "127.0.0.1:8090",
    refresh: Annotated[float, typer.Option(
        "--refresh", envvar="EDGE_FLEET_REFRESH", min=1.0,
        help="Seconds between reads of the bucket.")] = 60.0,
    api_token: Annotated[str | None, typer.Option(
        "--api-token", envvar="EDGE_FLEET_API_TOKEN", show_default=False,
        help="Bearer token /v1/fleet and /metrics require (the page: /#token=...).")] = None,
) -> None:
    """Serve the fleet's read-only page and /metrics, re-reading the bucket every --refresh s."""
    from edge.fleet.serve import run_server
    from edge.logs import configure

    replica, cache_dir, parallel = ctx.obj or (None, None, 8)
    configure("human")
    f = open_fleet(replica, cache_dir, parallel, persist_seen=False)
    run_server(f, listen, refresh, api_token or None)
