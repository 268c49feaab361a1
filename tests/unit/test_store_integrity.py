"""edge/store/integrity.py: the one integrity check, for an open store and for a file
nobody opened yet (a restored copy before it is linked into place)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edge.store import Store
from edge.store.integrity import file_problems


def a_database(tmp_path: Path) -> Path:
    path = tmp_path / "edge.db"
    store = Store.open(path, "full", 0.0)
    try:
        for i in range(300):  # enough rows for several b-tree pages
            store.insert_workflow(f"w{i}", "wf", '{"args":["' + "x" * 200 + '"]}', float(i))
        assert store.integrity_check() == "ok"
    finally:
        store.close()
    return path


def test_a_sound_file_has_no_problem_and_the_check_leaves_nothing_beside_it(
        tmp_path: Path) -> None:
    path = a_database(tmp_path)
    copy = tmp_path / "copy" / "edge.db"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert file_problems(copy) is None
    assert sorted(p.name for p in copy.parent.iterdir()) == ["edge.db"]  # no -wal, no -shm


def test_a_damaged_page_is_reported(tmp_path: Path) -> None:
    path = a_database(tmp_path)
    size = path.stat().st_size
    page = 4096
    assert size >= 6 * page
    with open(path, "r+b") as f:  # page 1 (the header) intact, a b-tree page overwritten
        f.seek(3 * page)
        f.write(os.urandom(page))
    problem = file_problems(path)
    assert problem is not None and problem != "ok"


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    path.write_bytes(b"not a database" * 100)
    assert file_problems(path) is not None
