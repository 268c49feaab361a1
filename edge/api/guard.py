"""What the API server refuses before a route runs: ambiguous request framing (request
smuggling), a ``Host`` the node does not serve (DNS rebinding) and a write another web
site could have sent (CSRF).

Invariants:
- framing is strict, and a refusal here closes the connection (the server's job): a
  header line without a colon or whose name is not an RFC 9110 token (``Content-Length
  : 0``), a folded header value, any ``Transfer-Encoding`` (no chunked request bodies:
  411), a ``Content-Length`` given twice or not a plain decimal number; so what follows a
  request is never read as the next one unless the request's length is certain;
- ``Host`` (and an absolute-form target's authority) is checked on every request, probes
  included (421 ``misdirected_request``): an IP address, ``localhost``, the ``--listen``
  host, or an ``--allowed-host`` name. Any IP address passes because a browser sends
  one only when it connected to that address, so DNS rebinding (a name of the attacker's
  that resolves to the node) cannot produce it; this is also how a wildcard listen
  (0.0.0.0, ::) serves the machine's own addresses. The port is not checked: port
  mappings and tunnels (``docker -p 9000:8080``, ``ssh -L``) change it, and a port is
  no way around the rule (browsers separate origins by port, and the Origin check
  below compares it). A request with no ``Host`` (HTTP/1.0 probes) passes: a browser
  always sends one;
- a write (any method but GET and HEAD) needs ``Content-Type: application/json`` (or
  a ``+json`` type): an HTML form or a "simple" cross-site ``fetch`` cannot send one
  without a CORS preflight, which the node never grants (415 ``unsupported_media_type``);
- a write whose ``Origin`` is present must come from the node's own origin: the
  request's own ``Host`` (same host and port), or an ``--allowed-host`` name (a proxy's
  public name); anything else, ``null`` included, is 403 ``cross_origin``. Clients that
  are not browsers send no ``Origin`` and are not affected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from urllib.parse import urlsplit

from edge.api.wire import ApiError
from edge.config import is_ip

__all__ = ["JSON_TYPES", "HostRules", "body_length", "is_json_type"]

JSON_TYPES = ("application/json",)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]{1,12}")
_READS = ("GET", "HEAD")


def _bad_framing(message: str) -> ApiError:
    return ApiError(400, "bad_request", message,
                    "send each header once as `Name: value` on one line, and the body with "
                    "one Content-Length")


def body_length(headers: Message) -> int | None:
    """The request body's length in bytes (None: the request has no body), or the
    ApiError that refuses an ambiguous framing."""
    if headers.get_payload() or any(isinstance(d, MissingHeaderBodySeparatorDefect)
                                    for d in headers.defects):
        # http.client stops at the first line it cannot read as a header and keeps the
        # rest (``Content-Length : 0`` included) as a "payload" no one would look at.
        # (Other defects are about a multipart body the headers announce: not framing.)
        raise _bad_framing("a request header line is malformed (no colon, or a space "
                           "before it)")
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise _bad_framing(f"request header name {name[:40]!r} is not a token")
        if "\r" in value or "\n" in value:
            raise _bad_framing(f"request header {name[:40]!r} is folded over lines")
    if headers.get_all("Transfer-Encoding"):
        raise ApiError(411, "length_required",
                       "Transfer-Encoding is not accepted on requests (no chunked bodies)",
                       "send the body with a Content-Length header")
    lengths = headers.get_all("Content-Length") or []
    if not lengths:
        return None
    text = lengths[0].strip()
    if len(lengths) != 1 or not _DIGITS.fullmatch(text):
        shown = ", ".join(lengths)[:60]
        raise ApiError(400, "bad_request", f"invalid Content-Length {shown!r}",
                       "send the body's length in bytes, in one Content-Length header")
    return int(text)


def is_json_type(content_type: str | None) -> bool:
    ctype = (content_type or "").split(";")[0].strip().lower()
    return ctype in JSON_TYPES or (ctype.endswith("+json") and "/" in ctype)


def _split_authority(authority: str) -> tuple[str, str] | None:
    """(lower-case host without a trailing dot or brackets, port text or '') of
    ``host[:port]`` / ``[v6][:port]``; None when it is not one."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        host, sep, rest = authority[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        host, _, port = authority.partition(":")
        if ":" in port:
            return None  # an IPv6 literal without brackets
    if port and not port.isdigit():
        return None
    host = host.rstrip(".") if host != "." else host
    return (host, port) if host else None


class HostRules:
    """The names a node answers to, and the checks of one request's Host and Origin."""

    def __init__(self, listen_host: str, allowed: Iterable[str] = ()) -> None:
        self.allowed = frozenset(h.strip().lower().rstrip(".") for h in allowed if h.strip())
        self.names = self.allowed | {"localhost", listen_host.strip("[]").lower().rstrip(".")}

    def check_host(self, host: str | None, target: str) -> None:
        """Refuse (421) a Host, or an absolute-form target's authority, the node does not
        serve."""
        authority = urlsplit(target).netloc if "://" in target[:12] else None
        for given in (host, authority):
            if given is None:
                continue
            parts = _split_authority(given)
            if parts is None or not (is_ip(parts[0]) or parts[0] in self.names):
                raise ApiError(421, "misdirected_request",
                               f"this node does not serve the host {given[:100]!r}",
                               "use the node's address or localhost; serve another name "
                               "with --allowed-host NAME (EDGE_ALLOWED_HOSTS)")

    def check_write(self, method: str, host: str | None, origin: str | None,
                    content_type: str | None) -> None:
        """Refuse a write a web page on another origin could have sent (403, 415)."""
        if method in _READS:
            return
        if origin is not None and not self._same_origin(origin, host):
            raise ApiError(403, "cross_origin",
                           f"a write from the web origin {origin[:100]!r} is refused: it is "
                           "not this node's", "use the node's own dashboard, or a client "
                           "that sends no Origin (the CLI, edge.Client); serve another name "
                           "with --allowed-host NAME")
        if not is_json_type(content_type):
            shown = (content_type or "").split(";")[0].strip()[:60] or "missing"
            raise ApiError(415, "unsupported_media_type",
                           f"a {method} needs Content-Type: application/json (it is {shown})",
                           "send Content-Type: application/json, with a JSON object body "
                           "(`{}` when the route takes no field)")

    def _same_origin(self, origin: str, host: str | None) -> bool:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or parts.path or not parts.netloc:
            return False  # "null" (sandboxed frames, file:// pages) and anything odd
        theirs = _split_authority(parts.netloc)
        if theirs is None:
            return False
        if theirs[0] in self.allowed:
            return True
        mine = _split_authority(host) if host is not None else None
        if mine is None:
            return False
        default = "443" if parts.scheme == "https" else "80"
        return (theirs[0], theirs[1] or default) == (mine[0], mine[1] or default)
