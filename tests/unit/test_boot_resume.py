"""Resume at boot in bulk (edge/resume.py): a node booting over a file with hundreds of
in-flight workflows, as a crash leaves them, resumes every registered one from its
checkpoints and keeps every promise of the per-id path.

The file is written through the store's own verbs (the same SQL, checksums and
fencing as a real run that was killed mid-way); then a real node boots over it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import edge
from edge.errors import WriteFailed
from edge.serialization import encode
from edge.store import OpRow, Store, bulk, lifecycle, listing, recovery
from tests.conftest import wait_until

N_SYNC, N_ASYNC = 160, 80
DONE_STEPS = 2  # checkpointed before the crash; step 3 is live at resume


def make_app(delay: float = 0.0) -> tuple[edge.App, list[str]]:
    """``delay``: real seconds each live step body waits (a slow worker)."""
    app = edge.App("boot-resume")
    ran: list[str] = []  # every step body that ran: "<workflow id>/<i>"
    lock = threading.Lock()
    never = threading.Event()

    def mark(i: int) -> str:
        if delay:
            never.wait(delay)
        with lock:
            ran.append(f"{edge.context().workflow_id}/{i}")
        return f"live-{i}"

    @app.step(name="work")
    def work(i: int) -> str:
        return mark(i)

    @app.step(name="awork")
    async def awork(i: int) -> str:
        return mark(i)

    @app.workflow(name="sync3")
    def sync3() -> list[str]:
        return [work(i) for i in range(1, 4)]

    @app.workflow(name="async3")
    async def async3() -> list[str]:
        return [await awork(i) for i in range(1, 4)]

    return app, ran


def build(db: Path) -> dict[str, str]:
    """In-flight workflows (RUNNING under a dead run's token, DONE_STEPS checkpoints
    each, outputs ``ckpt-<i>``); returns {id: kind}."""
    now = 1_700_000_000.0
    store = Store.open(db, "normal", now)
    inp = encode({"args": [], "kwargs": {}}, "input")
    kinds: dict[str, str] = {}

    def inflight(wid: str, name: str, step: str, kind: str) -> None:
        store.insert_workflow(wid, name, inp, now)
        assert store.claim(wid, "crashed-run", now)
        for seq in range(1, DONE_STEPS + 1):
            store.record_op(OpRow(wid, seq, "step", step, "SUCCEEDED", 1,
                                  encode(f"ckpt-{seq}", "output"), None, now, now),
                            "crashed-run", now)
        kinds[wid] = kind

    try:
        for i in range(N_SYNC):
            inflight(f"s{i:04d}", "sync3", "work", "sync")
        for i in range(N_ASYNC):
            inflight(f"a{i:04d}", "async3", "awork", "async")
        inflight("gone", "no-such-workflow", "work", "unknown")
        # Named to sort right after "gone": a damaged checkpoint also blocks the
        # workflow whose checkpoints sit just before it in key order (Store.load_ops
        # checks the rows beside a range), and "gone" never loads any.
        inflight("h-damaged", "sync3", "work", "damaged")
        inflight("cancel-me", "sync3", "work", "cancel")
        assert lifecycle.request_cancel(store, "cancel-me", now)[0] == "requested"  # durable flag
    finally:
        store.close(clean=True)
    # A checkpoint's payload changed under its checksum (operations carry no trigger:
    # their checksum is computed by the store), as a flipped bit would.
    con = sqlite3.connect(db)
    try:
        con.execute("UPDATE operations SET output = '\"CKPT-1\"' "
                    "WHERE workflow_id = 'h-damaged' AND seq = 1")
        con.commit()
    finally:
        con.close()
    return kinds


class ClaimSpy:
    """Every id claimed in bulk, and every id anyone tried to claim one by one (the
    real verbs still run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bulk: list[str] = []
        self.per_id: list[str] = []
        self.bulk_errors: list[BaseException] = []
        real_many, real_one = bulk.claim_many, Store.claim

        def claim_many(store: Store, ids: Any, tokens: Any, now: float, **kw: Any) -> Any:
            try:
                got = real_many(store, ids, tokens, now, **kw)
            except BaseException as exc:
                self.bulk_errors.append(exc)
                raise
            self.bulk.extend(got)  # claimed (an unknown name is passed, never claimed)
            return got

        def claim(store: Store, id: str, token: str, now: float) -> bool:
            self.per_id.append(id)
            return real_one(store, id, token, now)

        monkeypatch.setattr(bulk, "claim_many", claim_many)
        monkeypatch.setattr(Store, "claim", claim)


def crashed(tmp_path: Path) -> tuple[Path, list[str]]:
    """A data dir whose file ``build`` wrote: (the dir, the ids of the registered
    workflows, which every boot must resume)."""
    d = tmp_path / "data"
    d.mkdir()
    kinds = build(d / "edge.db")
    return d, [w for w, k in kinds.items() if k in ("sync", "async")]


def assert_all_resumed(node: edge.Node, registered: list[str], timeout: float) -> None:
    """Each registered workflow's result is its checkpoints plus the live last step."""
    for wid in registered:
        assert node.verbs.result(wid, timeout=timeout) == ["ckpt-1", "ckpt-2", "live-3"], wid


def boot_and_resume_all(d: Path, registered: list[str]) -> list[str]:
    """Boot a node (four workers) over ``d``, check ``assert_all_resumed``, stop it;
    returns its ``ran`` list."""
    app, ran = make_app()
    node = edge.Node(app, data_dir=d, workers=4).start()
    try:
        assert_all_resumed(node, registered, timeout=60)
    finally:
        node.stop()
    return ran


def boot_one_slow_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                         ) -> tuple[Path, list[str], edge.Node, list[str]]:
    """``crashed``'s dir booted with one slow worker and chunks of 32, returned once
    claimed sync runs wait in its queue (two chunks ahead): (the dir, the registered
    ids, the running node, its ``ran`` list). The caller stops the node."""
    d, registered = crashed(tmp_path)
    monkeypatch.setattr(bulk, "CLAIM_BATCH", 32)
    app, ran = make_app(delay=0.02)
    node = edge.Node(app, data_dir=d, workers=1).start()
    try:
        wait_until(lambda: node.resumer.claimed >= 96 and node.workers.depth() >= 32,
                   what="claimed runs queued behind the worker")
    except BaseException:
        node.stop(grace=5)
        raise
    return d, registered, node, ran


