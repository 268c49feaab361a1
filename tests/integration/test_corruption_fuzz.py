"""Seeded bit flips in a stopped node's database: harmless or refused, never used.

A real node builds a file (finished, failed, waiting, sleeping workflows; consumed
and pending events; published values) and stops cleanly. Each trial copies it,
flips one bit in a page of the workflow tables or one of their indexes (mostly
inside the cell content: row payloads and keys, 60 % in the tables' own pages;
dbstat finds the pages), then:
``edge list/show --data-dir`` for every workflow (the in-process CLI), and a node
booted on it that sends the awaited events and lets the workflows finish. Every
answer must equal the unflipped one, or be refused cleanly (exit 4, the API's
``corrupt``, or the workflow left PENDING with ``blocked_on: corrupt``). Counted:
flips tried / harmless / refused / silently used / bug path, plus re-runs of
committed steps; the last three must be 0.

EDGE_CORRUPTION_SEED, EDGE_CORRUPTION_FLIPS and EDGE_CORRUPTION_ROW_FLIPS change the run
(defaults: 9, 110, 50).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import edge
from edge.clock import FakeClock
from edge.errors import DataError, EdgeError
from edge.store import integrity
from tests.conftest import run_cli, wait_until
from tests.corruption import TABLES, flip, page_size, pages

RUNS: list[str] = []
app = edge.App("fuzzcorrupt")


@app.step(name="work")
def work(tag: str) -> str:
    RUNS.append(tag)
    return tag.upper()


@app.step(name="boom")
def boom(tag: str) -> None:
    RUNS.append(tag)
    raise ValueError(f"boom {tag}")


@app.workflow(name="chain")
def chain(name: str) -> list[str]:
    out = [work(f"{name}-1"), work(f"{name}-2")]
    edge.set_event("phase", {"at": "waiting", "name": name})
    value = edge.wait_event("go")
    out.append(work(f"{name}-after"))
    edge.set_event("phase", {"at": "done", "name": name})
    return [*out, str(value)]


@app.workflow(name="nap")
def nap(name: str) -> str:
    work(f"{name}-1")
    edge.sleep(3600)
    return work(f"{name}-after")


@app.workflow(name="broken")
def broken(name: str) -> None:
    work(f"{name}-1")
    boom(f"{name}-2")


FINISHED = ("a1", "a2", "a3")
WAITING = ("b1", "b2", "b3")
IDS = (*FINISHED, *WAITING, "s1", "f1")


class Traces(logging.Handler):
    """Counts log records carrying a traceback (a bug path in the node's log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record.getMessage())


def build(data_dir: Path) -> None:
    """The file every trial flips a copy of. Its bytes must not depend on timing: the
    seed picks pages and offsets, so a layout that moved with the machine's load would
    make the same seed flip other bytes each run. Hence a FakeClock (every time stored
    is the same), one worker, and one workflow at a time, parked before the next starts
    (the order of every write is fixed)."""
    node = edge.Node(app, data_dir=data_dir, workers=1, clock=FakeClock()).start()
    try:
        starts = [*[(chain, w, "WAITING") for w in (*FINISHED, *WAITING)],
                  (nap, "s1", "SLEEPING"), (broken, "f1", "FAILED")]
        for fn, wid, parked in starts:
            app.start(fn, wid, id=wid)
            wait_until(lambda w=wid, s=parked: node.store.get_workflow(w).status == s,
                       timeout=30, what=f"{wid} to be {parked}")
        for wid in FINISHED:
            node.verbs.send_event(wid, "go", wid)
            node.verbs.result(wid, timeout=10)
        node.verbs.send_event("s1", "later", {"v": 1})  # stored, never consumed
    finally:
        node.stop()


def inspect(d: Path, capsys: pytest.CaptureFixture[str]) -> list[tuple[int, str, str]]:
    answers = [run_cli(["list", "--data-dir", str(d), "--json", "--limit", "100"], capsys)]
    for wid in IDS:
        answers.append(run_cli(["show", wid, "--data-dir", str(d), "--json"], capsys))
    return answers


def run_node(d: Path) -> tuple[list[Any], list[str]]:
    """Boot a node on ``d``, send the awaited events, let the workflows finish; the
    answers per workflow (status, output, error, checkpoints; "refused") and the step
    bodies that ran."""
    RUNS.clear()
    try:
        # build's FakeClock time: s1's hour-long sleep is still ahead, as it was at the stop.
        node = edge.Node(app, data_dir=d, workers=2, clock=FakeClock()).start()
    except DataError:
        return ["refused"] * len(IDS), []
    answers: dict[str, Any] = {}
    try:
        for wid in WAITING:
            try:
                node.verbs.send_event(wid, "go", wid)
            except DataError:
                answers[wid] = "refused"
            except EdgeError as exc:
                answers[wid] = f"send: {exc.code}"
        # A hang guard, not a figure: a trial whose workflows finish ends the wait at once.
        # The 3 s it was is a figure of an idle machine; on a loaded one a workflow still
        # running at the bound differs from the unflipped answer by timing alone.
        deadline = time.monotonic() + 30
        for wid in WAITING:
            while wid not in answers and time.monotonic() < deadline:
                try:
                    row = node.store.get_workflow(wid)
                except DataError:
                    answers[wid] = "refused"
                    break
                if row is None or row.final or (row.blocked_on or "").startswith("corrupt"):
                    break
                time.sleep(0.01)
        for wid in IDS:
            if wid in answers:
                continue
            try:
                row = node.store.get_workflow(wid)
                if row is not None and (row.blocked_on or "").startswith("corrupt"):
                    answers[wid] = "refused"
                    continue
                ops = node.store.load_ops(wid)
            except DataError:
                answers[wid] = "refused"
                continue
            answers[wid] = None if row is None else (
                row.status, row.output, row.error, row.blocked_on,
                [(o.seq, o.kind, o.name, o.status, o.output) for o in ops])
    finally:
        node.stop()
    return [answers[w] for w in IDS], sorted(RUNS)


def test_bit_flips_are_harmless_or_refused_never_used(tmp_path, capsys):
    fuzz(tmp_path, capsys, int(os.environ.get("EDGE_CORRUPTION_FLIPS", "110")), 0.6)


def test_row_flips_are_refused_by_the_row_checks_alone(tmp_path, capsys, monkeypatch):
    """Flips in the tables' own pages, read with the structural check switched off:
    the row checksums, domains and sequence checks alone refuse them on every read
    path of ``edge list/show``. (Reads only: a node that goes on writing into a page
    whose key order is damaged can misplace its new rows where no row check looks;
    only integrity_check sees that, which is why the boot runs it.)"""
    monkeypatch.setattr(integrity, "structure_problem", lambda path, quick=False: None)
    fuzz(tmp_path, capsys, int(os.environ.get("EDGE_CORRUPTION_ROW_FLIPS", "50")), 1.0,
         node=False)


def fuzz(tmp_path: Path, capsys: pytest.CaptureFixture[str], flips: int,
         in_rows: float, node: bool = True) -> None:
    seed = int(os.environ.get("EDGE_CORRUPTION_SEED", "9"))
    rng = random.Random(seed)
    golden = tmp_path / "golden"
    build(golden)
    db = golden / "edge.db"
    assert not Path(str(db) + "-wal").exists()
    size = page_size(db)
    found = pages(db)
    rows = [(n, p) for n, ps in found.items() if n in TABLES for p in ps]
    indexes = [(n, p) for n, ps in found.items() if n not in TABLES for p in ps]
    base_dir = tmp_path / "base"
    shutil.copytree(golden, base_dir)
    base_inspect = inspect(base_dir, capsys)
    assert all(code == 0 for code, _, _ in base_inspect), base_inspect
    base_node, base_runs = run_node(base_dir)
    assert base_runs == sorted(f"{w}-after" for w in WAITING), base_runs
    traces = Traces()
    logging.getLogger("edge").addHandler(traces)
    counts = {"tried": 0, "harmless": 0, "refused": 0, "silently used": 0, "bug path": 0,
              "re-runs": 0}
    where: dict[str, int] = {}
    bad: list[str] = []
    t0 = time.monotonic()
    try:
        for i in range(flips):
            # Rows (payloads and keys) get 60 % of the flips, the indexes over them 40 %.
            name, page = rng.choice(rows if rng.random() < in_rows else indexes)
            trial = tmp_path / f"t{i}"
            shutil.copytree(golden, trial)
            tdb = trial / "edge.db"
            raw = tdb.read_bytes()[(page - 1) * size: page * size]
            content = int.from_bytes(raw[5:7], "big") or size  # cell content area start
            if rng.random() < 0.8 and content < size:
                offset = rng.randrange(content, size)  # row payloads and keys
            else:
                offset = rng.randrange(0, size)  # anywhere: header, cell pointers, free
            bit = rng.randrange(8)
            flip(tdb, (page - 1) * size + offset, bit)
            label = f"flip {i}: {name} page {page} byte {offset} bit {bit}"
            traces.records.clear()
            got_inspect = inspect(trial, capsys)
            got_node, got_runs = run_node(trial) if node else (base_node, base_runs)
            counts["tried"] += 1
            where[name] = where.get(name, 0) + 1
            bug = any("this is a bug" in err or "Traceback" in err
                      for _, _, err in got_inspect) or bool(traces.records)
            refused = any(code == 4 for code, _, _ in got_inspect) or "refused" in got_node
            # stdout and exit code are the answer (stderr also gets the nodes' log lines).
            silent = any(g[:2] != b[:2] and g[0] != 4 for g, b in zip(got_inspect,
                                                                       base_inspect))
            silent |= any(g != b and g != "refused" for g, b in zip(got_node, base_node))
            reran = [r for r in got_runs if r not in base_runs or got_runs.count(r) > 1]
            if reran:
                counts["re-runs"] += 1
            if bug:
                counts["bug path"] += 1
                bad.append(f"{label}: bug path {traces.records[:1]} "
                           f"{[e for _, _, e in got_inspect if 'bug' in e][:1]}")
            elif silent or reran:
                counts["silently used"] += 1
                diffs = [_diff(g, b) for g, b in zip(got_inspect, base_inspect)
                         if g[:2] != b[:2]][:1]
                nodes = [(w, g, b) for w, g, b in zip(IDS, got_node, base_node)
                         if g != b and g != "refused"][:1]
                bad.append(f"{label}: silently different {diffs} {nodes} reran={reran}")
            elif refused:
                counts["refused"] += 1
            else:
                counts["harmless"] += 1
            shutil.rmtree(trial)
    finally:
        logging.getLogger("edge").removeHandler(traces)
    elapsed = time.monotonic() - t0
    with capsys.disabled():
        print(f"\ncorruption fuzz (seed {seed}, {elapsed:.1f} s): " +
              ", ".join(f"{k} {v}" for k, v in counts.items()))
        print("flips per table/index: " + ", ".join(f"{k} {v}" for k, v in sorted(
            where.items())))
        for line in bad[:10]:
            print("  " + line[:1500])
    assert counts["tried"] >= min(flips, 100)
    assert counts["silently used"] == 0 and counts["bug path"] == 0, bad[:5]
    assert counts["re-runs"] == 0


def _diff(got: tuple[int, str, str], base: tuple[int, str, str]) -> str:
    import difflib

    if got[0] != base[0]:
        return f"exit {got[0]} (was {base[0]}): {got[2][:200]}"
    lines = difflib.unified_diff(base[1].splitlines(), got[1].splitlines(), n=0, lineterm="")
    return " | ".join(list(lines)[2:8])


def test_the_fixture_file_has_pages_in_every_table_and_index(tmp_path):
    golden = tmp_path / "golden"
    build(golden)
    found = pages(golden / "edge.db")
    con = sqlite3.connect(f"file:{golden / 'edge.db'}?immutable=1", uri=True)
    names = {r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') AND tbl_name IN "
        "('workflows', 'operations', 'events', 'published') AND rootpage > 0")}
    con.close()
    assert set(found) == names, (set(found) ^ names)
