"""One frozen Settings object for a node, validated with field-named errors.

Invariant: nothing reads the environment except the CLI's option declarations
(``EDGE_*`` fallbacks); library users pass Settings (or Node keyword
arguments) explicitly, so many nodes can run in one process.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from dataclasses import dataclass
from pathlib import Path

from edge.auth import check_exposure
from edge.errors import ConfigError
from edge.limits import MAX_DURATION
from edge.serialization import DEFAULT_MAX_BYTES

DB_NAME = "edge.db"
MAX_SECONDS_SETTING = 86400.0  # a day: grace period, sync interval, lease TTL/renew
ACKS = ("local", "replicated")
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
                        r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?")


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
    # Box-loss RTO under 10 s (kill -> replacement ready 9.3 s, with a standby 7.4 s),
    # a renew failure tolerated for ttl - renew = 5 s before fencing, 1.3 M renew PUTs
    # per site and month: the trade-off measured in benchmarks/RESULTS.md (DR figures).
    lease_ttl: float = 7.0
    lease_renew: float = 2.0
    allow_empty: bool = False
    no_wait: bool = False
    replication: str = "embedded"  # "embedded": the node runs litestream; "external": a sidecar
    sidecar_socket: str | None = None  # external mode: the sidecar's control socket
    epoch_retention: float = 7 * 86400.0
    # Seconds between restore drills of the replica (edge/replication/drills.py); 0: none.
    drill_interval: float = 600.0
    api_token: str | None = None
    retention: float | None = None  # seconds: finished workflows older than this are pruned
    api_read_token: str | None = None  # grants GET/HEAD only (viewers, Prometheus)
    insecure_no_token: bool = False  # the explicit opt-out: a non-loopback listen without token
    ack: str = "local"  # "replicated": starts and sends answer once the replica holds them
    # With a replica only Litestream checkpoints; while it cannot run (fenced, not started)
    # a WAL past this many bytes is checkpointed with TRUNCATE (edge/store/wal.py).
    wal_bound: int = 64 * 1024 * 1024
    # Host names the HTTP API answers to besides IP addresses, localhost and the --listen
    # host (edge/api/guard.py: the DNS-rebinding check).
    allowed_hosts: tuple[str, ...] = ()

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
        day = MAX_SECONDS_SETTING
        for name, value, lo, hi in (("--grace-period", self.grace_period, 0.0, day),
                                    ("--sync-interval", self.sync_interval, None, day),
                                    ("--lease-ttl", self.lease_ttl, None, day),
                                    ("--lease-renew", self.lease_renew, None, day),
                                    ("--drill-interval", self.drill_interval, 0.0, day),
                                    ("epoch_retention", self.epoch_retention, None,
                                     MAX_DURATION)):
            # NaN passes every comparison as false, and inf overflows every timer:
            # refuse both here, by name, before any of them is used.
            ok = (not isinstance(value, bool) and isinstance(value, (int, float))
                  and math.isfinite(value) and (value >= lo if lo is not None else value > 0)
                  and value <= hi)
            if not ok:
                first = "0" if lo is not None else "more than 0"
                raise bad(name, f"{value!r} is out of range",
                          f"a finite number of seconds, {first}..{hi:.0f}")
        if self.wal_bound < 4096:
            raise bad("wal_bound", f"{self.wal_bound!r} is too small", "at least one page, 4096")
        if self.max_value_bytes < 1024:
            raise bad("max_value_bytes", "must be at least 1024", "")
        if self.sync_interval <= 0 or self.lease_ttl <= 0 or self.lease_renew <= 0:
            raise bad("--sync-interval/--lease-ttl", "must be > 0", "")
        if self.lease_renew >= self.lease_ttl:
            raise bad("--lease-renew", "must be shorter than --lease-ttl", "e.g. ttl 7, renew 2")
        if self.replication not in ("embedded", "external"):
            raise bad("--replication", f"{self.replication!r} is not embedded or external", "")
        if self.replication == "external" and not self.sidecar_socket:
            raise bad("--sidecar-socket", "required with --replication external",
                      "the path of the sidecar's control socket (shared volume)")
        if self.retention is not None and not 0 < self.retention <= MAX_DURATION:
            raise bad("--retention", f"{self.retention!r} must be a duration > 0",
                      f"e.g. 7d, at most {MAX_DURATION:.0f} s (100 years); leave it "
                      "unset to keep every workflow")
        if self.ack not in ACKS:
            raise bad("--ack", f"{self.ack!r} is not local or replicated",
                      "replicated answers starts and sends once the replica holds them")
        if self.ack == "replicated" and self.replica is None:
            raise bad("--ack", "replicated needs --replica", "configure a replica, or ack local")
        check_data_dir(self.data_dir)
        for name in self.allowed_hosts:
            check_host(name, "--allowed-host")
            if not _HOST_NAME.fullmatch(name.strip("[]")) and not is_ip(name.strip("[]")):
                raise bad("--allowed-host", f"{name[:80]!r} is not a host name",
                          "a DNS name (letters, digits, '-', '_' and dots) or an IP "
                          "address, without a port, e.g. edge.internal")
        host = parse_listen(self.listen)[0] if self.listen is not None else "127.0.0.1"
        check_exposure(host, self.api_token, self.api_read_token, self.insecure_no_token)
        if self.replica is not None:
            from edge.replica_url import parse_replica_url

            parse_replica_url(self.replica)
        return self


def is_ip(text: str) -> bool:
    """True for an IPv4 or IPv6 address literal (no brackets)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_data_dir(path: Path) -> None:
    """Refuse a --data-dir that cannot be one (an existing non-directory, or under a
    non-directory) before the node takes any lock; creating it is boot's job."""
    try:
        for p in (path, *path.parents):
            if p.exists():
                if not p.is_dir():
                    what = "is" if p == path else f"is under {p}, which is"
                    raise ConfigError(f"--data-dir: {str(path)!r} {what} not a directory",
                                      "pass a directory edge can create and write, e.g. "
                                      "./edge-data")
                return
    except OSError as exc:
        raise ConfigError(f"--data-dir: {str(path)!r} cannot be checked: "
                          f"{exc.strerror or exc}", "pass a writable directory") from None


def check_host(host: str, what: str) -> str:
    """A host name or IP literal that can be resolved: DNS limits (253 characters,
    labels of 1..63) and IDNA-encodable; else a ConfigError naming ``what``."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    ok = 0 < len(host) <= 253 and all(0 < len(label) <= 63
                                      for label in host.rstrip(".").split("."))
    if ok:
        try:
            host.encode("idna")
        except UnicodeError:
            ok = False
    if not ok:
        raise ConfigError(f"{what}: host {host[:80]!r} is not a valid host name",
                          "a name of at most 253 characters (labels of 1..63) or an IP address")
    return host


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    bracketed = host.startswith("[") or host.endswith("]")
    if (not sep or not host or not port.isascii() or not port.isdigit() or len(port) > 5
            or not 0 <= int(port) <= 65535
            or (bracketed and not (host.startswith("[") and host.endswith("]")))):
        raise ConfigError(f"--listen: {listen[:200]!r} is not HOST:PORT",
                          "e.g. 127.0.0.1:8080 or [::1]:8080")
    return check_host(host.strip("[]"), "--listen"), int(port)


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
    if value > MAX_DURATION:
        raise ConfigError(f"{what}: {text!r} is out of range: the valid range is "
                          f"0..{MAX_DURATION:.0f} seconds (0s..36500d, 100 years)",
                          "e.g. 7d, 12h, 30m, 45s")
    return value
