"""Big edge databases, fast and honest, for benchmarks/growth_bench.py.

A real node runs a few workflows of each kind (``ten``: ten steps; ``evented``: three
steps then a consumed ``wait_event``; ``fails``: a step that fails its retry) with tags,
and the rows it wrote (workflow, operations, tags, events, attempts: every column of
every table, as ``SELECT *`` returns them) become templates. ``fill`` then writes copies
of those rows under fresh random ids (the node's id format), shifted in time and spread
over the last 30 days, with new tag values, and every checksum recomputed with the
store's own functions, through ``Store.write`` (the group-commit writer, ``BEGIN
IMMEDIATE``) in big batches. The node reads them like its own: the benchmark verifies
the checksums of a sample and serves them through the HTTP API.

Mix per 100 workflows: 89 ``ten`` (SUCCEEDED), 10 ``evented`` (SUCCEEDED, one consumed
event each), 1 ``fails`` (FAILED, one failed-attempt row). Tags: ``site=s<i % 50>``
(2% of rows each) and ``order=o-<i>`` (unique).
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import edge  # noqa: E402
from edge.store import OpRow, Store, WorkflowRow  # noqa: E402
from edge.store.rows import checksum  # noqa: E402
from edge.store.sql import tag_digest  # noqa: E402

SPAN = 30 * 86400.0  # created_at spread over the last 30 days
KINDS = ("ten", "evented", "fails")
_TIME_COLS = {"created_at", "updated_at", "deadline", "wake_at", "admitted_at", "started_at",
              "finished_at", "retry_at"}


def make_app() -> edge.App:
    app = edge.App("growth")

    @app.step(name="work")
    def work(i: int) -> dict:
        return {"value": i, "receipt": "ch_0123456789abcdef", "ok": True}

    @app.step(name="charge", retries=1, initial_delay=0.0)
    def charge() -> None:
        raise ValueError("card declined")

    @app.workflow(name="ten")
    def ten() -> int:
        for i in range(10):
            work(i)
        return 10

    @app.workflow(name="evented")
    def evented() -> Any:
        for i in range(3):
            work(i)
        return edge.wait_event("go")

    @app.workflow(name="fails")
    def fails() -> None:
        work(0)
        charge()

    return app


@dataclass
class Template:
    wf_cols: list[str]
    wf: dict[str, Any]
    op_cols: list[str]
    ops: list[dict[str, Any]]
    ev_cols: list[str]  # without the INTEGER PRIMARY KEY id: SQLite assigns it
    events: list[dict[str, Any]]
    at_cols: list[str]
    attempts: list[dict[str, Any]]


def _rows(conn: sqlite3.Connection, sql: str, wid: str) -> tuple[list[str], list[dict[str, Any]]]:
    cur = conn.execute(sql, (wid,))
    cols = [d[0] for d in cur.description]
    return cols, [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def templates(where: str | None = None) -> dict[str, Template]:
    """Run each kind once on a real node and capture every row it wrote."""
    app = make_app()
    out: dict[str, Template] = {}
    with tempfile.TemporaryDirectory(dir=where) as d:
        with edge.Node(app, data_dir=d, workers=2) as node:
            tags = {"site": "s0", "order": "o-0"}
            app.start("ten", id="t-ten", tags=tags).result(timeout=60)
            h = app.start("evented", id="t-evented", tags=tags)
            _wait(node, "t-evented", lambda st: st == "WAITING")
            node.verbs.send_event("t-evented", "go", {"approved": True})
            h.result(timeout=60)
            app.start("fails", id="t-fails", tags=tags)
            _wait(node, "t-fails", lambda st: st in ("SUCCEEDED", "FAILED", "CANCELLED"))
            with node.store.read() as conn:
                for kind in KINDS:
                    wid = f"t-{kind}"
                    wf_cols, wf = _rows(conn, "SELECT * FROM workflows WHERE id = ?", wid)
                    op_cols, ops = _rows(conn, "SELECT * FROM operations WHERE workflow_id = ? "
                                         "ORDER BY seq", wid)
                    ev_cols, evs = _rows(conn, "SELECT * FROM events WHERE workflow_id = ? "
                                         "ORDER BY id", wid)
                    at_cols, ats = _rows(conn, "SELECT * FROM step_attempts WHERE "
                                         "workflow_id = ? ORDER BY seq, attempt", wid)
                    out[kind] = Template(wf_cols, wf[0], op_cols, ops,
                                         [c for c in ev_cols if c != "id"], evs, at_cols, ats)
    assert out["ten"].wf["status"] == "SUCCEEDED" and len(out["ten"].ops) == 10
    assert out["evented"].events and out["evented"].events[0]["consumed_seq"] is not None
    assert out["fails"].wf["status"] == "FAILED" and out["fails"].attempts
    return out


def _wait(node: edge.Node, wid: str, ok: Callable[[str], bool]) -> None:
    deadline = time.monotonic() + 60
    while True:
        row = node.store.get_workflow(wid)
        if row is not None and ok(row.status):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"template workflow {wid} did not get there")
        time.sleep(0.005)  # polling with a deadline


def kind_of(i: int) -> str:
    return "fails" if i % 100 == 0 else "evented" if i % 10 == 1 else "ten"


def _shift(row: dict[str, Any], cols: list[str], by: float, **new: Any) -> dict[str, Any]:
    out = dict(row)
    for c in cols:
        if c in _TIME_COLS and out[c] is not None:
            out[c] = out[c] + by
    out.update(new)
    return out


def fill(store: Store, tpl: dict[str, Template], start: int, stop: int, now: float,
         batch: int = 5000) -> list[str]:
    """Write copies ``start``..``stop``-1 (see the module docstring); returns their ids."""
    rng = random.Random(start * 7919 + stop)
    ids: list[str] = []
    ten = tpl["ten"]
    wf_sql = (f"INSERT INTO workflows ({', '.join(ten.wf_cols)}) "
              f"VALUES ({', '.join('?' * len(ten.wf_cols))})")
    op_sql = (f"INSERT INTO operations ({', '.join(ten.op_cols)}) "
              f"VALUES ({', '.join('?' * len(ten.op_cols))})")
    ev = tpl["evented"]
    ev_sql = (f"INSERT INTO events ({', '.join(ev.ev_cols)}) "
              f"VALUES ({', '.join('?' * len(ev.ev_cols))})")
    fl = tpl["fails"]
    at_sql = (f"INSERT INTO step_attempts ({', '.join(fl.at_cols)}) "
              f"VALUES ({', '.join('?' * len(fl.at_cols))})")
    tag_sql = "INSERT INTO workflow_tags (workflow_id, key, value, checksum) VALUES (?, ?, ?, ?)"
    for lo in range(start, stop, batch):
        wfs: list[tuple[Any, ...]] = []
        ops: list[tuple[Any, ...]] = []
        evs: list[tuple[Any, ...]] = []
        ats: list[tuple[Any, ...]] = []
        tags: list[tuple[Any, ...]] = []
        for i in range(lo, min(stop, lo + batch)):
            t = tpl[kind_of(i)]
            wid = os.urandom(12).hex()
            ids.append(wid)
            by = (now - SPAN * rng.random()) - t.wf["created_at"]
            w = _shift(t.wf, t.wf_cols, by, id=wid)
            w["checksum"] = WorkflowRow.digest_of(wid, w["workflow"], w["input"], w["output"],
                                                  w["error"])
            wfs.append(tuple(w[c] for c in t.wf_cols))
            for o in t.ops:
                o2 = _shift(o, t.op_cols, by, workflow_id=wid)
                o2["checksum"] = OpRow(*(o2[c] for c in t.op_cols[:10])).digest()
                ops.append(tuple(o2[c] for c in t.op_cols))
            for e in t.events:
                e2 = _shift(e, t.ev_cols, by, workflow_id=wid)
                e2["checksum"] = checksum(wid, e2["name"], e2["value"])
                evs.append(tuple(e2[c] for c in t.ev_cols))
            for a in t.attempts:
                a2 = _shift(a, t.at_cols, by, workflow_id=wid)
                a2["checksum"] = checksum(*(a2[c] for c in t.at_cols[:6]))
                ats.append(tuple(a2[c] for c in t.at_cols))
            for key, value in (("site", f"s{i % 50}"), ("order", f"o-{i}")):
                tags.append((wid, key, value, tag_digest(wid, key, value)))

        def fn(conn: sqlite3.Connection, wfs: Any = wfs, ops: Any = ops, evs: Any = evs,
               ats: Any = ats, tags: Any = tags) -> None:
            conn.executemany(wf_sql, wfs)
            conn.executemany(op_sql, ops)
            conn.executemany(ev_sql, evs)
            conn.executemany(at_sql, ats)
            conn.executemany(tag_sql, tags)

        store.write(fn)
    return ids


def file_bytes(store: Store) -> int:
    """Bytes of the database's pages in use (after a checkpoint, so the WAL is folded in)."""
    def fn(conn: sqlite3.Connection) -> int:
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        return (pages - free) * size

    return store.write(fn)


def checkpoint(store: Store) -> None:
    """Fold the WAL into the file (so a copy of edge.db alone is the whole database)."""
    with store.read() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def table_bytes(path: Path) -> dict[str, int]:
    """Bytes per table, its indexes included (SQLite's dbstat)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        owner = {str(n): str(t) for n, t in conn.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")}
        out: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            t = owner.get(str(name), str(name))
            out[t] = out.get(t, 0) + int(size)
        return out
    finally:
        conn.close()
