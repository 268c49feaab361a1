"""A restore drill: restore a replica into private scratch space and check the copy.

Job: one read-only drill of one epoch path, at its newest TXID or a given one.
``litestream restore -dry-run -json`` plans it (the TXID and the files, so the bytes
read are known), ``litestream restore -txid`` restores exactly that TXID into a
private scratch directory, then the copy gets the structural check
(``PRAGMA integrity_check``, edge/store/integrity.py), every row checksum
(edge/store/verify.py) and, when the live database is given, the comparison of its
final rows with the local file (edge/store/compare.py). The periodic drills of a
running node (drills.py), ``edge verify-replica`` and ``edge restore
--newest-clean`` (bisect.py) all run this.

Result kinds (``DrillResult.kind``; None when ok):
- damage, the replica cannot be trusted (``DAMAGE``): ``restore_failed`` (Litestream
  refused the files, e.g. an LTX checksum mismatch), ``structure``
  (``integrity_check``), ``checksum`` (a row's checksum), ``diverged`` (a final row
  of the copy is missing or different locally);
- no verdict: ``unavailable`` (the bucket did not answer, or litestream could not
  run), ``no_replica`` (the epoch holds no data, or none at that TXID).

Invariants:
- read-only towards the bucket: only listings and GETs (litestream ``ltx`` and
  ``restore``), never a write;
- the scratch directory is private (0700), made under ``scratch`` (default: the
  system's temp directory) and removed whatever happens, also on an exception;
- the local database is only read (one read transaction, compare.py);
- ``nice`` > 0 runs litestream under ``nice -n``: a node's drills stay off the hot path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.errors import DataError, EdgeError, ReplicationError, Unreachable
from edge.replication.objects import ObjectStore, open_store
from edge.replication.restore import (
    _NoMatch,
    _run_litestream,
    _write_private,
    newest_epoch_with_data,
)
from edge.replication.target import ReplicaTarget, child_env, find_litestream, parse_go_time
from edge.store import Store, compare, integrity, verify

__all__ = ["DAMAGE", "DrillResult", "LtxFile", "Litestream", "drill", "format_txid",
           "scratch_dir"]

DAMAGE = frozenset({"restore_failed", "structure", "checksum", "diverged"})
NO_VERDICT = frozenset({"unavailable", "no_replica"})


def format_txid(txid: int) -> str:
    """Litestream's spelling of a TXID (16 hex digits), what ``-txid`` takes."""
    return f"{txid:016x}"


@dataclass(frozen=True)
class DrillResult:
    ok: bool
    kind: str | None  # None when ok; else one of DAMAGE or NO_VERDICT
    detail: str  # one line
    txid: int | None  # the TXID restored (None when nothing was)
    epoch: int | None
    bytes_read: int  # bytes of the LTX files the restore fetched from the bucket
    seconds: float
    finished_at: float  # unix seconds
    rows: int = 0  # rows whose checksum was verified

    @property
    def damaged(self) -> bool:
        return self.kind in DAMAGE

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["txid_hex"] = format_txid(self.txid) if self.txid is not None else None
        return out

    def line(self, where: str) -> str:
        """The one-line report (``edge verify-replica``, the node's log)."""
        at = f" at TXID {format_txid(self.txid)}" if self.txid is not None else ""
        cost = f"{self.bytes_read / 1e6:.1f} MB read in {self.seconds:.1f} s"
        if self.ok:
            return f"replica {where}{at} verified: {self.detail} ({cost})"
        return f"replica {where}{at}: {self.kind}: {self.detail} ({cost})"


@dataclass(frozen=True)
class LtxFile:
    level: int
    min_txid: int
    max_txid: int
    size: int
    timestamp: float | None  # unix seconds (1 s resolution), None when unparseable


@contextmanager
def scratch_dir(parent: Path | None = None) -> Iterator[Path]:
    """A private (0700) directory, removed on exit whatever happened."""
    if parent is not None:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="edge-drill-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Litestream:
    """``litestream ltx`` and ``restore`` of one epoch path, configured in ``work``."""

    def __init__(self, target: ReplicaTarget, epoch: int, work: Path, *,
                 litestream_bin: str | None = None, env: Mapping[str, str] | None = None,
                 nice: int = 0, timeout: float = 600.0) -> None:
        self.target, self.epoch, self.timeout = target, epoch, timeout
        self.where = target.describe(epoch)
        self.env = child_env(target, env)
        self.config = work / f"drill-e{epoch}.yml"
        self.db = work / "replica.db"  # the name Litestream keys the replica by; never written
        if not self.config.exists():
            entry = {"path": str(self.db), "replica": target.litestream_replica_config(epoch, 1.0)}
            _write_private(self.config, json.dumps({"dbs": [entry]}).encode())
        prefix: list[str] = []
        if nice > 0 and (nice_bin := shutil.which("nice")):
            prefix = [nice_bin, "-n", str(nice)]
        self.prefix = [*prefix, find_litestream(litestream_bin)]

    def _run(self, *args: str) -> bytes:
        argv = [*self.prefix, *args[:1], "-config", str(self.config), "-no-expand-env",
                *args[1:], str(self.db)]
        return _run_litestream(argv, self.env, self.timeout, self.where)

    def files(self) -> list[LtxFile]:
        """Every LTX file of the epoch, all levels."""
        out = json.loads(self._run("ltx", "-level", "all", "-json") or b"[]")
        return [LtxFile(int(f["level"]), int(f["min_txid"], 16), int(f["max_txid"], 16),
                        int(f["size"]), parse_go_time(str(f.get("timestamp", ""))))
                for f in out or []]

    def plan(self, txid: int | None) -> tuple[int, int]:
        """(the TXID a restore would reach, the bytes it would fetch)."""
        extra = ("-txid", format_txid(txid)) if txid is not None else ()
        out = self._run("restore", "-dry-run", "-json", *extra, "-o", str(self.db))
        doc = json.loads(out[out.index(b"{"):])
        return int(doc["max_txid"], 16), sum(int(f["size"]) for f in doc.get("files", []))

    def restore(self, txid: int, output: Path) -> None:
        self._run("restore", "-txid", format_txid(txid), "-o", str(output))
        os.chmod(output, 0o600)


