"""Every TXID of a replica written under load restores clean (issue 18's audit).

Restoring only the newest state hid the damage: before the fix many intermediate
TXIDs were corrupt too, and "try an older timestamp" took several tries. Here a node
takes load from 8 HTTP clients (starts acknowledged once replicated), is stopped with
SIGTERM in the middle of it, restarts on the same disk (the same epoch, the file kept)
and takes more load, and is stopped again. Then every TXID the replica lists, at every
compaction level, is restored with ``litestream restore -txid`` and checked: ``PRAGMA
integrity_check``, every row checksum, and each final checkpoint it holds is the one
the node holds (a point in the past may lack later checkpoints, never differ).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from edge.replication import child_env, find_litestream, parse_replica_url
from edge.store import FINAL_STATUSES, Store
from edge.store.integrity import structure_problem
from edge.store.listing import list_workflows
from edge.store.verify import verify_checksums
from tests.conftest import BOOT_TIMEOUT
from tests.dr.conftest import poll
from tests.dr.test_restore_integrity import Load, _finished

WORKFLOWS = 300  # per run; with replicated acks each waited barrier is a TXID (~100 a run)
Checkpoints = dict[str, dict[int, tuple[str, str]]]


def final_checkpoints(db: Path) -> Checkpoints:
    """Each workflow's final checkpoints {seq: (name, status)}, every row verified."""
    store = Store.inspect(db)
    try:
        verify_checksums(store)
        rows = list_workflows(store, limit=100_000)[0]
        return {r.id: {op.seq: (op.name, op.status) for op in store.load_ops(r.id)
                       if op.status in FINAL_STATUSES}
                for r in rows}
    finally:
        store.close()


def txids(url: str, env: dict[str, str]) -> list[int]:
    """Every TXID a replica's LTX files end at, all levels (snapshots and compactions)."""
    out = subprocess.run([find_litestream(None), "ltx", "-level", "all", "-json", url],
                         capture_output=True, text=True, env=env, timeout=60, check=True)
    return sorted({int(f["max_txid"], 16) for f in json.loads(out.stdout)})


def audit(url: str, env: dict[str, str], local: Checkpoints, work: Path) -> dict[str, Any]:
    found = txids(url, env)
    corrupt: list[str] = []
    for txid in found:
        out = work / f"{txid:x}" / "edge.db"
        out.parent.mkdir(parents=True)
        res = subprocess.run([find_litestream(None), "restore", "-txid", f"{txid:016x}", "-o",
                              str(out), url], capture_output=True, text=True, env=env,
                             timeout=120)
        if res.returncode != 0:
            corrupt.append(f"{txid}: restore failed: {res.stderr.strip()[-300:]}")
            continue
        structure = structure_problem(out)
        if structure is not None:
            corrupt.append(f"{txid}: {structure}")
            continue
        try:
            copy = final_checkpoints(out)
        except Exception as exc:  # noqa: BLE001 - any failure is this TXID's finding
            corrupt.append(f"{txid}: {exc}")
            continue
        for wid, ops in copy.items():
            differ = {seq: op for seq, op in ops.items() if local.get(wid, {}).get(seq) != op}
            if differ:
                corrupt.append(f"{txid}: {wid} holds checkpoints the node does not: {differ}")
                break
    return {"txids": len(found), "corrupt": corrupt}


@pytest.mark.timeout(1200)  # ~90 s idle; a loaded CI box is several times slower
@pytest.mark.parametrize("kind", ["file", "s3"])
def test_every_txid_of_a_replica_written_under_load_restores_clean(site, kind):
    if kind == "file":
        replica = f"file://{site.tmp / 'replica'}"
    else:
        replica = f"s3://{site.bucket}/audit?endpoint={site.endpoint}"
    data = site.tmp / "box"
    accepted: list[str] = []
    for run in range(2):  # the second run: a same-box restart on the kept file
        node = site.node(f"a{run}", data_dir=data, replica=replica)
        node.wait_ready(BOOT_TIMEOUT)
        # Replicated acks: waited barriers all along, each of which can cost Litestream
        # its read lock (the hazard the audit must be able to meet).
        load = Load(node, run, ack="replicated", workflows=WORKFLOWS)
        poll(lambda n=node, ld=load: ld.count() >= WORKFLOWS // 2
             and _finished(n) >= WORKFLOWS // 8, 300, "load under way", interval=0.05)
        assert node.term(timeout=90) == 0, node.text()
        load.join()
        accepted += load.accepted
    local = final_checkpoints(data / "edge.db")
    assert set(accepted) <= set(local)
    target = parse_replica_url(replica)
    t0 = time.monotonic()
    found = audit(target.litestream_url(1), child_env(target), local, site.tmp / "audit")
    print(f"\n[every TXID, {kind}] {found['txids']} TXIDs restored and checked in "
          f"{time.monotonic() - t0:.1f} s: {len(found['corrupt'])} corrupt")
    assert found["txids"] >= 10, "too few TXIDs for an audit: was the load replicated?"
    assert not found["corrupt"], "\n".join(found["corrupt"])
