"""Find the newest clean TXID of a damaged replica and restore it (``edge restore
--newest-clean``), with a report of what that point lacks.

Job: list the epoch's TXIDs (``litestream ltx -level all``: the ``max_txid`` of every
LTX file), check the newest with a drill (drill.py: restore at that TXID into scratch
space, ``integrity_check``, every row checksum); when it is damaged, bisect the TXIDs
for the newest clean one, restore it to ``--output`` and report the TXIDs and the
time lost (the LTX files' timestamps, 1 s resolution).

Assumption (stated, not proven): damage is monotone within an epoch. Once a TXID
restores damaged, later ones stay damaged until a snapshot; a restore at TXID T reads
only files up to T, so a bad file damages T and everything after it that is built on
it. Intermediate-only damage (a bad page rewritten by a later TXID) breaks the
assumption: the bisection may then return a clean point older than the newest clean
one (never a damaged one: every point returned passed the checks). When every probe
of the bisection failed, the search falls back to a linear scan downward over the
TXIDs it skipped, newest first, so an epoch whose probes were unlucky is still searched.

Invariants:
- never silent: the result carries the newest TXID, its damage and the loss, and the
  CLI prints it and exits with a code of its own (docs/CLI.md);
- read-only towards the bucket; probes live in a private scratch directory beside
  ``--output``, removed whatever happens; ``--output`` is only ever the linked, checked
  copy (never overwritten, never half-written).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import DataError
from edge.replication.drill import Litestream, check_copy, format_txid, scratch_dir
from edge.replication.objects import ObjectStore, open_store
from edge.replication.restore import link_into_place, newest_epoch_with_data, refuse_existing
from edge.replication.target import ReplicaTarget

__all__ = ["CleanPoint", "restore_newest_clean"]


@dataclass(frozen=True)
class CleanPoint:
    epoch: int
    txid: int  # the TXID restored to the output
    newest_txid: int
    newest_damage: str | None  # "kind: detail" of the newest TXID; None when it is clean
    txids_lost: int  # TXIDs of the epoch after the restored one
    seconds_lost: float | None  # newest TXID's file time minus the restored one's
    probes: int  # restores made to find it
    path: Path
    seconds: float

    @property
    def newest(self) -> bool:
        return self.txid == self.newest_txid

    def report(self) -> str:
        if self.newest:
            return (f"restored epoch {self.epoch} at its newest TXID {format_txid(self.txid)} "
                    f"(clean) to {self.path} in {self.seconds:.1f} s")
        lost = (f"{self.seconds_lost:.0f} s of commits" if self.seconds_lost is not None
                else "an unknown time of commits")
        return (f"restored epoch {self.epoch} at TXID {format_txid(self.txid)}, NOT the newest: "
                f"TXID {format_txid(self.newest_txid)} is damaged ({self.newest_damage}); "
                f"this point lacks {self.txids_lost} TXIDs and {lost}; written to {self.path} "
                f"after {self.probes} restores in {self.seconds:.1f} s")


def restore_newest_clean(
    target: ReplicaTarget,
    output: Path,
    *,
    epoch: int | None = None,
    store: ObjectStore | None = None,
    litestream_bin: str | None = None,
    timeout: float = 600.0,
    monotonic: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] | None = None,
) -> CleanPoint:
    """Restore the newest clean TXID of ``epoch`` (default: the newest with data) to
    ``output``. Raises ``DataError`` when no TXID is clean (nothing written),
    ``ConfigError`` when ``output`` exists, ``Unreachable`` for the bucket."""
    started = monotonic()
    output = refuse_existing(output)
    objects = store or open_store(target)
    objects.check_reachable()
    ep = epoch if epoch is not None else newest_epoch_with_data(target, store=objects)
    if ep is None or not objects.list_keys(f"e{ep}/", limit=1):
        raise DataError(f"replica {target.describe(ep)} holds no data to restore",
                        "check --replica and --epoch", code="no_replica")
    output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with scratch_dir(output.parent) as work:
        ls = Litestream(target, ep, work, litestream_bin=litestream_bin, timeout=timeout)
        files = ls.files()
        if not files:
            raise DataError(f"replica {target.describe(ep)} lists no LTX files",
                            "check --replica and --epoch", code="no_replica")
        stamps: dict[int, float | None] = {}
        for f in sorted(files, key=lambda f: f.level):  # the lowest level's time wins
            stamps.setdefault(f.max_txid, f.timestamp)
        txids = sorted(stamps)
        verdicts: dict[int, str | None] = {}  # index -> None (clean) or "kind: detail"

        def probe(i: int) -> bool:
            copy = work / f"probe-{txids[i]:x}.db"
            try:
                ls.restore(txids[i], copy)
                kind, detail, _rows = check_copy(copy, None)
            except DataError as exc:
                kind, detail = "restore_failed", exc.message
            verdicts[i] = None if kind is None else f"{kind}: {detail}"
            if log is not None:
                log(f"TXID {format_txid(txids[i])}: {verdicts[i] or 'clean'}")
            if kind is not None:
                copy.unlink(missing_ok=True)
            return kind is None

        best = _search(len(txids), probe)
        if best is None:
            raise DataError(
                f"no clean TXID in {target.describe(ep)} ({len(txids)} TXIDs, "
                f"{len(verdicts)} restored; newest: {verdicts[len(txids) - 1]})",
                f"try an older epoch with --epoch {ep - 1}" if ep > 1
                else "the replica holds no clean state; keep it for inspection")
        link_into_place(work / f"probe-{txids[best]:x}.db", output)
    newest = txids[-1]
    t_new, t_best = stamps[newest], stamps[txids[best]]
    return CleanPoint(
        epoch=ep, txid=txids[best], newest_txid=newest,
        newest_damage=verdicts[len(txids) - 1], txids_lost=len(txids) - 1 - best,
        seconds_lost=(t_new - t_best) if t_new is not None and t_best is not None else None,
        probes=len(verdicts), path=output, seconds=round(monotonic() - started, 3))


def _search(n: int, probe: Callable[[int], bool]) -> int | None:
    """The highest index whose probe passes, assuming monotone damage (see above)."""
    if probe(n - 1):
        return n - 1
    lo, hi = -1, n - 1  # lo: newest known clean (-1: none yet); hi: oldest known damaged
    tried = {n - 1}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        tried.add(mid)
        if probe(mid):
            lo = mid
        else:
            hi = mid
    if lo >= 0:
        return lo
    # Every probe failed: the damage may not be monotone. Scan what was skipped.
    for i in range(n - 2, -1, -1):
        if i not in tried and probe(i):
            return i
    return None

