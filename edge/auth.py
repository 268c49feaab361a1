"""API tokens: where they come from, and when the node refuses to run without one.

Two tokens guard the HTTP API (the server checks them, edge/api/server.py):
the API token grants every route; the read-only token grants the reading
routes (GET/HEAD: views, /metrics, the dashboard) and is refused with 403 on
every other method. /healthz, /readyz and the dashboard shell (GET /) stay open
for probes.

Invariants:
- a node never listens on a non-loopback address without the API token, unless
  the operator opted out explicitly (``--insecure-no-token``); the refusal is a
  ConfigError (exit 2) raised while validating Settings, before anything binds;
- a token read from a file (``--api-token-file``, the way Kubernetes mounts a
  Secret) is the file's text without its trailing newline; an empty file, one
  that cannot be read, or a token with whitespace or control characters inside
  is refused with the file's path and no part of its content;
- nothing here reads the environment (the CLI's option declarations do).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from edge.errors import ConfigError, UsageError

__all__ = ["MAX_TOKEN_BYTES", "check_exposure", "is_loopback", "read_token_file",
           "resolve_token"]

MAX_TOKEN_BYTES = 4096


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses; a host name we would have to
    resolve is not assumed to be loopback."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_token(token: str, where: str) -> str:
    if not token:
        raise ConfigError(f"{where} is empty", "put the token (one line) in it")
    if len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
        raise ConfigError(f"{where} is longer than {MAX_TOKEN_BYTES} bytes",
                          "use a random token of 32 to 64 characters")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError(f"{where} has whitespace or control characters inside",
                          "a token is one line of printable characters, e.g. "
                          "`openssl rand -hex 32`")
    return token


def read_token_file(path: str | Path, option: str) -> str:
    """The token in ``path`` (one line; a trailing newline is dropped)."""
    where = f"{option} {path}"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TOKEN_BYTES + 2)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file",
                          "mount the Secret there, or point the option at the token file"
                          ) from None
    except IsADirectoryError:
        raise ConfigError(f"{where} is a directory", "name the file that holds the token"
                          ) from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}",
                          "check the file's permissions (the node's user must read it)"
                          ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text", "put the token (one line) in it"
                          ) from None
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return _check_token(text, where)


def resolve_token(value: str | None, file: str | Path | None, option: str) -> str | None:
    """The token given as ``option`` itself or as ``option-file``; never both."""
    if value and file:
        raise UsageError(f"both {option} and {option}-file are given",
                         f"give one; {option}-file keeps the token out of `ps` and the "
                         "environment")
    if file:
        return read_token_file(file, f"{option}-file")
    return _check_token(value, option) if value else None


def check_exposure(host: str, token: str | None, read_token: str | None,
                   insecure_no_token: bool) -> None:
    """Refuse settings that would open the API to the network without a token."""
    if read_token is not None and token is None:
        raise ConfigError("--api-read-token needs --api-token",
                          "the read-only token guards reads; without an API token the "
                          "write routes would be open")
    if read_token is not None and read_token == token:
        raise ConfigError("--api-read-token is the same as --api-token",
                          "give viewers and Prometheus a different token")
    if token is None and not insecure_no_token and not is_loopback(host):
        raise ConfigError(
            f"--listen {host}: the HTTP API would be reachable from the network without "
            "an API token",
            "set one with --api-token-file (EDGE_API_TOKEN_FILE, e.g. a mounted Secret) "
            "or --api-token; or listen on 127.0.0.1; or pass --insecure-no-token "
            "(EDGE_INSECURE_NO_TOKEN=1) to run it open on purpose")
