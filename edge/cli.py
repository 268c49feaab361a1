"""The `edge` command line (typer): run a node, drive one over HTTP, inspect or restore a database.

Invariants:
- thin: `run` builds Settings and a Node; the client commands call edge.Client;
  `--data-dir` inspection and the text output live in cli_inspect.py;
- options that are settings are declared once below, each with its EDGE_*
  environment fallback, and shared by every command that takes them; per-call
  options (--input, --id, --value, --dedup, and --data-dir on list/show/status)
  never read the environment;
- every failure is one `error: ...` line (and a `hint: ...` line) on stderr and
  the documented exit code (edge/errors.py), never a traceback;
- `edge run`'s signal handlers only set a flag; the main thread stops the node.
  A second SIGTERM/SIGINT exits at once with code 1 (steps in flight resume at
  the next boot).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from edge import cli_inspect as out
from edge.auth import resolve_token
from edge.config import Settings
from edge.errors import EXIT_FAILED, EdgeError, UsageError

if TYPE_CHECKING:
    from edge.client import Client
    from edge.engine import App
    from edge.node import Node

log = logging.getLogger("edge.cli")

DEFAULT_URL = "http://127.0.0.1:8080"
_D = Settings()  # the defaults, stated once in edge/config.py

app = typer.Typer(
    name="edge", add_completion=True, pretty_exceptions_enable=False, no_args_is_help=True,
    help="Durable workflows on one SQLite file, replicated by Litestream.",
)

# ---- options declared once ------------------------------------------------------------

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
    help="Start empty when the replica cannot be reached and there is no local database.")]
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
LeaseTtlOpt = Annotated[float, typer.Option(
    "--lease-ttl", envvar="EDGE_LEASE_TTL", help="Seconds a replica lease lives unrenewed.")]
LeaseRenewOpt = Annotated[float, typer.Option(
    "--lease-renew", envvar="EDGE_LEASE_RENEW", help="Seconds between lease renewals.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--api-token", envvar="EDGE_API_TOKEN", show_default=False,
    help="Bearer token of the HTTP API (the node requires it; clients send it).")]
TokenFileOpt = Annotated[Path | None, typer.Option(
    "--api-token-file", envvar="EDGE_API_TOKEN_FILE", show_default=False,
    help="Read the API token from this file (a mounted Secret): not in `ps` or the env.")]
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
UrlOpt = Annotated[str, typer.Option(
    "--url", envvar="EDGE_URL", help="The running node's HTTP address.")]
InspectOpt = Annotated[Path | None, typer.Option(
    "--data-dir", show_default=False,
    help="Inspect this data directory's edge.db read-only instead of asking a node "
         "(does not read EDGE_DATA_DIR).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
NodeAckOpt = Annotated[str, typer.Option(
    "--ack", envvar="EDGE_ACK",
    help="Default ack of starts and sends: local, or replicated (answered once the "
         "replica holds them).")]
AckOpt = Annotated[str | None, typer.Option(
    "--ack", show_default=False,
    help="replicated: return only once the replica holds it (default: the node's --ack).")]
SiteOpt = Annotated[str | None, typer.Option(
    "--site", show_default=False,
    help="Inspect this site's copy from the fleet's bucket (--replica) read-only.")]
FleetReplicaOpt = Annotated[str | None, typer.Option(
    "--replica", envvar="EDGE_FLEET_REPLICA", show_default=False,
    help="With --site: the prefix above the sites, s3://BUCKET/PREFIX[?endpoint=...].")]


# ---- helpers ----------------------------------------------------------------------------


def fail(exc: EdgeError) -> NoReturn:
    """Print the error (and hint) the way every command does, and exit with its code."""
    sys.stdout.flush()
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    raise SystemExit(exc.exit_code)


def _client(url: str, token: str | None, token_file: Path | None = None) -> Client:
    from edge.client import Client

    return Client(url, token=resolve_token(token, token_file, "--api-token"))


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


def load_app(ref: str) -> App:
    """Import MODULE:ATTR (cwd on sys.path) and return the edge.App it names."""
    from edge.engine import App

    module_name, sep, attr = ref.strip().partition(":")
    attr = attr if sep else "app"
    if not module_name or not attr:
        raise UsageError(f"--app {ref!r} is not MODULE:ATTR", "e.g. --app shop.workflows:app")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(f"--app: no module named {module_name!r}",
                             f"run from the directory that holds it ({cwd} is on the path) "
                             "or set PYTHONPATH") from None
        raise UsageError(f"--app: importing {module_name} failed: {exc}",
                         "install the missing package") from None
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f" ({exc.filename}:{exc.lineno})"
        raise UsageError(
            f"--app: importing {module_name} failed: {type(exc).__name__}: {exc}{where}",
            f"fix the module; `python -c 'import {module_name}'` shows the full traceback",
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            apps = [n for n, v in vars(module).items() if isinstance(v, App)]
            raise UsageError(f"--app: module {module_name} has no attribute {attr!r}",
                             f"edge.App objects in it: {', '.join(apps) or 'none'}")
        obj = getattr(obj, part)
    if not isinstance(obj, App):
        raise UsageError(f"--app: {module_name}:{attr} is a {type(obj).__name__}, not an "
                         "edge.App", "point --app at the object made by edge.App(...)")
    return obj


def _echo_json(obj: Any) -> None:
    print(out.dumps(obj))


def _site_copy(site: str, replica: str | None, data_dir: Path | None) -> Path:
    """--site: the data directory of the site's up-to-date local copy (edge/fleet/)."""
    from edge.fleet import open_fleet

    if data_dir is not None:
        raise UsageError("--site and --data-dir are exclusive", "pass one of them")

    return open_fleet(replica).copy_of(site)


