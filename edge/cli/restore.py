"""`edge restore`: restore a database from a replica into a new file (for inspection
or a new site), newest epoch with data, a given --epoch, the state at --timestamp, or
the newest clean TXID (--newest-clean); `edge verify-replica`: a read-only restore drill.

Invariants:
- never overwrites: an existing --output is refused before anything is downloaded;
- stdout gets the one result line (for scripts); progress goes to stderr, as a bar
  only on a terminal (progress.py);
- edge.replication is imported when `restore` runs, never at import.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge.cli.options import JsonOpt, ReplicaOpt
from edge.errors import EXIT_DATA, EXIT_FAILED, DataError, EdgeError, Unreachable, UsageError

if TYPE_CHECKING:
    from edge.replica_url import ReplicaTarget

EXIT_OLDER = 5  # --newest-clean restored a point older than the newest (it was damaged)


def parse_timestamp(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--timestamp {text!r} is not ISO 8601",
                         "e.g. 2026-05-01T12:00:00Z") from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


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
    newest_clean: Annotated[bool, typer.Option(
        "--newest-clean",
        help="If the newest state is damaged, find the newest clean TXID (bisection), "
             "restore it and report what it lacks (exit 5).")] = False,
) -> None:
    """Restore a database from a replica into a new file (for inspection or a new site)."""
    if not replica:
        raise UsageError("--replica is required", "pass --replica URL or set EDGE_REPLICA")
    if newest_clean and timestamp is not None:
        raise UsageError("--newest-clean and --timestamp exclude each other",
                         "--newest-clean picks the point itself")
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
    if newest_clean:
        _newest_clean(target, output, epoch)
        return
    which = f"epoch {epoch}" if epoch else "the newest epoch with data"
    at = f" at {ts.isoformat()}" if ts is not None else ""
    # Progress on stderr, so stdout keeps the one result line for scripts.
    print(f"restoring {which}{at} from {target.url} to {output} ...", file=sys.stderr,
          flush=True)
    bar = None
    if sys.stderr.isatty():  # a bar on a terminal only: logs get the two plain lines
        from edge.cli.progress import ProgressBar

        bar = ProgressBar(sys.stderr, "downloading")
    res = do_restore(target, output, epoch=epoch, timestamp=ts,
                     progress=bar.update if bar is not None else None)
    if bar is not None:
        bar.finish(res.path.stat().st_size)
    point = getattr(res, "timestamp", None)
    when = f" at {point.isoformat()}" if point is not None else ""
    print(f"restored epoch {res.epoch}{when} to {res.path} in {res.duration:.1f} s")


def _newest_clean(target: ReplicaTarget, output: Path, epoch: int | None) -> None:
    from edge.replication.bisect import restore_newest_clean

    print(f"looking for the newest clean TXID of {target.url} ...", file=sys.stderr,
          flush=True)
    point = restore_newest_clean(target, output, epoch=epoch,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    print(point.report())
    if not point.newest:  # never chosen silently: a script sees it in the exit code
        sys.stdout.flush()
        raise SystemExit(EXIT_OLDER)


def verify_replica(
    replica: ReplicaOpt = None,
    epoch: Annotated[int | None, typer.Option(
        "--epoch", min=1, show_default=False,
        help="Verify this epoch (default: the newest that holds data).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the replica into scratch space and check it (read-only: never writes to it)."""
    if not replica:
        raise UsageError("--replica is required", "pass --replica URL or set EDGE_REPLICA")
    import json

    from edge.logs import configure

    configure("human", logging.WARNING)
    from edge.replication import parse_replica_url
    from edge.replication.drill import DAMAGE, drill

    target = parse_replica_url(replica)
    res = drill(target, epoch=epoch)
    line = res.line(target.describe(res.epoch))
    if as_json:
        print(json.dumps(res.to_dict(), sort_keys=True))
    elif res.ok:
        print(line)
    if res.ok:
        return
    if as_json:
        sys.stdout.flush()
        raise SystemExit(EXIT_FAILED if res.kind == "unavailable" else EXIT_DATA)
    if res.kind == "unavailable":
        raise Unreachable(line, "check the bucket, the network and the credentials; retry")
    hint = ("restore the newest clean point with `edge restore --newest-clean`; a running "
            "node heals its replica by itself" if res.kind in DAMAGE
            else "check --replica and --epoch")
    raise DataError(line, hint)
