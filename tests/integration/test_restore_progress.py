"""`edge restore` shows a progress bar on a terminal (and only there): restore() reports
the bytes litestream wrote while it runs, and the CLI draws them in place."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from edge.cli.progress import ProgressBar
from edge.replication import restore

ROOT = Path(__file__).resolve().parents[2]


def big_replica(tmp_path, target, add_rows, replicate_once, mb: int = 24) -> None:
    import sqlite3

    db = tmp_path / "src.db"
    add_rows(db, 1)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("CREATE TABLE pad (v BLOB)")
    con.execute("BEGIN")
    con.executemany("INSERT INTO pad VALUES (?)", ((os.urandom(4000),) for _ in range(mb * 256)))
    con.execute("COMMIT")
    con.close()
    replicate_once(db, target, 1, tmp_path / "ls")


def test_restore_reports_progress_while_litestream_runs(tmp_path, s3_target, add_rows,
                                                        replicate_once):
    big_replica(tmp_path, s3_target, add_rows, replicate_once)
    seen: list[tuple[int, int]] = []
    res = restore(s3_target, tmp_path / "out.db", progress=lambda d, t: seen.append((d, t)))
    size = res.path.stat().st_size
    assert seen, "no progress reported"
    totals = {t for _, t in seen}
    assert len(totals) == 1 and totals.pop() > size // 4  # the epoch's objects
    written = [d for d, _ in seen]
    assert written == sorted(written) and written[-1] <= size * 2


def test_the_bar_is_drawn_in_place_and_finished(tmp_path):
    out = tmp_path / "bar.txt"
    with open(out, "w") as fh:
        bar = ProgressBar(fh, "downloading", interval=0.0)
        bar.update(0, 100_000_000)
        bar.update(50_000_000, 100_000_000)
        bar.update(150_000_000, 100_000_000)  # past the estimate: never "100 %" early
        bar.finish(120_000_000)
    text = out.read_bytes().decode()  # not read_text(): it turns "\r" into "\n"
    frames = text.split("\r")[1:]
    assert frames[1].startswith("downloading [###############...............]  50% 50.0 MB")
    assert " 99% " in frames[2]
    assert frames[3].startswith("downloading [" + "#" * 30 + "] 100% 120.0 MB")
    assert text.endswith("\n") and text.count("\n") == 1
    with open(out, "w") as fh:
        ProgressBar(fh, "x").finish(5)  # never drawn: prints nothing
    assert out.read_text() == ""


def run_restore(argv: list[str], tty: bool) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    edge = str(Path(sys.executable).with_name("edge"))
    if not tty:
        proc = subprocess.run([edge, *argv], capture_output=True, text=True, env=env,
                              timeout=120)
        return proc.returncode, proc.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen([edge, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(60), b"".join(chunks).decode(errors="replace")


def test_edge_restore_draws_the_bar_on_a_terminal_only(tmp_path, s3_target, add_rows,
                                                       replicate_once):
    big_replica(tmp_path, s3_target, add_rows, replicate_once)
    url = s3_target.litestream_url(1).split("/e1?")[0] + "?endpoint=" + str(s3_target.endpoint)
    code, err = run_restore(["restore", "--replica", url, "--output",
                             str(tmp_path / "tty.db")], tty=True)
    assert code == 0, err
    assert "downloading [" in err and "] 100% " in err, err
    code, err = run_restore(["restore", "--replica", url, "--output",
                             str(tmp_path / "pipe.db")], tty=False)
    assert code == 0, err
    assert "downloading" not in err and "\r" not in err
    assert (tmp_path / "tty.db").stat().st_size == (tmp_path / "pipe.db").stat().st_size