# ---- edge run -------------------------------------------------------------------------------


@app.command()
def run(
    app_ref: AppOpt,
    data_dir: DataDirOpt = _D.data_dir,
    replica: ReplicaOpt = None,
    listen: ListenOpt = _D.listen or "127.0.0.1:8080",
    workers: WorkersOpt = _D.workers,
    durability: DurabilityOpt = _D.durability,
    grace_period: GraceOpt = _D.grace_period,
    log_format: LogFormatOpt = _D.log_format,
    allow_empty: AllowEmptyOpt = False,
    no_wait: NoWaitOpt = False,
    replication: ReplicationOpt = _D.replication,
    sidecar_socket: SidecarOpt = None,
    sync_interval: SyncOpt = _D.sync_interval,
    lease_ttl: LeaseTtlOpt = _D.lease_ttl,
    lease_renew: LeaseRenewOpt = _D.lease_renew,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    retention: RetentionOpt = None,
    api_read_token: ReadTokenOpt = None,
    api_read_token_file: ReadTokenFileOpt = None,
    insecure_no_token: InsecureOpt = False,
    ack: NodeAckOpt = _D.ack,
) -> None:
    """Run a node: recover in-flight workflows, serve the HTTP API, replicate. Stops on SIGTERM."""
    from edge.config import parse_duration

    keep = parse_duration(retention, "--retention") if retention else None
    flag = StopFlag()
    settings = Settings(
        data_dir=data_dir, replica=replica or None, listen=listen, workers=workers,
        durability=durability, grace_period=grace_period, log_format=log_format,
        allow_empty=allow_empty, no_wait=no_wait, replication=replication,
        sidecar_socket=sidecar_socket or None, sync_interval=sync_interval,
        lease_ttl=lease_ttl, lease_renew=lease_renew,
        api_token=resolve_token(api_token, api_token_file, "--api-token"),
        retention=keep, ack=ack,
        api_read_token=resolve_token(api_read_token, api_read_token_file, "--api-read-token"),
        insecure_no_token=insecure_no_token,
    ).validate()
    for name in ("EDGE_API_TOKEN", "EDGE_API_READ_TOKEN"):
        os.environ.pop(name, None)  # the node's children (steps, litestream) never see it
    from edge.logs import configure
    from edge.node import Node

    configure(settings.log_format)
    user_app = load_app(app_ref)
    node = Node(user_app, settings=settings)
    raise SystemExit(serve(node, flag))


