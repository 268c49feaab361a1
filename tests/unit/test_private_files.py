"""The files the store and the local lock create are 0600, whatever the umask.

SQLite gives the -wal and -shm it creates the main file's mode, so the database must
be 0600 before SQLite first opens it (``store.connection.make_private``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.errors import DataError
from edge.leader import LocalLock, node_id
from edge.store import Store


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """The container image's umask, for this test only."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def companions(db: Path) -> list[Path]:
    return [db, Path(f"{db}-wal"), Path(f"{db}-shm")]


def test_a_new_database_and_its_wal_and_shm_are_private(tmp_path, wide_umask):
    db = tmp_path / "edge.db"
    store = Store.open(db)
    try:
        store.set_meta({"k": "v"})  # a write: the WAL exists and holds a frame
        assert [mode(p) for p in companions(db)] == [0o600] * 3
    finally:
        store.close()


def test_a_readable_database_left_behind_is_made_private_before_it_is_opened(
        tmp_path, wide_umask):
    db = tmp_path / "edge.db"
    store = Store.open(db)
    store.set_meta({"k": "v"})
    for p in companions(db):
        os.chmod(p, 0o644)  # an older edge's files (still open here: -wal and -shm exist)
    reopened = Store.open(db)
    try:
        assert [mode(p) for p in companions(db)] == [0o600] * 3
        assert reopened.get_meta("k") == "v"
    finally:
        reopened.close()
        store.close()


def test_a_database_in_a_missing_directory_is_one_clear_error(tmp_path, wide_umask):
    with pytest.raises(DataError) as err:
        Store.open(tmp_path / "nowhere" / "edge.db")
    assert "cannot create or use the database" in err.value.message
    assert err.value.hint and "\n" not in err.value.message
    assert not (tmp_path / "nowhere").exists()


def test_node_id_and_the_lock_file_are_private(tmp_path, wide_umask):
    (tmp_path / "node-id.tmp").write_text("half")  # a crash's leftover, 0644
    nid = node_id(tmp_path)
    assert nid.startswith("node-") and node_id(tmp_path) == nid
    assert mode(tmp_path / "node-id") == 0o600
    lock = LocalLock(tmp_path)
    lock.acquire()
    try:
        assert mode(tmp_path / "edge.lock") == 0o600
    finally:
        lock.release()
