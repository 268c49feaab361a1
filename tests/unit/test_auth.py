"""API tokens: the refusal to listen on the network without one, token files, the
litestream child's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.auth import is_loopback, read_token_file, resolve_token
from edge.config import Settings
from edge.errors import EXIT_USAGE, ConfigError, UsageError
from edge.replication import child_env, parse_replica_url

EXPOSED = ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080", "edge.example.com:8080",
           "[2001:db8::1]:8080"]
LOOPBACK = ["127.0.0.1:8080", "127.0.0.2:8080", "localhost:8080", "LOCALHOST:1", "[::1]:8080"]


@pytest.mark.parametrize("listen", EXPOSED)
def test_a_network_listen_without_a_token_is_refused_with_a_hint(listen: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings(listen=listen).validate()
    assert err.value.exit_code == EXIT_USAGE == 2
    assert "without an API token" in err.value.message and listen.rsplit(":", 1)[0].strip(
        "[]") in err.value.message
    for needle in ("--api-token-file", "EDGE_API_TOKEN_FILE", "127.0.0.1",
                   "--insecure-no-token", "EDGE_INSECURE_NO_TOKEN"):
        assert needle in err.value.hint, needle


@pytest.mark.parametrize("listen", EXPOSED)
def test_a_token_or_the_explicit_opt_out_allows_a_network_listen(listen: str) -> None:
    Settings(listen=listen, api_token="t0ken").validate()
    Settings(listen=listen, insecure_no_token=True).validate()


@pytest.mark.parametrize("listen", [*LOOPBACK, None])
def test_loopback_needs_no_token(listen: str | None) -> None:
    Settings(listen=listen).validate()


def test_is_loopback_does_not_resolve_names() -> None:
    assert is_loopback("127.9.9.9") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("localhost.example.com") and not is_loopback("my-host")


def test_a_read_token_needs_the_api_token_and_must_differ() -> None:
    with pytest.raises(ConfigError, match="needs --api-token"):
        Settings(api_read_token="r").validate()
    with pytest.raises(ConfigError, match="same as --api-token"):
        Settings(api_token="t", api_read_token="t").validate()
    Settings(listen="0.0.0.0:8080", api_token="t", api_read_token="r").validate()


def test_token_file_drops_one_trailing_newline(tmp_path: Path) -> None:
    for raw, want in [(b"s3cret\n", "s3cret"), (b"s3cret\r\n", "s3cret"), (b"s3cret", "s3cret")]:
        f = tmp_path / "token"
        f.write_bytes(raw)
        assert read_token_file(f, "--api-token-file") == want


@pytest.mark.parametrize("raw,why", [
    (b"", "is empty"), (b"\n", "is empty"), (b"two words\n", "whitespace"),
    (b"line1\nline2\n", "whitespace"), (b"tab\tbed", "whitespace"), (b"\x00nul", "control"),
    (b"\xff\xfe", "not UTF-8"), (b"x" * 5000, "longer than"),
])
def test_a_bad_token_file_is_refused_without_echoing_it(tmp_path: Path, raw: bytes,
                                                        why: str) -> None:
    f = tmp_path / "token"
    f.write_bytes(raw)
    with pytest.raises(ConfigError) as err:
        read_token_file(f, "--api-token-file")
    assert why in err.value.message and str(f) in err.value.message and err.value.hint
    assert err.value.exit_code == 2
    if len(raw) > 3:
        assert raw.decode("utf-8", "replace")[1:-1] not in err.value.message


def test_a_missing_or_directory_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_token_file(tmp_path / "nope", "--api-token-file")
    with pytest.raises(ConfigError, match="is a directory"):
        read_token_file(tmp_path, "--api-token-file")


def test_resolve_token_takes_one_source(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert resolve_token(None, f, "--api-token") == "from-file"
    assert resolve_token("literal", None, "--api-token") == "literal"
    assert resolve_token(None, None, "--api-token") is None
    with pytest.raises(UsageError, match="both --api-token and --api-token-file"):
        resolve_token("literal", f, "--api-token")


def test_the_litestream_child_environment_carries_no_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PATH": "/bin", "AWS_ACCESS_KEY_ID": "k", "EDGE_API_TOKEN": "t",
           "EDGE_API_TOKEN_FILE": "/run/secrets/t", "EDGE_API_READ_TOKEN": "r",
           "EDGE_API_READ_TOKEN_FILE": "/run/secrets/r", "EDGE_REPLICA": "s3://bkt/p"}
    target = parse_replica_url("s3://bkt/p?endpoint=http://127.0.0.1:9")
    out = child_env(target, env)
    assert out == {"PATH": "/bin", "AWS_ACCESS_KEY_ID": "k", "EDGE_REPLICA": "s3://bkt/p"}
    monkeypatch.setenv("EDGE_API_TOKEN", "from-os-environ")
    assert "EDGE_API_TOKEN" not in child_env(target)