def counts_at_rest(db: Path) -> dict[str, int]:
    """The workflows per status of the file, read once no node runs over it."""
    s = Store.inspect(db)
    try:
        return listing.counts(s)
    finally:
        s.close()


def test_boot_resumes_hundreds_in_bulk_and_keeps_every_promise(tmp_path, monkeypatch):
    d, registered = crashed(tmp_path)
    monkeypatch.setattr(bulk, "CLAIM_BATCH", 64)  # several chunks, paced by the queue
    spy = ClaimSpy(monkeypatch)
    app, ran = make_app()
    node = edge.Node(app, data_dir=d, workers=4).start()
    try:
        def settled() -> bool:
            rows = {w: node.store.get_workflow(w) for w in registered}
            return all(r is not None and r.status == "SUCCEEDED" for r in rows.values())

        wait_until(settled, timeout=60, what="every registered workflow SUCCEEDED")
        assert_all_resumed(node, registered, timeout=5)

        wait_until(lambda: node.store.get_workflow("cancel-me").status == "CANCELLED",
                   what="the cancel requested before the crash honoured")

        def blocked(wid: str, prefix: str) -> bool:
            wf = node.store.get_workflow(wid)
            return wf.status == "PENDING" and (wf.blocked_on or "").startswith(prefix)

        wait_until(lambda: blocked("h-damaged", "corrupt:"), what="damaged blocked corrupt")
        wait_until(lambda: blocked("gone", "unknown workflow"), what="unknown blocked")
        assert node.store.get_workflow("gone").run_token is None
        assert node.resumer.join(10)
    finally:
        node.stop()
    # Only each live step ran, once: no checkpointed body ran again, the damaged one's
    # and the cancelled one's did not run at all.
    assert sorted(ran) == sorted(f"{w}/3" for w in registered)
    # The bulk path claimed them (each once, in chunks); the unknown one was never
    # claimed by anyone; nothing registered fell back to the per-id claim.
    assert sorted(spy.bulk) == sorted(registered + ["h-damaged", "cancel-me"])
    assert "gone" not in spy.per_id and not set(spy.per_id) & set(registered)
    assert node.resumer.claimed == len(registered) + 2
    assert counts_at_rest(d / "edge.db").get("RUNNING", 0) == 0


