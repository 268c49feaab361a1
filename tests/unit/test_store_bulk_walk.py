"""load_ops_many's walk (one scan across adjacent wanted workflows) decides every id
exactly as Store.load_ops does on its own: same checkpoints, same refusals, under
damaged rows and flipped keys anywhere (beside, inside, between the wanted ranges)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge.errors import DataError
from edge.store import OpRow, Store
from edge.store.bulk import load_ops_many

NOW = 1_700_000_000.0


def build(path: Path, n: int, rng: random.Random) -> Store:
    store = Store.open(path, "normal", NOW)
    for i in range(n):
        wid = f"w{i:03d}"
        store.insert_workflow(wid, "w", "{}", NOW)
        store.claim(wid, "t", NOW)
        for seq in range(1, rng.randrange(0, 5) + 1):
            store.record_op(OpRow(wid, seq, "step", "work", "SUCCEEDED", 1,
                                  f'{{"v":{seq}}}', None, NOW, NOW), "t", NOW)
    return store


def damage(store: Store, rng: random.Random) -> None:
    """Flip a payload, or a key (workflow_id or seq), of a few random rows; the
    checksum is left as it was, as bit rot leaves it."""
    keys = [(str(r[0]), int(r[1])) for r in store.write(
        lambda c: c.execute("SELECT workflow_id, seq FROM operations").fetchall())]
    for wid, seq in rng.sample(keys, min(len(keys), rng.randrange(1, 4))):
        how = rng.choice(("output", "wid", "seq", "wid_low"))
        sql = {
            "output": "UPDATE operations SET output = '{\"v\":9}'",
            "wid": "UPDATE operations SET workflow_id = workflow_id || 'x'",
            "wid_low": "UPDATE operations SET workflow_id = substr(workflow_id, 1, 3)",
            "seq": "UPDATE operations SET seq = seq + 10",
        }[how]
        # Triggers are on workflows and events only: operations keep the stale checksum.
        store.write(lambda c, sql=sql, wid=wid, seq=seq: c.execute(
            sql + " WHERE workflow_id = ? AND seq = ?", (wid, seq)))


def per_id(store: Store, wid: str) -> list[OpRow] | DataError:
    try:
        return store.load_ops(wid)
    except DataError as exc:
        return exc


@pytest.mark.parametrize("seed", range(40))
def test_walk_decides_as_load_ops(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = build(tmp_path / "e.db", 30, rng)
    try:
        if seed % 4:  # a quarter of the seeds: a sound file
            damage(store, rng)
        every = [f"w{i:03d}" for i in range(30)]
        # Adjacent runs, gaps (workflows not wanted between wanted ones), unknown ids.
        wanted = [w for w in every if rng.random() < 0.7] + ["w0005x", "zzz"]
        rng.shuffle(wanted)
        ops, bad = load_ops_many(store, wanted)
        assert set(ops) | set(bad) == set(wanted) and not set(ops) & set(bad)
        for wid in wanted:
            one = per_id(store, wid)
            if isinstance(one, DataError):
                assert wid in bad, (wid, one.message)
                assert bad[wid].message == one.message
            else:
                assert wid in ops, (wid, bad.get(wid))
                assert ops[wid] == one
    finally:
        store.close()


def test_walk_reads_adjacent_workflows_in_one_scan(tmp_path: Path) -> None:
    # The point of the walk: adjacent wanted workflows cost one seek, not two statements
    # each. Count the statements SQLite prepares for the read.
    rng = random.Random(1)
    store = build(tmp_path / "e.db", 30, rng)
    try:
        every = [f"w{i:03d}" for i in range(30)]
        seen: list[str] = []
        with store.read() as conn:
            conn.set_trace_callback(seen.append)
        try:
            ops, bad = load_ops_many(store, every)
        finally:
            with store.read() as conn:
                conn.set_trace_callback(None)
        assert bad == {} and all(ops[w] == store.load_ops(w) for w in every)
        assert sum("FROM operations" in s for s in seen) == 2, seen
    finally:
        store.close()
