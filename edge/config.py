"""One frozen Settings object for a node, validated with field-named errors.

Invariant: nothing reads the environment except the CLI's option declarations
(``EDGE_*`` fallbacks); library users pass Settings (or Node keyword
arguments) explicitly, so many nodes can run in one process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError
from edge.serialization import DEFAULT_MAX_BYTES

DB_NAME = "edge.db"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("edge-data")
    replica: str | None = None
    listen: str | None = "127.0.0.1:8080"
    # 64, measured (benchmarks/RESULTS.md, Async): sync I/O-bound steps hold one thread each
    # (1,000 x 0.5 s: 64 s at 8 workers, 8.2 s at 64) for +2 MB RSS and no loss of CPU-light
    # steps/s; booting 10,000 in-flight is faster (5.6 -> 3.1 s). 128 boots no faster and
    # peaks 12 MB higher (a reader connection and a stack per busy worker).
    workers: int = 64
    durability: str = "full"  # "full": a step survives power loss; "normal": the documented trade
    grace_period: float = 8.0  # fits Docker's default 10 s stop timeout
    log_format: str = "human"
    max_value_bytes: int = DEFAULT_MAX_BYTES
    sync_interval: float = 1.0
    lease_ttl: float = 10.0
    lease_renew: float = 3.0
    allow_empty: bool = False
    no_wait: bool = False
    replication: str = "embedded"  # "embedded": the node runs litestream; "external": a sidecar
    sidecar_socket: str | None = None  # external mode: the sidecar's control socket
    epoch_retention: float = 7 * 86400.0
    api_token: str | None = None
    retention: float | None = None  # seconds: finished workflows older than this are pruned

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_NAME

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def validate(self) -> Settings:
        def bad(field: str, msg: str, hint: str) -> ConfigError:
            return ConfigError(f"{field}: {msg}", hint)

        if self.workers < 1 or self.workers > 1024:
            raise bad("--workers", f"{self.workers} is out of range", "use 1..1024")
        if self.durability not in ("full", "normal"):
            raise bad("--durability", f"{self.durability!r} is not full or normal",
                      "full survives power loss; normal survives process crashes only")
        if self.log_format not in ("human", "json"):
            raise bad("--log-format", f"{self.log_format!r} is not human or json", "")
        if self.grace_period < 0:
            raise bad("--grace-period", "must be >= 0", "seconds to let running steps finish")
        if self.max_value_bytes < 1024:
            raise bad("max_value_bytes", "must be at least 1024", "")
        if self.sync_interval <= 0 or self.lease_ttl <= 0 or self.lease_renew <= 0:
            raise bad("--sync-interval/--lease-ttl", "must be > 0", "")
        if self.lease_renew >= self.lease_ttl:
            raise bad("--lease-renew", "must be shorter than --lease-ttl", "e.g. ttl 10, renew 3")
        if self.replication not in ("embedded", "external"):
            raise bad("--replication", f"{self.replication!r} is not embedded or external", "")
        if self.replication == "external" and not self.sidecar_socket:
            raise bad("--sidecar-socket", "required with --replication external",
                      "the path of the sidecar's control socket (shared volume)")
        if self.retention is not None and not self.retention > 0:
            raise bad("--retention", f"{self.retention!r} must be a duration > 0",
                      "e.g. 7d; leave it unset to keep every workflow")
        if self.listen is not None:
            parse_listen(self.listen)
        if self.replica is not None:
            from edge.replication import parse_replica_url

            parse_replica_url(self.replica)
        return self


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen: {listen!r} is not HOST:PORT", "e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w`` or plain seconds (``90``, ``1.5``)."""
    t = str(text).strip().lower()
    unit = _UNITS.get(t[-1:], None)
    number = t[:-1] if unit is not None else t
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{what}: {text!r} is not a duration",
                          "a number with a unit s, m, h, d or w (e.g. 7d, 12h), or seconds")
    return value
