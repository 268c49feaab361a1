"""`edge restore`: restore a database from a replica into a new file (for inspection
or a new site), newest epoch with data, a given --epoch, or the state at --timestamp.

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
from typing import Annotated

import typer

from edge.cli.options import ReplicaOpt
from edge.errors import EdgeError, UsageError


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
        from edge.cli.progress import ProgressBar

        bar = ProgressBar(sys.stderr, "downloading")
    res = do_restore(target, output, epoch=epoch, timestamp=ts,
                     progress=bar.update if bar is not None else None)
    if bar is not None:
        bar.finish(res.path.stat().st_size)
    point = getattr(res, "timestamp", None)
    when = f" at {point.isoformat()}" if point is not None else ""
    print(f"restored epoch {res.epoch}{when} to {res.path} in {res.duration:.1f} s")