def test_a_full_disk_during_the_bulk_claim_falls_back_to_the_per_id_path(
        tmp_path, monkeypatch):
    d, registered = crashed(tmp_path)
    spy = ClaimSpy(monkeypatch)
    real_recover = recovery.recover

    def recover_then_fill(store: Store, now: float) -> Any:
        rec = real_recover(store, now)

        # The disk is full from the first claim on: a deterministic SQLITE_FULL.
        def cap(conn: sqlite3.Connection) -> None:
            n = int(conn.execute("PRAGMA page_count").fetchone()[0])
            conn.execute(f"PRAGMA max_page_count = {n}")

        store.write(cap)
        return rec

    monkeypatch.setattr(recovery, "recover", recover_then_fill)
    app, ran = make_app()
    node = edge.Node(app, data_dir=d, workers=4).start()
    try:
        wait_until(lambda: spy.bulk_errors, timeout=30, what="the bulk claim refused")
        assert isinstance(spy.bulk_errors[0], WriteFailed)
        # Every id of the refused chunk went to the per-id path (claimed one by one, or
        # stranded in write recovery while the disk is full): none was lost.
        wait_until(lambda: set(registered) <= set(spy.per_id), timeout=30,
                   what="the chunk handed to the per-id path")

        def uncap(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA max_page_count = 1000000")

        node.store.write(uncap)
        assert_all_resumed(node, registered, timeout=60)
    finally:
        node.stop()
    # No checkpointed body ran again. The live step may have run more than once: a
    # body whose checkpoint hit the full disk runs again (at least once, never lost).
    assert set(ran) == {f"{w}/3" for w in registered}


def test_a_stop_mid_resume_gives_back_the_claimed_runs_no_worker_started(
        tmp_path, monkeypatch):
    d, registered, node, ran = boot_one_slow_worker(tmp_path, monkeypatch)
    node.stop(grace=5)
    counts = counts_at_rest(d / "edge.db")
    # Nothing is left RUNNING by a planned stop: the runs claimed in bulk and never
    # started are PENDING again (a crash instead would leave them for recover).
    assert counts.get("RUNNING", 0) == 0 and counts.get("PENDING", 0) > 0, counts
    ran2 = boot_and_resume_all(d, registered)
    # Across both boots no checkpointed body ran again.
    assert {r.rsplit("/", 1)[1] for r in ran + ran2} == {"3"}


def test_a_failure_after_the_bulk_claim_gives_the_runs_back_and_they_resume(
        tmp_path, monkeypatch):
    d, registered = crashed(tmp_path)
    monkeypatch.setattr(bulk, "CLAIM_BATCH", 64)
    real = bulk.load_ops_many
    failed: list[int] = []

    def load_once_fails(store: Store, ids: Any) -> Any:
        if not failed:
            failed.append(len(ids))
            raise sqlite3.OperationalError("disk I/O error")  # a read that failed
        return real(store, ids)

    monkeypatch.setattr(bulk, "load_ops_many", load_once_fails)
    spy = ClaimSpy(monkeypatch)
    ran = boot_and_resume_all(d, registered)
    assert failed == [64]
    # The first chunk was claimed in bulk, given back when its load failed, and then
    # claimed again one by one: none stayed RUNNING without an owner until a reboot.
    first = spy.bulk[:64]
    assert set(first) <= set(spy.per_id)
    assert set(ran) == {f"{w}/3" for w in registered}


def test_a_cancel_of_a_run_claimed_in_bulk_and_not_started_is_honoured(
        tmp_path, monkeypatch):
    _, _, node, ran = boot_one_slow_worker(tmp_path, monkeypatch)
    try:
        rows, _ = listing.list_workflows(node.store, status="RUNNING", limit=500)
        # The last sync run claimed is at the back of the one worker's queue.
        victim = max(r.id for r in rows if r.workflow == "sync3")
        assert node.verbs.cancel(victim)["cancel"] == "requested"  # it is RUNNING: claimed
        wait_until(lambda: node.store.get_workflow(victim).status == "CANCELLED",
                   timeout=60, what="the claimed, queued run cancelled")
    finally:
        node.stop(grace=5)
    assert f"{victim}/3" not in ran  # its live step never ran


def test_wait_idle_covers_the_ids_the_bulk_resume_has_not_handed_out_yet(
        tmp_path, monkeypatch):
    d, registered = crashed(tmp_path)
    monkeypatch.setattr(bulk, "CLAIM_BATCH", 16)
    app, ran = make_app()
    node = edge.Node(app, data_dir=d, workers=2).start()
    try:
        # TestNode.run_until_idle's wait: true only once everything resumed has run.
        assert node.workers.wait_idle(60)
        done = {w: node.store.get_workflow(w).status for w in registered}
        assert set(done.values()) == {"SUCCEEDED"}, done
    finally:
        node.stop()
