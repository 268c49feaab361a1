"""The `edge` options shared by more than one command, declared once, and the Client
the connection options (--url, --api-token, --api-token-file) make.

Invariants:
- an option that is a setting is declared here once, with its EDGE_* environment
  fallback, and every command that takes it uses this declaration (so its name,
  variable and help text cannot drift between commands; docs/CLI.md documents each);
- per-call options (--input, --id, --value, --dedup, and --data-dir on
  list/show/status) never read the environment;
- importing this module loads typer and edge.auth only: a client command must not
  pay for the engine, the node, prometheus_client or http.server
  (tests/unit/test_lazy_imports.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge.auth import resolve_token

if TYPE_CHECKING:
    from edge.client import Client

DEFAULT_URL = "http://127.0.0.1:8080"

# ---- edge run: the node's settings ---------------------------------------------------

AppOpt = Annotated[str, typer.Option(
    "--app", envvar="EDGE_APP", show_default=False,
    help="The app to run: MODULE:ATTR (an edge.App; ATTR defaults to `app`).")]
DataDirOpt = Annotated[Path, typer.Option(
    "--data-dir", envvar="EDGE_DATA_DIR", help="The node's data directory (edge.db inside).")]
ReplicaOpt = Annotated[str | None, typer.Option(
    "--replica", envvar="EDGE_REPLICA", show_default=False,
    help="s3://BUCKET/PREFIX[?endpoint=...&region=...] or file:///path.")]
ListenOpt = Annotated[str, typer.Option(
    "--listen", envvar="EDGE_LISTEN", help="HOST:PORT of the HTTP API and /metrics.")]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", envvar="EDGE_WORKERS", help="Workflows run at once (1..1024).")]
DurabilityOpt = Annotated[str, typer.Option(
    "--durability", envvar="EDGE_DURABILITY",
    help="full: a step survives power loss; normal: survives process crashes only.")]
GraceOpt = Annotated[float, typer.Option(
    "--grace-period", envvar="EDGE_GRACE_PERIOD",
    help="Seconds running steps get to finish on SIGTERM.")]
LogFormatOpt = Annotated[str, typer.Option(
    "--log-format", envvar="EDGE_LOG_FORMAT", help="human or json.")]
AllowEmptyOpt = Annotated[bool, typer.Option(
    "--allow-empty", envvar="EDGE_ALLOW_EMPTY",
    help="Start empty when there is no local database and the replica cannot be reached, "
    "or has a lease but no data.")]
NoWaitOpt = Annotated[bool, typer.Option(
    "--no-wait", envvar="EDGE_NO_WAIT",
    help="Exit (code 3) instead of standing by while another node holds the lease.")]
ReplicationOpt = Annotated[str, typer.Option(
    "--replication", envvar="EDGE_REPLICATION",
    help="embedded: the node runs litestream; external: a sidecar container does.")]
SidecarOpt = Annotated[str | None, typer.Option(
    "--sidecar-socket", envvar="EDGE_SIDECAR_SOCKET", show_default=False,
    help="The external sidecar's control socket (with --replication external).")]
SyncOpt = Annotated[float, typer.Option(
    "--sync-interval", envvar="EDGE_SYNC_INTERVAL", help="Seconds between replica syncs.")]
DrillOpt = Annotated[float, typer.Option(
    "--drill-interval", envvar="EDGE_DRILL_INTERVAL",
    help="Seconds between restore drills of the replica (0: none).")]
LeaseTtlOpt = Annotated[float, typer.Option(
    "--lease-ttl", envvar="EDGE_LEASE_TTL", help="Seconds a replica lease lives unrenewed.")]
LeaseRenewOpt = Annotated[float, typer.Option(
    "--lease-renew", envvar="EDGE_LEASE_RENEW", help="Seconds between lease renewals.")]
ReadTokenOpt = Annotated[str | None, typer.Option(
    "--api-read-token", envvar="EDGE_API_READ_TOKEN", show_default=False,
    help="A read-only token: reads, /metrics and the dashboard; writes are refused (403).")]
ReadTokenFileOpt = Annotated[Path | None, typer.Option(
    "--api-read-token-file", envvar="EDGE_API_READ_TOKEN_FILE", show_default=False,
    help="Read the read-only token from this file.")]
InsecureOpt = Annotated[bool, typer.Option(
    "--insecure-no-token", envvar="EDGE_INSECURE_NO_TOKEN",
    help="Serve a non-loopback --listen without an API token (logged as INSECURE).")]
RetentionOpt = Annotated[str | None, typer.Option(
    "--retention", envvar="EDGE_RETENTION", show_default=False,
    help="Delete finished workflows older than this (7d, 12h, ...) hourly; default: keep all.")]
AllowedHostOpt = Annotated[list[str] | None, typer.Option(
    "--allowed-host", envvar="EDGE_ALLOWED_HOSTS", show_default=False,
    help="A host name the HTTP API answers to besides IP addresses, localhost and the "
         "--listen host (repeat it; the variable: comma-separated).")]
NodeAckOpt = Annotated[str, typer.Option(
    "--ack", envvar="EDGE_ACK",
    help="Default ack of starts and sends: local, or replicated (answered once the "
         "replica holds them).")]

# ---- the node and its clients --------------------------------------------------------

TokenOpt = Annotated[str | None, typer.Option(
    "--api-token", envvar="EDGE_API_TOKEN", show_default=False,
    help="Bearer token of the HTTP API (the node requires it; clients send it).")]
TokenFileOpt = Annotated[Path | None, typer.Option(
    "--api-token-file", envvar="EDGE_API_TOKEN_FILE", show_default=False,
    help="Read the API token from this file (a mounted Secret): not in `ps` or the env.")]

# ---- client commands -----------------------------------------------------------------

UrlOpt = Annotated[str, typer.Option(
    "--url", envvar="EDGE_URL", help="The running node's HTTP address.")]
IdArg = Annotated[str, typer.Argument(help="The workflow id.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
AckOpt = Annotated[str | None, typer.Option(
    "--ack", show_default=False,
    help="replicated: return only once the replica holds it (default: the node's --ack).")]
InspectOpt = Annotated[Path | None, typer.Option(
    "--data-dir", show_default=False,
    help="Inspect this data directory's edge.db read-only instead of asking a node "
         "(does not read EDGE_DATA_DIR).")]
SiteOpt = Annotated[str | None, typer.Option(
    "--site", show_default=False,
    help="Inspect this site's copy from the fleet's bucket (--replica) read-only.")]
SiteReplicaOpt = Annotated[str | None, typer.Option(
    "--replica", envvar="EDGE_FLEET_REPLICA", show_default=False,
    help="With --site: the prefix above the sites, s3://BUCKET/PREFIX[?endpoint=...].")]

# ---- edge fleet ----------------------------------------------------------------------

FleetReplicaOpt = Annotated[str | None, typer.Option(
    "--replica", envvar="EDGE_FLEET_REPLICA", show_default=False,
    help="The prefix holding one sub-prefix per site: s3://BUCKET/PREFIX[?endpoint=...] "
         "or file:///dir.")]
CacheOpt = Annotated[Path | None, typer.Option(
    "--cache-dir", envvar="EDGE_FLEET_CACHE", show_default=False,
    help="Where the sites' restored copies live (default ~/.cache/edge/fleet/<hash>).")]
ParallelOpt = Annotated[int, typer.Option(
    "--parallel", min=1, max=64, help="Sites read at once.")]


def client(url: str, token: str | None, token_file: Path | None = None) -> Client:
    """The edge.Client of --url with the token of --api-token or --api-token-file."""
    from edge.client import Client

    return Client(url, token=resolve_token(token, token_file, "--api-token"))
