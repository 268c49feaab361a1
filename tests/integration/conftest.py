"""Fixtures for replication tests: a real moto S3 server, real litestream, real SQLite.

The moto server runs once per session on 127.0.0.1 on a free port; every test
gets its own bucket. Credentials are the moto defaults. ``AWS_CA_BUNDLE`` is left
as the machine sets it: the code under test must cope with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import edge
from edge.replication import ReplicaTarget, child_env, find_litestream, parse_replica_url
from tests.conftest import wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


poll = wait_until  # one deadline-polling helper for the whole suite


@pytest.fixture
def wait_for() -> Callable[..., object]:
    return poll


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    import boto3

    name = f"edge-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=name
    )
    return name


@pytest.fixture
def s3_target(bucket: str, moto_endpoint: str) -> ReplicaTarget:
    return parse_replica_url(f"s3://{bucket}/site-a?endpoint={moto_endpoint}")


@pytest.fixture
def file_target(tmp_path: Path) -> ReplicaTarget:
    return parse_replica_url(f"file://{tmp_path / 'replica'}")


@contextlib.contextmanager
def basic_node(data_dir: Path) -> Iterator[edge.Node]:
    """A node of tests/integration/apps/basic_app.py on ``data_dir``, no replica, the HTTP
    API on a free loopback port, no token."""
    from tests.integration.apps.basic_app import app

    n = edge.Node(app, data_dir=data_dir, listen="127.0.0.1:0", workers=4)
    n.start()
    try:
        yield n
    finally:
        n.stop(grace=2.0)


@pytest.fixture(scope="module")
def basic_http_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[edge.Node]:
    """One ``basic_node`` per test module, on a fresh data directory."""
    with basic_node(tmp_path_factory.mktemp("http") / "data") as n:
        yield n


@pytest.fixture(scope="module")
def port(node: edge.Node) -> int:
    """The HTTP API port of the module's ``node`` fixture."""
    assert node.http is not None
    return node.http.port


@pytest.fixture(params=["s3", "file"])
def target(request: pytest.FixtureRequest) -> ReplicaTarget:
    fixture = "s3_target" if request.param == "s3" else "file_target"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def add_rows(db: Path, n: int, tag: str = "x") -> int:
    """Append ``n`` rows in WAL mode, one ``BEGIN IMMEDIATE`` each; returns the row count."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=5000")
        con.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, tag TEXT, v TEXT)")
        for i in range(n):
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO t (tag, v) VALUES (?, ?)", (tag, f"row-{i}" * 8))
            con.execute("COMMIT")
        return int(con.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        con.close()


def count_rows(db: Path, tag: str | None = None) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        if tag is None:
            return int(con.execute("SELECT count(*) FROM t").fetchone()[0])
        return int(con.execute("SELECT count(*) FROM t WHERE tag=?", (tag,)).fetchone()[0])
    finally:
        con.close()


def integrity(db: Path) -> str:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def replicate_once(db: Path, target: ReplicaTarget, epoch: int, work: Path) -> None:
    """One ``litestream replicate -once`` pass of ``db`` into ``target``'s epoch."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / f"once-e{epoch}.yml"
    entry = {"path": str(db), "replica": target.litestream_replica_config(epoch, 1.0)}
    cfg.write_text(json.dumps({"dbs": [entry]}))
    proc = subprocess.run(
        [find_litestream(), "replicate", "-once", "-config", str(cfg), "-no-expand-env"],
        capture_output=True,
        env=child_env(target),
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


# Helpers as fixtures, so test modules never import this conftest by name.
@pytest.fixture(name="add_rows")
def _add_rows_fixture() -> Callable[..., int]:
    return add_rows


@pytest.fixture(name="count_rows")
def _count_rows_fixture() -> Callable[..., int]:
    return count_rows


@pytest.fixture(name="integrity")
def _integrity_fixture() -> Callable[[Path], str]:
    return integrity


@pytest.fixture(name="replicate_once")
def _replicate_once_fixture() -> Callable[..., None]:
    return replicate_once
