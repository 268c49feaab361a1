"""`edge run`: import the user's app, build Settings and a Node, serve until SIGTERM.

Invariants:
- thin: the options become one Settings (edge/config.py validates them) and one
  Node; the API tokens leave the environment before the node starts, so its
  children (steps, litestream) never see them;
- the signal handlers only set a flag; the main thread stops the node. A second
  SIGTERM/SIGINT exits at once with code 1 (steps in flight resume at the next boot);
- a boot failure is the node's error (its exit code); a port in use by a second
  node on the same data directory is reported as the held lock (exit 3);
- the engine and the node are imported when `run` runs, never at import.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

from edge.auth import resolve_token
from edge.cli.options import (
    AllowedHostOpt,
    AllowEmptyOpt,
    AppOpt,
    DataDirOpt,
    DrillOpt,
    DurabilityOpt,
    GraceOpt,
    InsecureOpt,
    LeaseRenewOpt,
    LeaseTtlOpt,
    ListenOpt,
    LogFormatOpt,
    NodeAckOpt,
    NoWaitOpt,
    ReadTokenFileOpt,
    ReadTokenOpt,
    ReplicaOpt,
    ReplicationOpt,
    RetentionOpt,
    SidecarOpt,
    SyncOpt,
    TokenFileOpt,
    TokenOpt,
    WorkersOpt,
)
from edge.config import Settings
from edge.errors import EXIT_FAILED, EdgeError, UsageError

if TYPE_CHECKING:
    from edge.engine import App
    from edge.node import Node

log = logging.getLogger("edge.cli")  # the name in the log lines, unchanged by the split

_D = Settings()  # the defaults, stated once in edge/config.py


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
    drill_interval: DrillOpt = _D.drill_interval,
    lease_ttl: LeaseTtlOpt = _D.lease_ttl,
    lease_renew: LeaseRenewOpt = _D.lease_renew,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    retention: RetentionOpt = None,
    api_read_token: ReadTokenOpt = None,
    api_read_token_file: ReadTokenFileOpt = None,
    insecure_no_token: InsecureOpt = False,
    ack: NodeAckOpt = _D.ack,
    allowed_host: AllowedHostOpt = None,
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
        lease_ttl=lease_ttl, lease_renew=lease_renew, drill_interval=drill_interval,
        api_token=resolve_token(api_token, api_token_file, "--api-token"),
        retention=keep, ack=ack,
        api_read_token=resolve_token(api_read_token, api_read_token_file, "--api-read-token"),
        insecure_no_token=insecure_no_token,
        allowed_hosts=tuple(h.strip() for item in allowed_host or () for h in item.split(",")
                            if h.strip()),
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
