"""Group commit's atomic requests (no savepoint of their own, writer.py): in a batch, a
refused one leaves nothing behind and the rest commit; a disk fault in one still fails
the whole batch with the disk's error; a non-atomic request keeps its savepoint. Batching
by the writer: a request that arrives while the leader's transaction runs joins it."""

from __future__ import annotations

import sqlite3
import threading
import time
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


def _arrive_during(writer: GroupCommitWriter, fn: object,
                   queued: int = 1) -> tuple[threading.Thread, list]:
    """Start a writer.run(fn) on another thread and wait until ``queued`` are queued."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(writer.run(fn)))  # type: ignore[arg-type]
    t.start()
    deadline = time.monotonic() + 10
    while len(writer._pending) < queued:
        assert time.monotonic() < deadline, "the second request never queued"
        time.sleep(0.001)
    return t, out


def test_a_request_arriving_during_the_transaction_joins_it(tmp_path: Path) -> None:
    conn = db(tmp_path / "d.db")
    writer = GroupCommitWriter(conn)
    late: list[threading.Thread] = []

    def first(c: sqlite3.Connection) -> str:
        c.execute("INSERT INTO t VALUES (1)")
        t, _ = _arrive_during(writer, insert(2))
        late.append(t)
        return "first"

    assert writer.run(first) == "first"
    late[0].join(10)
    assert rows(conn) == [1, 2]
    assert (writer.batches, writer.writes) == (1, 2)  # one transaction, one COMMIT
    conn.close()


def test_a_failed_lone_request_is_rolled_back_alone_and_a_late_one_commits(
        tmp_path: Path) -> None:
    conn = db(tmp_path / "e.db")
    writer = GroupCommitWriter(conn)
    late: list[tuple[threading.Thread, list]] = []

    def wrote_then_raised(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1)")
        late.append(_arrive_during(writer, insert(2)))
        raise Refused("after a write, without a savepoint")

    with pytest.raises(Refused):
        writer.run(wrote_then_raised)
    t, out = late[0]
    t.join(10)
    assert out == [None]  # the late request committed, in a transaction of its own
    assert rows(conn) == [2]
    assert writer.batches == 2
    conn.close()


def test_a_batch_already_at_the_absorb_limit_takes_no_late_request(tmp_path: Path) -> None:
    conn = db(tmp_path / "f.db")
    writer = GroupCommitWriter(conn, absorb_max=2)
    late: list[tuple[threading.Thread, list]] = []

    def first(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1)")
        late.append(_arrive_during(writer, insert(3), 1))
        late.append(_arrive_during(writer, insert(5), 2))

    batch = [_Request(first, True), _Request(insert(2), True), _Request(insert(4), True)]
    writer._committing = True  # as a leader's run() has it: the late requests wait
    writer._commit(batch)  # three already: over the limit, so the late ones wait
    assert len(batch) == 3 and writer.batches == 1
    assert rows(conn) == [1, 2, 4]
    assert len(writer._pending) == 2  # still queued for the next leader
    writer._pending[0].wake.release()  # hand it leadership, as the leader would
    for t, out in late:
        t.join(10)
        assert out == [None]
    assert rows(conn) == [1, 2, 3, 4, 5]
    conn.close()