class StopFlag:
    """SIGTERM/SIGINT handlers that only set a flag; a second signal exits at once (code 1)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.seen: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.seen.append(signum)
        if len(self.seen) > 1:
            os.write(2, b"edge: second signal: exiting at once (in-flight steps resume at "
                        b"the next boot)\n")
            os._exit(EXIT_FAILED)
        self.event.set()


def serve(node: Node, flag: StopFlag) -> int:
    """Boot ``node`` and run it until SIGTERM/SIGINT; returns the exit code."""
    stop, seen = flag.event, flag.seen
    if stop.is_set():  # signalled while the app was loading: nothing started yet
        return 0
    errors: list[BaseException] = []
    booted = threading.Event()

    def boot() -> None:
        try:
            node.start()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            booted.set()

    boot_thread = threading.Thread(target=boot, name="edge-boot", daemon=True)
    boot_thread.start()
    while not stop.wait(0.2):
        if not booted.is_set():
            continue
        if errors:
            raise node.fatal or _explain(node, errors[0])
        if node.wait_stopped(0):
            # The node stopped itself (e.g. its replica lease moved to another node):
            # its error carries the exit code.
            raise node.fatal or EdgeError("the node stopped on its own",
                                          "see the log lines above")
    log.info("%s received: stopping within %.1f s (a second signal exits at once)",
             signal.Signals(seen[0]).name, node.settings.grace_period)
    node.stop()
    boot_thread.join(timeout=2.0)
    return 0


def _explain(node: Node, exc: BaseException) -> BaseException:
    """A port in use often means a second node on the same data directory: say so (exit 3).

    The HTTP server starts before the single-writer lock (boot order), so the
    second `edge run` with the same --listen fails to bind before it meets the lock.
    """
    if not (isinstance(exc, EdgeError) and exc.code == "listen_failed"):
        return exc
    from edge.leader import LocalLock

    if not node.settings.data_dir.is_dir():
        return exc
    lock = LocalLock(node.settings.data_dir)
    try:
        lock.acquire()
    except EdgeError as held:
        return held
    except OSError:
        return exc
    lock.release()
    return exc


# ---- client commands ----------------------------------------------------------------------


@app.command()
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
    handle = _client(url, api_token, api_token_file).start(workflow, value, id=id,
                                                           tags=tags or None, ack=ack)
    if json_:
        _echo_json({"id": handle.id, "created": handle.created})
    else:
        print(handle.id)


@app.command("list")
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
    replica: FleetReplicaOpt = None,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", show_default=False,
        help="Continue after a previous page: the next_cursor it printed.")] = None,
) -> None:
    """List workflows, newest first; `--cursor` pages on (`next_cursor` in `--json`)."""
    import time

    from edge.search import check_prefix, parse_when
    from edge.tags import parse_filters

    st = out.check_status_filter(status)
    if queue is not None and cursor is not None:
        raise UsageError("--cursor pages `edge list`; `--queue` lists a queue's live "
                         "workflows in one page", "drop --cursor, or raise --limit")
    if queue is not None and limit > out.PAGE:
        raise UsageError(f"--limit {limit} with --queue: a queue's live workflows come in one "
                         f"page of at most {out.PAGE}", f"use --limit 1..{out.PAGE}")
    tags = parse_filters(tag or [], "--tag")
    now = time.time()
    lo, hi = parse_when(since, now, "--since"), parse_when(until, now, "--until")
    id_prefix = check_prefix(prefix)
    data_dir = _site_copy(site, replica, data_dir) if site is not None else data_dir
    if queue is not None:
        from edge.cli_manage import list_queue

        token = resolve_token(api_token, api_token_file, "--api-token")
        list_queue(queue, st, workflow, limit, json_, url, token, data_dir)
        return
    if data_dir is not None:
        filters = {"tags": tags, "since": lo, "until": hi, "id_prefix": id_prefix}

        def fetch(n: int, after: str | None) -> dict[str, Any]:
            return out.list_file(data_dir, st, workflow, n, filters, cursor=after)
    else:
        client = _client(url, api_token, api_token_file)

        def fetch(n: int, after: str | None) -> dict[str, Any]:
            return client.list(status=st, workflow=workflow, limit=n, cursor=after,
                               tags=tags or None, since=lo, until=hi, prefix=id_prefix)
    page = out.pages(fetch, limit, cursor)
    if json_:
        _echo_json(page)
        return
    if not page["workflows"]:
        print("no workflows", file=sys.stderr)
        return
    print(out.format_list(page))
    if page.get("next_cursor"):
        print(f"(more: add --cursor {page['next_cursor']})", file=sys.stderr)


@app.command()
def show(
    id: Annotated[str, typer.Argument(help="The workflow id.", show_default=False)],
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    data_dir: InspectOpt = None,
    site: SiteOpt = None,
    replica: FleetReplicaOpt = None,
) -> None:
    """Show one workflow: status, input, output or error, and its step timeline."""
    data_dir = _site_copy(site, replica, data_dir) if site is not None else data_dir
    if data_dir is not None:
        view = out.show_file(data_dir, id)
    else:
        view = _client(url, api_token, api_token_file).get(id)
    if json_:
        _echo_json(view)
    else:
        print(out.format_show(view))


@app.command()
def send(
    id: Annotated[str, typer.Argument(help="The workflow id.", show_default=False)],
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
    res = _client(url, api_token, api_token_file).send(id, event, parsed, dedup=dedup, ack=ack)
    if json_:
        _echo_json(res)
    elif res.get("duplicate"):
        print(f"duplicate: event {event} with dedup key {dedup!r} was already sent to {id}")
    else:
        print(f"sent event {event} to {id}")


@app.command()
def cancel(
    id: Annotated[str, typer.Argument(help="The workflow id.", show_default=False)],
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Cancel a workflow and its children (at their next durable operation)."""
    res = _client(url, api_token, api_token_file).cancel(id)
    if json_:
        _echo_json(res)
    elif res.get("cancel") == "done":
        print(f"cancelled {id}")
    else:
        print(f"cancel requested for {id} (status {res.get('status')}; it stops at its next "
              "durable operation)")


