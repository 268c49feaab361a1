"""Epoch discovery, restore (latest, by epoch, by timestamp), corrupt replicas, quarantine."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.errors import ConfigError, DataError, Unreachable
from edge.replication import (
    list_epochs,
    newest_epoch_with_data,
    open_store,
    parse_replica_url,
    prune_epochs,
    quarantine,
    restore,
)


def test_epoch_discovery_skips_empty_and_foreign_paths(target):
    store = open_store(target)
    store.put("e1/0000/a.ltx", b"x")
    store.put("e3/0000/b.ltx", b"y")
    store.put("e01/c.ltx", b"z")  # not an epoch name
    store.put("notes/e9.txt", b"z")
    store.put("lease.json", b"{}")
    if target.scheme == "file":
        Path(target.prefix, "e2").mkdir()  # an owner that died before its first upload
        Path(target.prefix, "e7", "0000").mkdir(parents=True)
    assert list_epochs(target) == [1, 3]
    assert newest_epoch_with_data(target) == 3
    assert newest_epoch_with_data(target, at_most=2) == 1
    assert newest_epoch_with_data(target, at_most=0) is None


def test_restore_picks_the_newest_epoch_with_data(
    tmp_path, target, add_rows, count_rows, replicate_once
):
    db = tmp_path / "edge.db"
    add_rows(db, 10)
    replicate_once(db, target, 1, tmp_path / "w")
    add_rows(db, 5)
    replicate_once(db, target, 2, tmp_path / "w")
    # e3 exists in the lease's eyes but holds nothing yet (just taken over).
    assert newest_epoch_with_data(target) == 2
    res = restore(target, tmp_path / "out" / "edge.db")
    assert res.epoch == 2 and res.timestamp is None and count_rows(res.path) == 15
    old = restore(target, tmp_path / "out1" / "edge.db", epoch=1)
    assert old.epoch == 1 and count_rows(old.path) == 10
    with pytest.raises(DataError) as err:
        restore(target, tmp_path / "out3" / "edge.db", epoch=3)
    assert err.value.code == "no_replica" and err.value.exit_code == 4


def _next_second() -> datetime:
    """Wait (polling the clock) until the wall clock is past the next whole second + 0.1 s.

    S3 LastModified has one-second resolution; points in time in this test must
    fall in different seconds from the uploads around them.
    """
    target = int(time.time()) + 1.1
    while time.time() < target:
        time.sleep(0.01)
    return datetime.now(UTC)


def test_timestamp_picks_the_epoch_covering_it_and_clamps_to_the_end(
    tmp_path, s3_target, add_rows, count_rows, replicate_once
):
    db, work = tmp_path / "edge.db", tmp_path / "w"
    add_rows(db, 10, tag="a")
    replicate_once(db, s3_target, 1, work)
    t1 = _next_second()
    _next_second()
    add_rows(db, 10, tag="b")
    replicate_once(db, s3_target, 1, work)
    t2 = _next_second()
    _next_second()
    add_rows(db, 10, tag="c")
    replicate_once(db, s3_target, 2, work)  # a takeover's first upload: the whole history
    t3 = datetime.now(UTC)

    def at(ts: datetime, name: str) -> tuple[int, int, datetime | None]:
        res = restore(s3_target, tmp_path / name / "edge.db", timestamp=ts)
        return res.epoch, count_rows(res.path), res.timestamp

    assert at(t1, "t1")[:2] == (1, 10)
    assert at(t2, "t2")[:2] == (1, 20)  # e2 began after t2
    assert at(t3, "t3")[:2] == (2, 30)
    epoch, rows, effective = at(t3 + timedelta(days=30), "future")
    assert (epoch, rows, effective) == (2, 30, None)  # past the end: the latest state
    naive = t1.astimezone(UTC).replace(tzinfo=None)  # naive means UTC
    assert at(naive, "naive")[:2] == (1, 10)
    with pytest.raises(DataError) as err:
        restore(s3_target, tmp_path / "early" / "edge.db", timestamp=t1 - timedelta(hours=1))
    assert err.value.code == "no_replica" and "starts at" in err.value.hint


def test_corrupt_replica_is_a_data_error(tmp_path, target, add_rows, replicate_once):
    db = tmp_path / "edge.db"
    add_rows(db, 10)
    replicate_once(db, target, 1, tmp_path / "w")
    store = open_store(target)
    for obj in store.list_keys("e1/"):
        store.put(obj.key, os.urandom(max(obj.size, 64)))
    out = tmp_path / "out" / "edge.db"
    with pytest.raises(DataError) as err:
        restore(target, out)
    assert err.value.exit_code == 4 and "restore from" in err.value.message and err.value.hint
    assert not out.exists()
    assert not [p for p in out.parent.iterdir()]  # no half-restored leftovers


def test_restore_never_overwrites(tmp_path, target, add_rows, replicate_once):
    db = tmp_path / "edge.db"
    add_rows(db, 1)
    replicate_once(db, target, 1, tmp_path / "w")
    out = tmp_path / "out.db"
    Path(f"{out}-wal").write_bytes(b"stale")
    with pytest.raises(ConfigError) as err:
        restore(target, out)
    assert "already exists" in err.value.message


def test_restore_of_an_empty_replica_says_so(tmp_path, target):
    with pytest.raises(DataError) as err:
        restore(target, tmp_path / "out.db")
    assert err.value.code == "no_replica"


def test_restore_from_an_unreachable_bucket_fails_fast(tmp_path, bucket):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = parse_replica_url(f"s3://{bucket}/p?endpoint=http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(Unreachable):
        restore(target, tmp_path / "out.db")
    assert time.monotonic() - started < 5.0


def test_quarantine_moves_the_database_and_its_companions(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "edge.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    meta = data / ".edge.db-litestream"
    (meta / "ltx" / "0").mkdir(parents=True)
    names = ["edge.db", "edge.db-wal", "edge.db-shm"]
    assert all((data / n).exists() for n in names)
    dest = quarantine(db, data, "lease epoch 3 > local 2", now=lambda: 1_700_000_000.0)
    con.close()  # after the move: the open handles follow the files
    assert dest.parent == data / "quarantine"
    assert dest.name == "20231114T221320Z-lease-epoch-3-local-2"
    assert sorted(p.name for p in dest.iterdir()) == sorted([*names, ".edge.db-litestream"])
    assert not any((data / n).exists() for n in names) and not meta.exists()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    again = quarantine(db, data, "lease epoch 3 > local 2", now=lambda: 1_700_000_000.0)
    assert again != dest and again.exists()  # same second, same reason: a distinct dir


def test_prune_keeps_the_current_and_the_newest_readable_epoch(target):
    store = open_store(target)
    for ep in (1, 2, 3, 5):
        store.put(f"e{ep}/0000/f.ltx", b"x")
    now = time.time()
    assert prune_epochs(target, keep_epoch=4, older_than_seconds=3600, now=now) == []
    later = now + 8 * 86400
    # e4 (the lease's epoch) is still empty: e3 is what a restore reads, so it stays.
    assert prune_epochs(target, keep_epoch=4, older_than_seconds=7 * 86400, now=later) == [1, 2]
    assert list_epochs(target) == [3, 5]
