"""What both HTTP clients (edge.Client, edge.AsyncClient) check and build from a call's
arguments before any request: the node URL, the API token, and the JSON request bodies.

Invariants:
- pure: no I/O but reading a token file once, when a client is made; stdlib and the
  base layer only, so importing a client stays cheap;
- bad arguments raise ``UsageError`` here, before anything is sent, with the same
  message from either client.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from edge.auth import read_token_file
from edge.errors import UsageError

DEFAULT_URL = "http://127.0.0.1:8080"


def node_url(url: str) -> tuple[str, SplitResult, str]:
    """The node's base URL (stripped, no trailing ``/``), its parts and its host;
    ``UsageError`` unless it is an http(s)://HOST[:PORT] address with a host ``--url``
    accepts."""
    url = (url or DEFAULT_URL).strip().rstrip("/")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # "http://[::1": an unclosed IPv6 literal, a bad port
        parts, port_ok = urlsplit("http://invalid"), False
    if not port_ok or not parts.hostname or parts.scheme not in ("http", "https"):
        raise UsageError(f"--url {url[:200]!r} is not an http(s)://HOST:PORT address",
                         f"e.g. {DEFAULT_URL}")
    from edge.config import check_host

    check_host(parts.hostname, "--url")
    return url, parts, parts.hostname


def api_token(token: str | None, token_file: str | Path | None) -> str | None:
    """``token``, or the token read (once) from ``token_file``; not both."""
    if token and token_file:
        raise UsageError("both --api-token and --api-token-file are given", "give one")
    return read_token_file(token_file, "--api-token-file") if token_file else (token or None)


def start_body(workflow: str, input: Any, id: str | None, tags: dict[str, str] | None,
               ack: str | None) -> dict[str, Any]:
    """The ``POST /v1/workflows`` body (both clients): refuses an input that is neither
    keyword arguments (a dict) nor positional ones (a list or tuple) before any request."""
    body: dict[str, Any] = {"workflow": workflow}
    body.update(_start_item(input, id))
    if tags:
        body["tags"] = tags
    if ack is not None:
        body["ack"] = ack
    return body


def start_many_body(workflow: str, inputs: Sequence[Any], ids: Sequence[str] | None,
                    tags: dict[str, str] | None, ack: str | None) -> dict[str, Any]:
    """The ``POST /v1/batches`` body (both clients)."""
    if isinstance(inputs, (str, bytes, dict)):
        raise UsageError("inputs must be a list with one input per workflow",
                         "start_many(wf, [[1], [2]]) starts two")
    if ids is not None and len(ids) != len(inputs):
        raise UsageError(f"start_many got {len(inputs)} inputs but {len(ids)} ids",
                         "give one id per input, or no ids")
    body: dict[str, Any] = {"workflow": workflow, "starts": [
        _start_item(inp, None if ids is None else ids[i]) for i, inp in enumerate(inputs)]}
    if tags:
        body["tags"] = tags
    if ack is not None:
        body["ack"] = ack
    return body


def _start_item(input: Any, id: str | None) -> dict[str, Any]:
    if input is not None and not isinstance(input, (dict, list, tuple)):
        raise UsageError(
            f"input must be a dict (keyword arguments) or a list (positional arguments), "
            f"not {type(input).__name__}", "a single dict argument is [{...}]")
    item: dict[str, Any] = {}
    if input is not None:
        item["input"] = list(input) if isinstance(input, tuple) else input
    if id is not None:
        item["id"] = id
    return item


def send_body(event: Any, value: Any, dedup: str | None, ack: str | None) -> dict[str, Any]:
    """The ``POST /v1/workflows/ID/events/EVENT`` body; refuses an empty or non-string
    event name before any request."""
    if not isinstance(event, str) or not event:
        raise UsageError(f"invalid event name {event!r}", "1..200 characters")
    body: dict[str, Any] = {"value": value}
    if dedup is not None:
        body["dedup"] = dedup
    if ack is not None:
        body["ack"] = ack
    return body


def enqueue_body(workflow: str, input: Any, id: str | None, priority: int,
                 dedup: str | None, tags: dict[str, str] | None) -> dict[str, Any]:
    """The ``POST /v1/queues/QUEUE/workflows`` body."""
    body: dict[str, Any] = {"workflow": workflow, "priority": priority}
    if input is not None:
        body["input"] = list(input) if isinstance(input, tuple) else input
    if id is not None:
        body["id"] = id
    if dedup is not None:
        body["dedup"] = dedup
    if tags:
        body["tags"] = tags
    return body


# ---- reading a whole timeline: GET /v1/workflows/{id} serves it a page at a time ------

STEPS_PAGE = 1000  # steps per request when a client reads the whole timeline (the API's max)


def steps_query(after: int, limit: int = STEPS_PAGE) -> dict[str, int]:
    """The query of the page of steps after seq ``after``."""
    return {"steps_after": after, "steps_limit": limit}


def truncated_href(step: dict[str, Any]) -> str | None:
    """The step's full-value link when the page listed one of its values as a marker
    (``{"truncated": true, "bytes", "href"}``, docs/CLI.md "HTTP API"), else None."""
    values = [step.get("output"), step.get("error"),
              *(a.get("error") for a in step.get("history") or [] if isinstance(a, dict))]
    for v in values:
        if isinstance(v, dict) and v.get("truncated") is True and isinstance(v.get("href"), str):
            return str(v["href"])
    return None