def check_copy(path: Path, local: Store | None) -> tuple[str | None, str, int]:
    """(kind or None, detail, rows verified) for a restored copy at ``path``."""
    problem = integrity.file_problems(path)
    if problem is not None:
        return "structure", f"integrity_check: {problem}", 0
    try:
        copy = Store.inspect(path)
    except DataError as exc:
        return "structure", exc.message, 0
    try:
        rows = verify.verify_checksums(copy)
    except DataError as exc:
        return "checksum", exc.message, 0
    finally:
        copy.close()
    if local is not None:
        found = compare.divergence(local, path)
        if found:
            return "diverged", "; ".join(found), rows
        return None, f"integrity ok, {rows} rows checked, final rows match the local database", rows
    return None, f"integrity ok, {rows} rows checked", rows


def drill(
    target: ReplicaTarget,
    *,
    epoch: int | None = None,
    txid: int | None = None,
    local: Store | None = None,
    scratch: Path | None = None,
    store: ObjectStore | None = None,
    litestream_bin: str | None = None,
    env: Mapping[str, str] | None = None,
    nice: int = 0,
    timeout: float = 600.0,
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> DrillResult:
    """Restore ``epoch`` (default: the newest with data) at ``txid`` (default: its
    newest) into scratch space under ``scratch`` and check it; never raises for what
    it finds (see the kinds above), only for a bug."""
    started = monotonic()
    state: dict[str, Any] = {"epoch": epoch, "txid": None, "bytes": 0}

    def result(kind: str | None, detail: str, rows: int = 0) -> DrillResult:
        return DrillResult(kind is None, kind, detail, state["txid"], state["epoch"],
                           state["bytes"], round(monotonic() - started, 3), wall(), rows)

    try:
        objects = store or open_store(target)
        objects.check_reachable()
        if state["epoch"] is None:
            state["epoch"] = newest_epoch_with_data(target, store=objects)
            if state["epoch"] is None:
                return result("no_replica", f"{target.describe()} holds no data")
        elif not objects.list_keys(f"e{state['epoch']}/", limit=1):
            return result("no_replica", f"{target.describe(state['epoch'])} holds no data")
        with scratch_dir(scratch) as work:
            ls = Litestream(target, state["epoch"], work, litestream_bin=litestream_bin,
                            env=env, nice=nice, timeout=timeout)
            state["txid"], state["bytes"] = ls.plan(txid)
            short = _disk_short(work, local)
            if short is not None:
                return result("unavailable", short)
            copy = work / "copy.db"
            ls.restore(state["txid"], copy)
            kind, detail, rows = check_copy(copy, local)
            return result(kind, detail, rows)
    except _NoMatch as exc:
        return result("no_replica", str(exc))
    except (Unreachable, ReplicationError) as exc:
        return result("unavailable", exc.message)
    except DataError as exc:
        return result("restore_failed", exc.message)
    except EdgeError as exc:  # e.g. a malformed plan: no verdict on the replica
        return result("unavailable", exc.message)
    except (ValueError, KeyError) as exc:
        return result("unavailable", f"unexpected litestream output: {exc}")


DISK_HEADROOM = 1.5  # the copy's size (about the live file's), plus room left for the node


def _disk_short(work: Path, local: Store | None) -> str | None:
    """Why the scratch filesystem cannot take a copy now (None: it can). A drill must
    never be what fills the node's disk: the copy needs about the live file's size, and
    the node's own writes keep the rest."""
    if local is None:
        return None
    try:
        need = int(os.stat(local.path).st_size * DISK_HEADROOM)
        free = shutil.disk_usage(work).free
    except OSError:
        return None
    if free >= need:
        return None
    return (f"drill skipped: {free} bytes free under {work}, a copy needs about {need}; "
            "free disk space beside the data directory")
