"""Parse and describe a replica location (``--replica URL``): part of the base layer.

Two schemes are understood:

* ``s3://BUCKET[/PREFIX][?endpoint=http://host:port&region=REGION]`` for S3 and
  S3-compatible stores; credentials come from the usual ``AWS_*`` variables.
* ``file:///ABSOLUTE/DIR`` for a directory (a mounted volume, tests).

Invariants:

* A ``ReplicaTarget`` is immutable and fully validated: anything that reaches the
  lease, the sidecar or a restore has a known scheme, an absolute file path or a
  bucket, an ``http(s)`` endpoint if any, and a region (Litestream needs one):
  the URL's ``region=``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` (the
  environment passed in, the process's by default), else us-east-1. It is fixed
  at parse time and travels in every URL and config edge hands Litestream, so
  the node's boto3 client and the sidecar always agree.
* Every epoch replicates to its own sub-path ``<prefix>/e<epoch>``; the lease
  object lives beside the epochs at ``<prefix>/lease.json`` (DESIGN.md section 8).
* How Litestream addresses a target (its config block, its URL) is a pure function
  of the URL and lives here, so the sidecar and restores agree on it.
* Imports only edge.errors: config.py validates ``--replica`` with it, and the base
  layer imports nothing above it (edge.replication re-exports these names).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from edge.errors import ConfigError

__all__ = ["DEFAULT_REGION", "ReplicaTarget", "format_duration", "parse_replica_url"]

DEFAULT_REGION = "us-east-1"

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KNOWN_PARAMS = ("endpoint", "region")
_HINT = (
    "use s3://BUCKET/PREFIX (add ?endpoint=http://host:port&region=... for "
    "S3-compatible stores) or file:///absolute/dir"
)


def format_duration(seconds: float) -> str:
    """A Go ``time.ParseDuration`` string (Litestream's config format)."""
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class ReplicaTarget:
    """Where the replica lives. Build it with :func:`parse_replica_url`."""

    url: str
    scheme: str
    bucket: str | None
    prefix: str
    endpoint: str | None
    region: str

    @property
    def plain_http(self) -> bool:
        """True when no TLS is involved (file replica or an ``http://`` endpoint)."""
        return self.scheme == "file" or bool(self.endpoint and self.endpoint.startswith("http://"))

    def key(self, name: str) -> str:
        """The store key (s3) or path (file) of ``name`` relative to the prefix."""
        if self.scheme == "file":
            return os.path.join(self.prefix, name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def epoch_prefix(self, epoch: int) -> str:
        """``<prefix>/e<epoch>``: a key prefix (s3) or a directory (file)."""
        if epoch < 1:
            raise ValueError(f"epoch must be >= 1, got {epoch}")
        return self.key(f"e{epoch}")

    def lease_key(self) -> str:
        return self.key("lease.json")

    def location(self, name: str = "") -> str:
        """A URL-like location of ``name`` for messages (never contains credentials)."""
        where = self.key(name) if name else self.prefix
        if self.scheme == "file":
            return f"file://{where}"
        return f"s3://{self.bucket}/{where}"

    def describe(self, epoch: int | None = None) -> str:
        """The replica (or one epoch of it) for messages, with its endpoint if any."""
        where = self.location(f"e{epoch}" if epoch is not None else "")
        return f"{where} at {self.endpoint}" if self.endpoint else where

    def litestream_replica_config(self, epoch: int, sync_interval: float) -> dict[str, Any]:
        """The ``replica:`` block of a Litestream 0.5 ``dbs`` entry for ``epoch``."""
        interval = format_duration(sync_interval)
        if self.scheme == "file":
            return {"type": "file", "path": self.epoch_prefix(epoch), "sync-interval": interval}
        block: dict[str, Any] = {
            "type": "s3",
            "bucket": self.bucket,
            "path": self.epoch_prefix(epoch),
            "region": self.region,
            "sync-interval": interval,
        }
        if self.endpoint:
            # S3-compatible stores (MinIO, moto, Ceph) rarely serve virtual-host buckets.
            block["endpoint"] = self.endpoint
            block["force-path-style"] = True
        return block

    def litestream_url(self, epoch: int) -> str:
        """The epoch as a Litestream replica URL (``POST /register``, ``restore URL``)."""
        if self.scheme == "file":
            return f"file://{self.epoch_prefix(epoch)}"
        query = {"region": self.region}
        if self.endpoint:
            query.update(endpoint=self.endpoint, forcePathStyle="true")
        return f"s3://{self.bucket}/{self.epoch_prefix(epoch)}?{urlencode(query)}"


def _fail(detail: str, url: str) -> ConfigError:
    return ConfigError(f"--replica: {detail} (got {url!r})", _HINT)


def _parse_query(query: str, url: str) -> dict[str, str]:
    try:
        raw = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise _fail(f"malformed query string: {exc}", url) from None
    out: dict[str, str] = {}
    for name, values in raw.items():
        if name not in _KNOWN_PARAMS:
            raise _fail(f"unknown parameter {name!r} (known: {', '.join(_KNOWN_PARAMS)})", url)
        if len(values) != 1:
            raise _fail(f"parameter {name!r} given more than once", url)
        out[name] = values[0]
    return out


def _check_endpoint(endpoint: str, url: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("endpoint must look like http://host:port or https://host", url)
    try:
        _ = parts.port
    except ValueError:
        raise _fail("endpoint has an invalid port", url) from None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise _fail("endpoint must be scheme://host[:port] with no path or credentials", url)
    return f"{parts.scheme}://{parts.netloc}"


def _check_prefix(path: str, url: str) -> str:
    prefix = path.strip("/")
    if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise _fail("prefix must not contain empty, '.' or '..' segments", url)
    return prefix


def _region(params: dict[str, str], env: Mapping[str, str], url: str) -> str:
    if params.get("region"):
        region, where = params["region"], "region"
    else:
        where = next((k for k in ("AWS_REGION", "AWS_DEFAULT_REGION") if env.get(k)), "")
        region = env[where] if where else DEFAULT_REGION
    if not _REGION_RE.match(region):
        if where.startswith("AWS_"):
            raise ConfigError(f"{where}={region!r} is not a region name",
                              "e.g. AWS_REGION=eu-west-3, or put ?region=... in --replica")
        raise _fail(f"invalid region {region!r}", url)
    return region


def parse_replica_url(url: str, env: Mapping[str, str] | None = None) -> ReplicaTarget:
    """Validate ``url`` and return its target; raise ``ConfigError`` naming ``--replica``.
    ``env`` (default ``os.environ``) supplies AWS_REGION / AWS_DEFAULT_REGION when the
    URL names no region."""
    if not url or not url.strip():
        raise _fail("empty replica URL", url)
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        params = _parse_query(parts.query, url)
        bucket = parts.netloc
        if not bucket:
            raise _fail("missing bucket name", url)
        if "@" in bucket or ":" in bucket or not _BUCKET_RE.match(bucket):
            raise _fail(f"invalid bucket name {bucket!r}", url)
        endpoint = params.get("endpoint") or None
        if endpoint is not None:
            endpoint = _check_endpoint(endpoint, url)
        region = _region(params, os.environ if env is None else env, url)
        return ReplicaTarget(
            url=url,
            scheme="s3",
            bucket=bucket,
            prefix=_check_prefix(parts.path, url),
            endpoint=endpoint,
            region=region,
        )
    if scheme == "file":
        if parts.query or parts.fragment:
            raise _fail("file replica URLs take no parameters", url)
        if parts.netloc not in ("", "localhost"):
            raise _fail("file path must be absolute: file:///absolute/dir", url)
        if not parts.path.startswith("/"):
            raise _fail("file path must be absolute: file:///absolute/dir", url)
        path = os.path.normpath(parts.path)
        if path == "/":
            raise _fail("refusing to use / as the replica directory", url)
        return ReplicaTarget(
            url=url, scheme="file", bucket=None, prefix=path, endpoint=None, region=DEFAULT_REGION
        )
    if not scheme:
        raise _fail("missing scheme", url)
    raise _fail(f"unknown scheme {parts.scheme!r}", url)