@app.command()
def resume(
    id: Annotated[str, typer.Argument(help="The workflow id.", show_default=False)],
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run a FAILED or CANCELLED workflow again from its checkpoints."""
    res = _client(url, api_token, api_token_file).resume(id)
    if json_:
        _echo_json(res)
    else:
        print(f"resumed {id} ({res.get('status', 'PENDING')})")


@app.command()
def status(
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    data_dir: InspectOpt = None,
) -> None:
    """Node, leader, state, counts by status, replication."""
    st = (out.status_file(data_dir) if data_dir is not None
          else _client(url, api_token, api_token_file).status())
    if json_:
        _echo_json(st)
    else:
        print(out.format_status(st))


# ---- edge restore ---------------------------------------------------------------------------


def parse_timestamp(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--timestamp {text!r} is not ISO 8601",
                         "e.g. 2026-05-01T12:00:00Z") from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@app.command()
def restore(
    output: Annotated[Path, typer.Option(
        "--output", show_default=False, help="Where to write the database (must not exist).")],
    replica: ReplicaOpt = None,
    timestamp: Annotated[str | None, typer.Option(
        "--timestamp", show_default=False,
        help="Restore the state at this ISO 8601 time (picks the epoch that covers it).")
    ] = None,
    epoch: Annotated[int | None, typer.Option(
        "--epoch", min=1, show_default=False,
        help="Restore this epoch (default: the newest that holds data).")] = None,
) -> None:
    """Restore a database from a replica into a new file (for inspection or a new site)."""
    if not replica:
        raise UsageError("--replica is required", "pass --replica URL or set EDGE_REPLICA")
    ts = parse_timestamp(timestamp) if timestamp is not None else None
    from edge.logs import configure

    configure("human", logging.WARNING)
    try:
        from edge.replication import parse_replica_url
        from edge.replication import restore as do_restore
    except ImportError as exc:
        raise EdgeError(f"restore is not available in this build: {exc}", "") from None
    target = parse_replica_url(replica)
    if os.path.lexists(output):  # refuse before saying "restoring ..."
        from edge.errors import ConfigError

        raise ConfigError(f"--output: {os.path.abspath(output)} already exists",
                          "restore to a new path, or move the existing file away first "
                          "(edge never overwrites a database)")
    which = f"epoch {epoch}" if epoch else "the newest epoch with data"
    at = f" at {ts.isoformat()}" if ts is not None else ""
    # Progress on stderr, so stdout keeps the one result line for scripts.
    print(f"restoring {which}{at} from {target.url} to {output} ...", file=sys.stderr,
          flush=True)
    bar = None
    if sys.stderr.isatty():  # a bar on a terminal only: logs get the two plain lines
        from edge.cli_progress import ProgressBar

        bar = ProgressBar(sys.stderr, "downloading")
    res = do_restore(target, output, epoch=epoch, timestamp=ts,
                     progress=bar.update if bar is not None else None)
    if bar is not None:
        bar.finish(res.path.stat().st_size)
    point = getattr(res, "timestamp", None)
    when = f" at {point.isoformat()}" if point is not None else ""
    print(f"restored epoch {res.epoch}{when} to {res.path} in {res.duration:.1f} s")


# ---- entry point -----------------------------------------------------------------------------


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
    from edge.cli_help import command

    try:
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
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: this is a bug in edge; please report it with the command you ran",
              file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None


# Management commands (fork, queues, schedules, prune) live in their own module; it
# registers them on `app` above, so it is imported last.
from edge import cli_fleet, cli_manage, cli_result  # noqa: E402,F401  (edge fleet, edge result)

if __name__ == "__main__":
    # Run as `python -m edge.cli`: this module is __main__, so run the imported edge.cli
    # (whose app the management commands registered on).
    from edge.cli import main as _main

    _main()
