"""Bulk verbs for boot resume: claim_many (CAS per id, one transaction) and
load_ops_many (one pass, damaged workflows reported on their own)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.errors import ChecksumMismatch, UsageError, WriteFailed
from edge.store import OpRow, StaleRun, Store
from edge.store.bulk import claim_many, load_ops_many

NOW = 1_700_000_000.0


def op(wid: str, seq: int, out: str = '{"v":1}') -> OpRow:
    return OpRow(wid, seq, "step", "work", "SUCCEEDED", 1, out, None, NOW, NOW)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "e.db", "normal", NOW)
    yield s  # type: ignore[misc]
    s.close()


def status(store: Store, wid: str) -> tuple[str, str | None]:
    wf = store.get_workflow(wid)
    assert wf is not None
    return wf.status, wf.run_token


def test_claim_many_claims_only_pending_and_admitted(store: Store) -> None:
    for wid in ("a", "b", "c", "d", "q-waiting", "q-admitted"):
        store.insert_workflow(wid, "w", "{}", NOW,
                              queue="slow" if wid.startswith("q-") else None)
    assert store.claim("b", "old", NOW)  # already RUNNING under another run
    store.finish(store.get_workflow("b"), "old", "SUCCEEDED", "1", None, NOW)  # type: ignore[arg-type]
    assert store.claim("c", "other", NOW)
    store.write(lambda c: c.execute("UPDATE workflows SET admitted_at = ? WHERE id = ?",
                                    (NOW, "q-admitted")))
    ids = ["a", "b", "c", "d", "q-waiting", "q-admitted", "missing"]
    got = claim_many(store, ids, [f"t-{i}" for i in ids], NOW + 1)
    assert sorted(got) == ["a", "d", "q-admitted"]
    for wid in got:
        row = got[wid]
        assert (row.status, row.run_token, row.updated_at) == ("RUNNING", f"t-{wid}", NOW + 1)
        assert status(store, wid) == ("RUNNING", f"t-{wid}")
    # Not claimed: untouched.
    assert status(store, "b") == ("SUCCEEDED", None)
    assert status(store, "c") == ("RUNNING", "other")
    assert status(store, "q-waiting") == ("PENDING", None)
    # The CAS holds on a second attempt: nothing is claimed twice.
    assert claim_many(store, ids, ["x"] * len(ids), NOW + 2) == {}
    assert status(store, "a") == ("RUNNING", "t-a")


def test_claim_many_tokens_fence_each_run(store: Store) -> None:
    for wid in ("a", "b"):
        store.insert_workflow(wid, "w", "{}", NOW)
    claim_many(store, ["a", "b"], ["ta", "tb"], NOW)
    store.record_op(op("a", 1), "ta", NOW)
    with pytest.raises(StaleRun):
        store.record_op(op("b", 1), "ta", NOW)  # a's token does not write into b's run
    assert [o.seq for o in store.load_ops("a")] == [1] and store.load_ops("b") == []


def test_claim_many_duplicate_id_is_claimed_once(store: Store) -> None:
    store.insert_workflow("a", "w", "{}", NOW)
    got = claim_many(store, ["a", "a"], ["first", "second"], NOW)
    assert list(got) == ["a"] and got["a"].run_token == "first"


def test_claim_many_refuses_mismatched_tokens(store: Store) -> None:
    store.insert_workflow("a", "w", "{}", NOW)
    with pytest.raises(UsageError, match="1 ids and 2 tokens"):
        claim_many(store, ["a"], ["x", "y"], NOW)
    assert status(store, "a") == ("PENDING", None)
    assert claim_many(store, [], [], NOW) == {}


def test_claim_many_is_one_transaction(store: Store) -> None:
    """A disk that refuses the last claim of a call commits none of the call."""
    for i in range(20):
        store.insert_workflow(f"w{i}", "w", "{}", NOW)

    def cap(conn: sqlite3.Connection) -> None:
        n = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {n}")

    store.write(cap)
    ids = [f"w{i}" for i in range(20)]
    tokens = ["t"] * 19 + ["x" * 200_000]  # the last claim needs fresh pages
    with pytest.raises(WriteFailed):
        claim_many(store, ids, tokens, NOW)
    assert {status(store, w)[0] for w in ids} == {"PENDING"}


def test_load_ops_many_one_pass(store: Store) -> None:
    ids = [f"w{i:04d}" for i in range(1200)]  # more than one IN (...) chunk
    for i, wid in enumerate(ids):
        store.insert_workflow(wid, "w", "{}", NOW)
        store.claim(wid, "t", NOW)
        for seq in range(1, i % 4 + 1):
            store.record_op(op(wid, seq, f'{{"v":{seq}}}'), "t", NOW)
    ops, bad = load_ops_many(store, [*ids, "missing", ids[0]])
    assert bad == {}
    assert set(ops) == {*ids, "missing"} and ops["missing"] == []
    for i, wid in enumerate(ids):
        assert ops[wid] == store.load_ops(wid)
        assert [o.seq for o in ops[wid]] == list(range(1, i % 4 + 1))


def test_load_ops_many_reports_a_damaged_workflow_alone(store: Store) -> None:
    for wid in ("good", "bad"):
        store.insert_workflow(wid, "w", "{}", NOW)
        store.claim(wid, "t", NOW)
        store.record_op(op(wid, 1), "t", NOW)
        store.record_op(op(wid, 2), "t", NOW)
    store.write(lambda c: c.execute(
        "UPDATE operations SET output = '{\"v\":2}' WHERE workflow_id = 'bad' AND seq = 1"))
    ops, bad = load_ops_many(store, ["good", "bad"])
    assert list(ops) == ["good"] and [o.seq for o in ops["good"]] == [1, 2]
    assert isinstance(bad["bad"], ChecksumMismatch) and "seq 1" in bad["bad"].message


def test_load_ops_many_refuses_exactly_what_load_ops_refuses(store: Store) -> None:
    # A damaged row just before a workflow's range is damage for it too (Store.load_ops
    # checks the keys beside the range: a flipped one could hide its checkpoints).
    for wid in ("a", "b", "c"):
        store.insert_workflow(wid, "w", "{}", NOW)
        store.claim(wid, "t", NOW)
        store.record_op(op(wid, 1), "t", NOW)
        store.record_op(op(wid, 2), "t", NOW)
    store.write(lambda c: c.execute(
        "UPDATE operations SET output = '{\"v\":2}' WHERE workflow_id = 'a' AND seq = 2"))
    ops, bad = load_ops_many(store, ["a", "b", "c"])
    for wid in ("a", "b", "c"):
        try:
            one = store.load_ops(wid)
        except ChecksumMismatch:
            assert wid in bad and wid not in ops
        else:
            assert ops[wid] == one and wid not in bad
    assert sorted(bad) == ["a", "b"] and list(ops) == ["c"]
