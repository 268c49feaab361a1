"""Fleet fixtures: sites pre-built in one moto bucket. Each site is a real edge database
(a real Node ran its workflows), a real replica lease written by ``Lease.acquire``, and
its epoch uploaded by a real ``litestream replicate -once``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import edge
from edge.fleet.bucket import site_target
from edge.replication import Lease, parse_replica_url
from tests.conftest import wait_until
from tests.integration.conftest import (  # noqa: F401
    aws_env,
    bucket,
    moto_endpoint,
    replicate_once,
)

app = edge.App("fleet-sites")


@app.step(name="ok")
def ok(n: int) -> int:
    return n * 2


@app.workflow(name="good")
def good(n: int) -> int:
    return ok(n)


@app.workflow(name="bad")
def bad(n: int) -> int:
    raise ValueError(f"bad input {n}")


@app.workflow(name="waits")
def waits(n: int) -> Any:
    return edge.wait_event("go")


def run_site_node(data_dir: Path, good_n: int = 2, bad_n: int = 0, waiting: list[str] | None = None
                  ) -> None:
    """A real node on ``data_dir``: runs workflows to their states, then stops."""
    node = edge.Node(app, data_dir=data_dir, workers=2)
    node.start()
    try:
        ids = [node.verbs.start_workflow("good", [i])[0] for i in range(good_n)]
        ids += [node.verbs.start_workflow("bad", [i])[0] for i in range(bad_n)]
        for wid in waiting or []:  # one after the other: the first waits longest
            node.verbs.start_workflow("waits", [0], id=wid)
            wait_until(lambda w=wid: node.store.get_workflow(w).status == "WAITING", 20,
                       f"{wid} waiting")
        wait_until(lambda: all(node.store.get_workflow(w).status in ("SUCCEEDED", "FAILED")
                               for w in ids), 20, "site workflows final")
        wait_until(lambda: all(node.store.get_workflow(w).status == "WAITING"
                               for w in waiting or []), 20, "site workflows waiting")
    finally:
        node.stop(grace=2.0)


class Sites:
    def __init__(self, tmp: Path, bucket_name: str, endpoint: str) -> None:
        self.tmp = tmp
        self.bucket = bucket_name
        self.endpoint = endpoint
        self.url = f"s3://{bucket_name}/sites?endpoint={endpoint}"
        self.root = parse_replica_url(self.url)

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def build(self, name: str, *, good_n: int = 2, bad_n: int = 0,
              waiting: list[str] | None = None, release: bool = False,
              data: bool = True, epoch: int = 1) -> Path:
        data_dir = self.tmp / "sites" / name
        target = site_target(self.root, name)
        lease = Lease(target, f"node-{name}", ttl=10.0)
        got = lease.acquire(None)
        assert got.held, got
        if data:
            run_site_node(data_dir, good_n, bad_n, waiting)
            replicate_once(data_dir / "edge.db", target, epoch, self.tmp / "ls" / name)
        if release:
            lease.release()
        return data_dir

    def update(self, name: str, good_n: int = 1) -> None:
        """More work on an existing site, uploaded again into its epoch."""
        data_dir = self.tmp / "sites" / name
        run_site_node(data_dir, good_n, 0)
        replicate_once(data_dir / "edge.db", site_target(self.root, name), 1,
                       self.tmp / "ls" / name)

    def put(self, key: str, body: bytes) -> None:
        self.s3().put_object(Bucket=self.bucket, Key=key, Body=body)

    def snapshot(self) -> dict[str, tuple[str, int, str]]:
        """Every object of the bucket with its ETag, size and LastModified."""
        s3 = self.s3()
        out: dict[str, tuple[str, int, str]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents") or []:
                head = s3.head_object(Bucket=self.bucket, Key=obj["Key"])
                out[obj["Key"]] = (head["ETag"], int(head["ContentLength"]),
                                   head["LastModified"].isoformat())
        return out


@pytest.fixture
def sites(tmp_path: Path, bucket: str, moto_endpoint: str) -> Sites:  # noqa: F811
    return Sites(tmp_path, bucket, moto_endpoint)


@pytest.fixture
def fleet_json(capsys: pytest.CaptureFixture[str]) -> Callable[..., dict[str, Any]]:
    from tests.conftest import run_cli

    def run(*argv: str) -> dict[str, Any]:
        code, out, err = run_cli(["fleet", *argv, "--json"], capsys)
        assert code == 0, err
        return json.loads(out)  # type: ignore[no-any-return]

    return run
