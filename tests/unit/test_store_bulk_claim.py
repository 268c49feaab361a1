"""claim_many hands back the claimed rows from the claim itself (RETURNING), and a row
that fails its checksum is refused alone: not claimed, not returned, left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ChecksumMismatch
from edge.store import Store
from edge.store.bulk import claim_many

NOW = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "e.db", "normal", NOW)
    yield s  # type: ignore[misc]
    s.close()


def test_claimed_rows_are_the_stored_rows(store: Store) -> None:
    store.insert_workflow("a", "w", '{"x":1}', NOW, deadline=NOW + 50)
    store.insert_workflow("b", "w", "{}", NOW)
    got = claim_many(store, ["a", "b"], ["ta", "tb"], NOW + 1)
    assert set(got) == {"a", "b"}
    for wid in ("a", "b"):
        # get_workflow verifies the stored checksum: the returned row is exactly it.
        assert got[wid] == store.get_workflow(wid)
    assert got["a"].run_token == "ta" and got["a"].status == "RUNNING"
    assert got["a"].updated_at == NOW + 1 and got["a"].deadline == NOW + 50


def test_a_damaged_row_is_refused_alone(store: Store) -> None:
    for wid in ("a", "bad", "c"):
        store.insert_workflow(wid, "w", "{}", NOW)
    # Bit rot in the payload (the checksum column is not covered: no trigger fires).
    store.write(lambda c: c.execute(
        "UPDATE workflows SET checksum = checksum + 1 WHERE id = 'bad'"))
    got = claim_many(store, ["a", "bad", "c"], ["ta", "tb", "tc"], NOW + 1)
    assert set(got) == {"a", "c"}
    assert [store.get_workflow(w).status for w in ("a", "c")] == ["RUNNING", "RUNNING"]  # type: ignore[union-attr]
    # Untouched and still refused on read: the per-id path will judge it.
    with pytest.raises(ChecksumMismatch):
        store.get_workflow("bad")
    row = store.write(lambda c: c.execute(
        "SELECT status, run_token FROM workflows WHERE id = 'bad'").fetchone())
    assert tuple(row) == ("PENDING", None)


def test_only_the_named_workflows_are_claimed(store: Store) -> None:
    store.insert_workflow("a", "known", "{}", NOW)
    store.insert_workflow("u", "unknown", "{}", NOW)
    names = {"known", *(f"other{i}" for i in range(1000))}  # more than any IN-list bound
    got = claim_many(store, ["a", "u"], ["ta", "tu"], NOW + 1, workflows=names)
    assert set(got) == {"a"}
    u = store.get_workflow("u")
    assert u is not None and (u.status, u.run_token, u.updated_at) == ("PENDING", None, NOW)
    assert claim_many(store, ["u"], ["tu"], NOW + 1, workflows=set()) == {}
    assert store.get_workflow("u").status == "PENDING"  # type: ignore[union-attr]


def test_many_ids_in_statements_of_a_part_each(store: Store) -> None:
    # More than one VALUES part (500 ids): every id claimed once, under its own token,
    # handed back in the callers' order; the ones not PENDING are left alone.
    ids = [f"w{i:04d}" for i in range(1200)]
    for wid in ids:
        store.insert_workflow(wid, "w", "{}", NOW)
    taken = set(ids[::7])
    claim_many(store, sorted(taken), ["early"] * len(taken), NOW)
    order = list(reversed(ids))
    got = claim_many(store, order, [f"t-{w}" for w in order], NOW + 1)
    assert list(got) == [w for w in order if w not in taken]
    for wid in ids:
        wf = store.get_workflow(wid)
        assert wf is not None and wf.status == "RUNNING"
        assert wf.run_token == ("early" if wid in taken else f"t-{wid}")
        if wid in got:
            assert got[wid] == wf
