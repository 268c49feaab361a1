"""--replica URL parsing: accepted shapes, the Litestream replica block, refused shapes."""

from __future__ import annotations

import pytest

from edge.errors import ConfigError
from edge.replication import parse_replica_url
from edge.replication.target import parse_go_time


def test_s3_with_endpoint_and_region():
    t = parse_replica_url(
        "s3://my-bucket/sites/shop-1/?endpoint=http://127.0.0.1:9000&region=eu-west-1"
    )
    assert (t.scheme, t.bucket, t.prefix) == ("s3", "my-bucket", "sites/shop-1")
    assert (t.endpoint, t.region) == ("http://127.0.0.1:9000", "eu-west-1")
    assert t.epoch_prefix(3) == "sites/shop-1/e3"
    assert t.lease_key() == "sites/shop-1/lease.json"
    assert t.plain_http
    assert t.litestream_url(3) == (
        "s3://my-bucket/sites/shop-1/e3?region=eu-west-1"
        "&endpoint=http%3A%2F%2F127.0.0.1%3A9000&forcePathStyle=true"
    )
    assert t.litestream_replica_config(3, 0.5) == {
        "type": "s3",
        "bucket": "my-bucket",
        "path": "sites/shop-1/e3",
        "region": "eu-west-1",
        "sync-interval": "500ms",
        "endpoint": "http://127.0.0.1:9000",
        "force-path-style": True,
    }


def test_s3_defaults_region_and_allows_an_empty_prefix():
    t = parse_replica_url("s3://my-bucket")
    assert (t.prefix, t.endpoint, t.region) == ("", None, "us-east-1")
    assert t.epoch_prefix(1) == "e1" and t.lease_key() == "lease.json"
    block = t.litestream_replica_config(1, 1.0)
    assert block["region"] == "us-east-1" and "endpoint" not in block
    assert not t.plain_http  # real AWS: TLS, so AWS_CA_BUNDLE matters


def test_https_endpoint_is_not_plain_http():
    t = parse_replica_url("s3://my-bucket/p?endpoint=https://minio.local")
    assert t.endpoint == "https://minio.local" and not t.plain_http


def test_file_replica():
    t = parse_replica_url("file:///var/lib/edge/replica/")
    assert (t.scheme, t.bucket, t.prefix) == ("file", None, "/var/lib/edge/replica")
    assert t.epoch_prefix(2) == "/var/lib/edge/replica/e2"
    assert t.lease_key() == "/var/lib/edge/replica/lease.json"
    assert t.litestream_replica_config(2, 1.0) == {
        "type": "file",
        "path": "/var/lib/edge/replica/e2",
        "sync-interval": "1000ms",
    }
    assert t.litestream_url(2) == "file:///var/lib/edge/replica/e2"
    assert parse_replica_url("file://localhost/srv/r").prefix == "/srv/r"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "empty"),
        ("/var/lib/replica", "missing scheme"),
        ("gs://bucket/x", "unknown scheme"),
        ("s3:///prefix", "missing bucket"),
        ("s3://B/x", "invalid bucket"),
        ("s3://bucket/a/../b", "segments"),
        ("s3://bucket/x?endpoint=ftp://h", "endpoint"),
        ("s3://bucket/x?endpoint=http://", "endpoint"),
        ("s3://bucket/x?endpoint=http://h:notaport", "port"),
        ("s3://bucket/x?endpoint=http://h/path", "no path"),
        ("s3://bucket/x?region=EU WEST", "region"),
        ("s3://bucket/x?regoin=eu-west-1", "unknown parameter"),
        ("s3://bucket/x?region=a&region=b", "more than once"),
        ("file://relative/dir", "absolute"),
        ("file:relative", "absolute"),
        ("file:///", "refusing"),
        ("file:///tmp/r?x=1", "no parameters"),
    ],
)
def test_malformed_urls_are_config_errors_naming_the_flag(url, words):
    with pytest.raises(ConfigError) as err:
        parse_replica_url(url)
    assert err.value.message.startswith("--replica: ")
    assert words in err.value.message
    assert err.value.hint and err.value.exit_code == 2


def test_epoch_must_be_positive():
    with pytest.raises(ValueError):
        parse_replica_url("s3://bucket/x").epoch_prefix(0)


def test_go_timestamps_from_litestream_parse_to_unix_seconds():
    assert parse_go_time("2026-11-21T05:49:20.378465741Z") == pytest.approx(1795240160.378466)
    assert parse_go_time("2026-11-21T05:49:20Z") == 1795240160.0
    assert parse_go_time("2026-11-21T06:49:20.5+01:00") == 1795240160.5
    assert parse_go_time("yesterday") is None
