"""What the API server refuses before a route runs: ambiguous request framing (request
smuggling).

Invariants:
- framing is strict, and a refusal here closes the connection (the server's job): a
  header line without a colon or whose name is not an RFC 9110 token (``Content-Length
  : 0``), a folded header value, any ``Transfer-Encoding`` (no chunked request bodies:
  411), a ``Content-Length`` given twice or not a plain decimal number; so what follows a
  request is never read as the next one unless the request's length is certain.
"""

from __future__ import annotations

import re
from email.message import Message

from edge.api.wire import ApiError

__all__ = ["JSON_TYPES", "body_length", "is_json_type"]

JSON_TYPES = ("application/json",)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]{1,12}")


def _bad_framing(message: str) -> ApiError:
    return ApiError(400, "bad_request", message,
                    "send each header once as `Name: value` on one line, and the body with "
                    "one Content-Length")


def body_length(headers: Message) -> int | None:
    """The request body's length in bytes (None: the request has no body), or the
    ApiError that refuses an ambiguous framing."""
    if headers.defects or headers.get_payload():
        # http.client stops at the first line it cannot read as a header and keeps the
        # rest (``Content-Length : 0`` included) as a "payload" no one would look at.
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
