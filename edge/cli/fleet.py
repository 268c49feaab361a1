"""`edge fleet` (every site under a bucket prefix, read-only) and `edge fleet serve`
(its page and /metrics): the `fleet` sub-app, added to the root app by __init__.py.

Invariants:
- read-only: the sites' replicas are read, never written (edge/fleet/);
- the group's options (--replica, --cache-dir, --parallel) are declared once
  (options.py) on the group's callback and reach `serve` through the context;
- every failure is one `error:` line, a `hint:` line and the documented exit code.
"""

from __future__ import annotations

from typing import Annotated

import typer

from edge.cli.options import CacheOpt, FleetReplicaOpt, JsonOpt, ParallelOpt
from edge.cli.render import echo_json
from edge.fleet import open_fleet

fleet_app = typer.Typer(help="The head office's read-only view of every site in a bucket.",
                        invoke_without_command=True, no_args_is_help=False)


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
        echo_json(report)
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
