"""Corruption of a stopped node's file: every damage is refused cleanly (exit 4, API
``corrupt``), never served as a different answer, never a re-run of a committed step.

Each test builds a real database through a real node, flips a bit where a disk
would, and looks at it the ways users do: ``edge list/show --data-dir``, a booted
node, the HTTP API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import edge
from edge.clock import FakeClock
from edge.errors import ChecksumMismatch, CorruptDatabase
from edge.store import Store, integrity, listing, messages, migrations, verify
from tests.conftest import run_cli, wait_until
from tests.corruption import find_in, flip


def make_app() -> tuple[edge.App, list[str]]:
    app = edge.App("corrupt")
    ran: list[str] = []

    @app.step(name="work")
    def work(tag: str) -> str:
        ran.append(tag)
        return tag.upper()

    @app.workflow(name="chain")
    def chain(name: str) -> list[str]:
        out = [work(f"{name}-1"), work(f"{name}-2"), work(f"{name}-3")]
        edge.set_event("phase", "waiting")
        value = edge.wait_event("go")
        out.append(work(f"{name}-after"))
        return [*out, str(value)]

    return app, ran


APP = make_app()[0]  # for `edge run --app tests.unit.test_corruption:APP`


def build(data_dir: Path, finish: tuple[str, ...] = ("wf-a",),
          wait: tuple[str, ...] = ("wf-b",)) -> None:
    """Workflows ``finish`` run to SUCCEEDED, ``wait`` park WAITING on "go"; clean stop."""
    app, _ = make_app()
    node = edge.Node(app, data_dir=data_dir, workers=2).start()
    try:
        for wid in finish + wait:
            app.start(app.workflows["chain"].fn, wid, id=wid)
        wait_until(lambda: all(node.store.get_workflow(w).status == "WAITING"
                               for w in finish + wait), what="parked")
        for wid in finish:
            node.verbs.send_event(wid, "go", 1)
            node.verbs.result(wid, timeout=10)
    finally:
        node.stop()
    assert not Path(str(data_dir / "edge.db") + "-wal").exists()


def digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code, out, err = run_cli(list(argv), capsys)
    assert "this is a bug" not in err and "Traceback" not in err, err
    return code, out, err


def test_flipped_status_succeeded_is_refused_not_served(tmp_path, capsys):
    d = tmp_path / "data"
    build(d)
    db = d / "edge.db"
    at = find_in(db, b"SUCCEEDED", "workflows")
    flip(db, at + 3, 0)  # SUCCEEDED -> SUCBEEDED ('C' 0x43 -> 'B' 0x42)
    before = digest(db)
    # The status is indexed, so the structural check inspection runs first sees it...
    code, out, err = cli(capsys, "show", "wf-a", "--data-dir", str(d))
    assert code == 4 and "hint:" in err and "SUCBEEDED" not in out, (code, out, err)
    code, out, err = cli(capsys, "list", "--data-dir", str(d))
    assert code == 4 and "SUCBEEDED" not in out
    # ...and the row's own checksum refuses it on every read path without that check.
    s = Store.inspect(db)
    try:
        with pytest.raises(ChecksumMismatch, match="'wf-a'"):
            s.get_workflow("wf-a")
        with pytest.raises(ChecksumMismatch):
            listing.list_workflows(s)
    finally:
        s.close()
    assert digest(db) == before  # inspection changed nothing


def test_flipped_waiting_status_is_refused_at_boot_or_when_its_event_comes(
        tmp_path, monkeypatch):
    d = tmp_path / "data"
    build(d, finish=())
    db = d / "edge.db"
    flip(db, find_in(db, b"WAITING", "workflows") + 5, 4)  # WAITING -> WAITI^G
    app, ran = make_app()
    with pytest.raises(CorruptDatabase):  # the boot's structural check: index vs row
        edge.Node(app, data_dir=d, workers=2).start()
    # A clean stop of a large file skips that check: the row's checksum still refuses it.
    monkeypatch.setattr(integrity, "ALWAYS_BELOW", 0)
    node = edge.Node(app, data_dir=d, workers=2).start()
    try:
        with pytest.raises(CorruptDatabase) as exc:
            node.verbs.send_event("wf-b", "go", 1)
        assert exc.value.code == "corrupt" and exc.value.exit_code == 4
        assert node.damage() is not None
        assert node.verbs.status()["damage"]["code"] == "corrupt"
    finally:
        node.stop()
    assert ran == []


def test_a_flipped_checkpoint_key_never_hides_a_committed_step(tmp_path, monkeypatch):
    d = tmp_path / "data"
    build(d, finish=(), wait=("wf-a", "wf-b"))
    db = d / "edge.db"
    # wf-a's seq 3 checkpoint becomes wf-c's: SQLite's range scan for wf-a stops there,
    # which used to hide seq 3 and make its step run again after the event.
    flip(db, find_in(db, b"wf-a\x03step", "operations") + 3, 1)
    app, ran = make_app()
    with pytest.raises(CorruptDatabase, match="PRIMARY KEY order"):  # the boot check
        edge.Node(app, data_dir=d, workers=2).start()
    # Without that check (a clean stop of a large file), the read path refuses it.
    monkeypatch.setattr(integrity, "ALWAYS_BELOW", 0)
    node = edge.Node(app, data_dir=d, workers=2).start()
    try:
        node.verbs.send_event("wf-a", "go", 1)
        node.verbs.send_event("wf-b", "go", 1)
        def blocked() -> bool:
            wf = node.store.get_workflow("wf-a")
            return wf.status == "PENDING" and (wf.blocked_on or "").startswith("corrupt")

        try:
            wait_until(blocked, what="wf-a PENDING, blocked as corrupt")
        except AssertionError:
            raise AssertionError(repr(node.store.get_workflow("wf-a"))) from None

        def b_settled() -> bool:  # its checkpoints share the damaged page: either outcome
            wf = node.store.get_workflow("wf-b")
            return wf.status == "SUCCEEDED" or (wf.blocked_on or "").startswith("corrupt")

        wait_until(b_settled, what="wf-b finished or refused")
        with pytest.raises(ChecksumMismatch):
            node.store.load_ops("wf-a")
    finally:
        node.stop()
    assert ran in ([], ["wf-b-after"])  # wf-a-3 (committed) never ran again


def test_a_hole_in_the_checkpoint_sequence_is_damage(tmp_path):
    d = tmp_path / "data"
    build(d, finish=(), wait=("wf-a",))
    db = d / "edge.db"
    flip(db, find_in(db, b"wf-a\x02step", "operations") + 4, 2)  # seq 2 -> seq 6
    s = Store.inspect(db)
    try:
        with pytest.raises(ChecksumMismatch, match="wf-a"):
            s.load_ops("wf-a")
        with pytest.raises(ChecksumMismatch):
            verify.verify_checksums(s)
    finally:
        s.close()


def test_boot_checks_the_structure_after_an_unclean_stop_and_refuses_exit_4(
        tmp_path, monkeypatch, capsys):
    d = tmp_path / "data"
    build(d)
    db = d / "edge.db"
    # Past the always-check size a clean stop lets the boot skip the check...
    monkeypatch.setattr(integrity, "ALWAYS_BELOW", 0)
    assert integrity.shutdown_was_clean(db)
    assert integrity.check_before_trust(db) is False
    # ...an unclean one (the marker a kill leaves) does not.
    s = Store.open(db)
    s.close()  # not clean=True: as if the process died
    assert not integrity.shutdown_was_clean(db)
    # Damage an index entry only: the row and its checksum are intact.
    flip(db, find_in(db, b"wf-a", "sqlite_autoindex_workflows_1") + 3, 0)
    before = digest(db)
    app, _ = make_app()
    with pytest.raises(CorruptDatabase) as exc:
        edge.Node(app, data_dir=d, workers=1).start()
    assert exc.value.exit_code == 4 and "integrity_check" in exc.value.message
    assert "edge restore" in exc.value.hint and "--data-dir" in exc.value.hint
    assert digest(db) == before
    code, _, err = cli(capsys, "status", "--data-dir", str(d))
    assert code == 4 and "damaged" in err


def test_api_answers_corrupt_with_a_hint_and_one_log_line(tmp_path, caplog, capsys):
    d = tmp_path / "data"
    build(d)
    db = d / "edge.db"
    at = find_in(db, b'"WF-A-1"', "operations")  # the step's output JSON
    flip(db, at + 2, 7)  # invalid UTF-8 in a text column
    app, _ = make_app()
    with socket_port() as port:
        node = edge.Node(app, data_dir=d, workers=1, listen=f"127.0.0.1:{port}").start()
    try:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            status, body = get(port, "/v1/workflows/wf-a")
        assert status == 503 and body["error"]["code"] == "corrupt", body
        assert body["error"]["hint"]
        lines = [r for r in caplog.records if "wf-a" in r.getMessage() or "corrupt" in
                 r.getMessage() or "UTF-8" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None, [r.getMessage() for r in lines]
        status, body = get(port, "/readyz")
        assert status == 503 and body["code"] == "corrupt"
        status, body = get(port, "/v1/status")
        assert status == 200 and body["damage"]["code"] == "corrupt"
        status, body = get(port, "/v1/workflows")  # the list does not read checkpoints
        assert status == 200
        code, _, err = cli(capsys, "show", "wf-a", "--url", f"http://127.0.0.1:{port}")
        assert code == 4 and "UTF-8" in err and "hint:" in err, err
    finally:
        node.stop()


def test_verify_checksums_covers_events_and_published_values(tmp_path):
    for needle, table, what in ((b'"waiting"', "published", "published value"),
                                (b"go", "events", "event")):
        d = tmp_path / table
        build(d, finish=(), wait=("wf-b",))
        if table == "events":
            app, _ = make_app()
            node = edge.Node(app, data_dir=d, workers=1).start()
            # stored, not woken
            messages.send_event(node.store, "wf-b", "go", '"x-value"', None, 1.0)
            node.stop()
            needle = b'"x-value"'
        db = d / "edge.db"
        s = Store.inspect(db)
        assert verify.verify_checksums(s) > 0
        s.close()
        flip(db, find_in(db, needle, table) + 2, 0)
        s = Store.inspect(db)
        try:
            with pytest.raises(ChecksumMismatch, match=what):
                verify.verify_checksums(s)
        finally:
            s.close()


def test_a_wal_without_shm_in_a_read_only_copy_is_read_through_a_private_copy(
        tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    s = Store.open(d / "edge.db")
    s.insert_workflow("in-wal", "chain", '{"args": ["x"], "kwargs": {}}', 1.0)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("edge.db", "edge.db-wal"):  # a copy taken while it ran: no -shm
        (copy / name).write_bytes((d / name).read_bytes())
    s.close()
    os.chmod(copy, 0o555)
    try:
        before = {p.name: digest(p) for p in copy.iterdir()}
        code, out, err = cli(capsys, "list", "--data-dir", str(copy), "--json")
        assert code == 0, err
        assert [w["id"] for w in json.loads(out)["workflows"]] == ["in-wal"]
        assert {p.name: digest(p) for p in copy.iterdir()} == before  # no -shm made
    finally:
        os.chmod(copy, 0o755)


def test_schema_4_recomputes_checksums_but_keeps_damaged_rows_damaged(tmp_path):
    db = tmp_path / "edge.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE edge_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at REAL NOT NULL)")
    for m in migrations.MIGRATIONS[:2]:
        for stmt in m.statements:
            conn.execute(stmt)
        conn.execute("INSERT INTO edge_schema VALUES (?, ?, 0)", (m.version, m.name))
    from edge.store.rows import checksum

    for wid, good in (("ok", True), ("bad", False)):
        crc = checksum(wid, "chain", "{}", None, None) + (0 if good else 1)
        conn.execute("INSERT INTO workflows (id, workflow, status, input, created_at, "
                     "updated_at, checksum) VALUES (?, 'chain', 'PENDING', '{}', 1, 1, ?)",
                     (wid, crc))
    conn.close()
    before = digest(db)
    s = Store.inspect(db)  # an older file is read through a migrated private copy
    try:
        assert s.get_workflow("ok").status == "PENDING"
        with pytest.raises(ChecksumMismatch, match="'bad'"):
            s.get_workflow("bad")
    finally:
        s.close()
    assert digest(db) == before
    s = Store.open(db)
    try:
        assert s.schema_version() == migrations.LATEST
        assert s.get_workflow("ok").status == "PENDING"
        with pytest.raises(ChecksumMismatch, match="'bad'"):
            s.get_workflow("bad")
        # A write to a damaged row is refused, not laundered into a valid checksum.
        with pytest.raises(CorruptDatabase):
            s.claim("bad", "t", 2.0)
        assert s.claim("ok", "t", 2.0)
        assert s.get_workflow("ok").status == "RUNNING"
    finally:
        s.close()


# ---- helpers ---------------------------------------------------------------------------


class socket_port:
    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        pass


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_edge_status_shows_the_damage_line():
    from edge.cli.render import format_status

    st = {"node_id": "n", "app": "a", "pid": 1, "state": "ready", "ready": True,
          "leader": True, "data_dir": "/d", "durability": "full", "workflows": {},
          "replication": None, "damage": {"code": "corrupt", "message": "row x is bad",
                                          "hint": "restore it"}}
    text = format_status(st, color=False)
    assert "damage:" in text and "row x is bad" in text and "restore it" in text
    st["damage"] = None
    assert "damage:" not in format_status(st, color=False)


def test_the_marker_is_clean_only_after_a_planned_stop(tmp_path):
    import signal
    import subprocess
    import sys

    d = tmp_path / "data"
    build(d)
    assert integrity.shutdown_was_clean(d / "edge.db")
    # A node killed mid-run leaves the marker "open": the next boot checks the file.
    code = ("import sys, time, edge; from tests.unit.test_corruption import APP; "
            f"edge.Node(APP, data_dir={str(d)!r}, workers=1).start(); "
            "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert not integrity.shutdown_was_clean(d / "edge.db")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert not integrity.shutdown_was_clean(d / "edge.db")
    assert integrity.check_before_trust(d / "edge.db") is True


def test_schedules_and_edge_meta_rows_carry_checksums_too(tmp_path):
    from edge.store import schedules

    db = tmp_path / "edge.db"
    s = Store.open(db)
    schedules.sync(s, [("nightly", "chain", "17 3 * * *", "UTC")], 1.0)
    s.set_meta({"epoch": "7"})
    s.close(clean=True)
    s = Store.inspect(db)
    assert schedules.get(s)[0].cron == "17 3 * * *" and s.get_meta("epoch") == "7"
    s.close()
    flip(db, find_in(db, b"17 3 * * *", "schedules") + 1, 1)  # a different cron
    at = find_in(db, b"epoch7", "edge_meta")  # key and value are adjacent in the record
    flip(db, at + 5, 0)  # epoch 7 -> 6
    s = Store.inspect(db)
    try:
        with pytest.raises(ChecksumMismatch, match="nightly"):
            schedules.get(s)
        with pytest.raises(ChecksumMismatch, match="epoch"):
            s.get_meta("epoch")
    finally:
        s.close()


def test_a_timer_meeting_a_damaged_row_logs_one_line_and_drops_it(tmp_path, caplog):
    """A sleeping workflow whose row fails its checksum: its wake timer (and its
    deadline) fire at boot and meet the damage; one error line each, no traceback,
    the row refused on reads, no step re-run (the corruption fuzz found this path).

    Both nodes share a FakeClock: the workflow parks SLEEPING for an hour of fake time,
    so it is still SLEEPING when the node stops (a real 0.05 s sleep could end first,
    and the damage then met recovery's RUNNING reset instead of the timers); the clock
    then moves two hours on, so both timers are due when the second node boots."""
    clock = FakeClock()
    app = edge.App("corrupttimer")
    ran: list[str] = []

    @app.step(name="work")
    def work(tag: str) -> str:
        ran.append(tag)
        return tag

    @app.workflow(name="nap")
    def nap(name: str) -> str:
        work(f"{name}-1")
        edge.sleep(3600)
        return work(f"{name}-after")

    d = tmp_path / "data"
    node = edge.Node(app, data_dir=d, workers=1, clock=clock).start()
    try:
        app.start(nap, "marker-input", id="wf-n", timeout=5400)
        wait_until(lambda: node.store.get_workflow("wf-n").status == "SLEEPING",
                   what="sleeping")
    finally:
        node.stop(grace=0)
    db = d / "edge.db"
    flip(db, find_in(db, b"marker-input", "workflows") + 3, 0)  # its input: no index has it
    ran.clear()
    caplog.clear()
    clock.advance(7200)  # past the wake (3600 s) and the deadline (5400 s)
    with caplog.at_level(logging.DEBUG, logger="edge"):
        node = edge.Node(app, data_dir=d, workers=1, clock=clock).start()
        try:
            wait_until(lambda: sum("cannot fire" in r.getMessage() for r in caplog.records)
                       >= 2, what="both timers met the damage")
            with pytest.raises(ChecksumMismatch, match="'wf-n'"):
                node.store.get_workflow("wf-n")
        finally:
            node.stop()
    fired = [r for r in caplog.records if "cannot fire" in r.getMessage()]
    assert {r.getMessage().split()[1] for r in fired} == {"wake", "deadline"}, fired
    assert all(r.levelno == logging.ERROR and "checksum" in r.getMessage() for r in fired)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert ran == []


def test_a_time_column_whose_stored_type_was_flipped_fails_the_checksum_not_float():
    """A bit flip in a record header can turn a REAL into a BLOB: the row checks refuse it
    as damage (ChecksumMismatch) instead of a ValueError from float() (the corruption fuzz
    met this with seed 1: `edge show` printed "this is a bug")."""
    from edge.store.rows import check_op_row, op_row_digest, published_digest

    row: tuple[object, ...] = ("wf-1", 1, "step", "work", "SUCCEEDED", 1, '"x"', None, 1.5, 2.5)
    row = (*row, op_row_digest(row))
    check_op_row(row)  # the undamaged row passes
    for damaged_row in (row[:8] + (b"eS\xf1\x00",) + row[9:], row[:9] + ("2.5",) + row[10:]):
        with pytest.raises(ChecksumMismatch):
            check_op_row(damaged_row)
    good = published_digest("wf-1", "k", '"v"', 1, 3.0)
    assert published_digest("wf-1", "k", '"v"', 1, 3) == good
    assert published_digest("wf-1", "k", '"v"', 1, b"\x00\x01") != good  # type: ignore[arg-type]
