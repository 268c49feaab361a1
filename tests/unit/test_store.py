"""The store: migrations, verify mode, newer/foreign files, checksums, CAS, group commit."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest

from edge.errors import ChecksumMismatch, Conflict, DataError
from edge.store import LATEST, OpRow, StaleRun, Store, listing, migrations, recovery, verify


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_fresh_database_is_at_latest_version(tmp_path):
    s = Store.open(tmp_path / "e.db")
    assert s.schema_version() == LATEST
    conn = sqlite3.connect(tmp_path / "e.db")
    versions = [r[0] for r in conn.execute("SELECT version FROM edge_schema ORDER BY version")]
    assert versions == [m.version for m in migrations.MIGRATIONS]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


def test_verify_mode_never_writes(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    before = sha(db)
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert [m.version for m in migrations.pending(ro)] == [m.version for m in migrations.MIGRATIONS]
    ro.close()
    assert sha(db) == before


def test_newer_schema_is_refused(tmp_path):
    s = Store.open(tmp_path / "e.db")
    s.close()
    conn = sqlite3.connect(tmp_path / "e.db")
    conn.execute("INSERT INTO edge_schema VALUES (?, 'future', 0)", (LATEST + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(DataError, match="newer than this edge knows") as err:
        Store.open(tmp_path / "e.db")
    assert err.value.exit_code == 4


def test_foreign_and_garbage_files_are_refused_untouched(tmp_path):
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    before = sha(foreign)
    with pytest.raises(DataError, match="not an edge database"):
        Store.open(foreign)
    with pytest.raises(DataError, match="not an edge database"):
        Store.inspect(foreign)
    assert sha(foreign) == before
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x13" * 8192)
    with pytest.raises(DataError):
        Store.open(garbage)
    assert garbage.read_bytes() == b"\x13" * 8192


def _op(wid: str, seq: int, status: str = "SUCCEEDED", output: str = '{"amount":500}') -> OpRow:
    return OpRow(wid, seq, "step", "charge", status, 1, output, None, 1.0, 2.0)


def test_checksum_mismatch_is_detected_and_names_workflow_and_seq(tmp_path):
    s = Store.open(tmp_path / "e.db")
    s.insert_workflow("w1", "wf", '{"args":[],"kwargs":{}}', 1.0)
    assert s.claim("w1", "t", 1.0)
    s.record_op(_op("w1", 1), "t", 2.0)
    s.close()
    # Flip one bit inside the payload bytes of the page, as a disk would.
    db = tmp_path / "e.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    raw = bytearray(db.read_bytes())
    at = raw.find(b'{"amount":500}')
    assert at > 0
    raw[at + 11] ^= 0x01  # "500" -> "510"-ish: still valid JSON, still a valid page
    db.write_bytes(bytes(raw))
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # SQLite cannot see it
    conn.close()
    s = Store.open(db)
    with pytest.raises(ChecksumMismatch, match=r"workflow 'w1' at seq 1"):
        s.load_ops("w1")
    with pytest.raises(ChecksumMismatch):
        verify.verify_checksums(s)
    s.close()


def test_final_checkpoint_is_never_overwritten(tmp_path):
    s = Store.open(tmp_path / "e.db")
    s.insert_workflow("w", "wf", "{}", 1.0)
    s.claim("w", "tok", 1.0)
    s.record_op(_op("w", 1), "tok", 2.0)
    with pytest.raises(Conflict, match="already has a final checkpoint"):
        s.record_op(_op("w", 1, output='{"amount":999}'), "tok", 3.0)
    assert s.load_ops("w")[0].output == '{"amount":500}'
    s.close()


def test_stale_run_token_cannot_write(tmp_path):
    s = Store.open(tmp_path / "e.db")
    s.insert_workflow("w", "wf", "{}", 1.0)
    assert s.claim("w", "first", 1.0)
    assert not s.claim("w", "second", 1.0)  # CAS: claimed once
    assert recovery.release(s, "w", "first", 2.0)
    assert s.claim("w", "second", 2.0)
    with pytest.raises(StaleRun):
        s.record_op(_op("w", 1), "first", 3.0)
    assert s.load_ops("w") == []
    s.close()


def test_recovery_requeues_running_and_lists_timers(tmp_path):
    s = Store.open(tmp_path / "e.db")
    for i in range(3):
        s.insert_workflow(f"w{i}", "wf", "{}", float(i))
    s.claim("w0", "t", 1.0)
    s.claim("w1", "t1", 1.0)
    s.suspend("w1", "t1", "SLEEPING", 1.0, wake_at=50.0, waiting_for=None, op=None)
    rec = recovery.recover(s, 2.0)
    assert rec.pending == ["w0", "w2"] and rec.timers == [(50.0, "w1")]
    assert rec.reset_running == 1
    assert not recovery.wake(s, "w1", 49.9)  # never early
    assert recovery.wake(s, "w1", 50.0)
    s.close()


def test_group_commit_batches_concurrent_writers(tmp_path):
    s = Store.open(tmp_path / "e.db")
    n_threads, per_thread = 8, 50
    barrier = threading.Barrier(n_threads)

    def worker(k: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            s.insert_workflow(f"w{k}-{i}", "wf", "{}", 1.0)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batches, writes = s.commit_stats
    assert sum(listing.counts(s).values()) == n_threads * per_thread
    assert writes >= n_threads * per_thread
    assert batches < writes  # at least some transactions carried several writes
    s.close()


def test_one_failing_write_in_a_batch_does_not_undo_the_others(tmp_path):
    s = Store.open(tmp_path / "e.db")
    s.insert_workflow("w", "wf", "{}", 1.0)
    s.claim("w", "tok", 1.0)
    s.record_op(_op("w", 1), "tok", 1.0)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def bad() -> None:
        barrier.wait()
        try:
            s.record_op(_op("w", 1, output="2"), "tok", 2.0)
        except Conflict as exc:
            errors.append(exc)

    def good() -> None:
        barrier.wait()
        s.record_op(_op("w", 2), "tok", 2.0)

    ts = [threading.Thread(target=bad), threading.Thread(target=good)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(errors) == 1
    assert [op.seq for op in s.load_ops("w")] == [1, 2]
    s.close()


def test_the_read_pool_shrinks_back_after_a_burst(tmp_path):
    # 200 reads at once open 200 readers; afterwards at most `keep` stay open (the pool
    # used to keep every reader it ever opened: 181 after 2,000 API connections).
    s = Store.open(tmp_path / "e.db")
    n = 200
    inside = threading.Barrier(n + 1, timeout=60)
    leave = threading.Event()

    def read() -> None:
        with s.read() as conn:
            conn.execute("SELECT 1").fetchone()
            inside.wait()
            leave.wait(60)

    threads = [threading.Thread(target=read) for _ in range(n)]
    for t in threads:
        t.start()
    inside.wait()
    assert s.readers.sizes == (0, n)
    leave.set()
    for t in threads:
        t.join(60)
    assert s.readers.sizes == (s.readers.keep, s.readers.keep)
    assert s.get_workflow("nope") is None  # a pooled reader still serves
    # A failed read's reader is dropped, not pooled.
    with pytest.raises(sqlite3.OperationalError), s.read() as conn:
        conn.execute("SELECT * FROM no_such_table")
    assert s.readers.sizes == (s.readers.keep - 1, s.readers.keep - 1)
    s.close()
    assert s.readers.sizes == (0, 0)
