"""Group commit's atomic requests (no savepoint of their own, writer.py): in a batch, a
refused one leaves nothing behind and the rest commit; a disk fault in one still fails
the whole batch with the disk's error; a non-atomic request keeps its savepoint."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.errors import WriteFailed
from edge.store.faults import classify
from edge.store.writer import GroupCommitWriter, _Request

BIG = 40_000


class Refused(Exception):
    pass


def db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x PRIMARY KEY)")
    return conn


def rows(conn: sqlite3.Connection) -> list[object]:
    return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]


def insert(x: object) -> object:
    def fn(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (?)", (x,))
    return fn


def cas_that_matches_nothing(c: sqlite3.Connection) -> None:
    cur = c.execute("UPDATE t SET x = 99 WHERE x = -1")
    if cur.rowcount != 1:
        raise Refused("no such row")


def test_a_refused_atomic_request_leaves_nothing_and_the_batch_commits(tmp_path: Path) -> None:
    conn = db(tmp_path / "a.db")
    writer = GroupCommitWriter(conn)
    batch = [_Request(insert(1), True), _Request(cas_that_matches_nothing, True),
             _Request(insert(1), True),  # a failed statement (UNIQUE): SQLite undoes it
             _Request(insert(2), True)]
    writer._commit(batch)
    assert batch[0].error is None and batch[3].error is None
    assert isinstance(batch[1].error, Refused)
    assert isinstance(batch[2].error, sqlite3.IntegrityError)
    assert rows(conn) == [1, 2]
    conn.close()


def test_a_non_atomic_request_that_wrote_then_raised_is_rolled_back(tmp_path: Path) -> None:
    conn = db(tmp_path / "b.db")
    writer = GroupCommitWriter(conn)

    def wrote_then_raised(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (5)")
        raise Refused("after a write")

    batch = [_Request(insert(1), True), _Request(wrote_then_raised), _Request(insert(2), True)]
    writer._commit(batch)
    assert isinstance(batch[1].error, Refused)
    assert rows(conn) == [1, 2]  # its savepoint took its row back
    conn.close()


@pytest.mark.parametrize("atomic", [True, False])
def test_a_disk_fault_in_an_atomic_request_fails_the_whole_batch(tmp_path: Path,
                                                                 atomic: bool) -> None:
    conn = db(tmp_path / "c.db")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    writer = GroupCommitWriter(conn)
    batch = [_Request(insert(1), atomic), _Request(insert("x" * BIG), True),
             _Request(insert(2), atomic)]
    writer._commit(batch)
    for req in batch:
        assert req.done and req.error is not None
        assert isinstance(classify(req.error, tmp_path / "c.db"), WriteFailed), req.error
    assert rows(conn) == []
    conn.close()
