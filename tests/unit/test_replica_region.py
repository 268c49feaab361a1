"""The replica's region: the URL's ``region=``, else AWS_REGION, else AWS_DEFAULT_REGION,
else us-east-1; the same region reaches boto3 and every URL/config given to Litestream."""

from __future__ import annotations

import pytest

from edge.errors import ConfigError
from edge.replication.objects import S3Store
from edge.replication.target import DEFAULT_REGION, parse_replica_url

URL = "s3://bucket/site-a"


@pytest.mark.parametrize("url,env,want", [
    (URL, {}, DEFAULT_REGION),
    (URL, {"AWS_REGION": "eu-west-3"}, "eu-west-3"),
    (URL, {"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
    (URL, {"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "ap-south-1"}, "eu-west-3"),
    (URL + "?region=us-west-2", {"AWS_REGION": "eu-west-3"}, "us-west-2"),  # the URL wins
    (URL + "?endpoint=http://127.0.0.1:9000", {"AWS_REGION": "eu-central-1"}, "eu-central-1"),
])
def test_region_order(url: str, env: dict[str, str], want: str) -> None:
    target = parse_replica_url(url, env)
    assert target.region == want
    assert f"region={want}" in target.litestream_url(1)
    assert target.litestream_replica_config(1, 1.0)["region"] == want


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "sa-east-1")
    assert parse_replica_url(URL).region == "sa-east-1"


def test_boto3_gets_the_same_region() -> None:
    target = parse_replica_url(URL, {"AWS_REGION": "eu-north-1"})
    client = S3Store(target)._s3()  # builds the client; sends no request
    assert client.meta.region_name == "eu-north-1"


def test_a_bad_region_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AWS_REGION"):
        parse_replica_url(URL, {"AWS_REGION": "Not A Region"})
    with pytest.raises(ConfigError, match="--replica"):
        parse_replica_url(URL + "?region=Bad_Region", {})


def test_file_replicas_ignore_the_environment() -> None:
    assert parse_replica_url("file:///tmp/r", {"AWS_REGION": "eu-west-3"}).region == DEFAULT_REGION
