"""edge.Client: reach a running node over HTTP (what the CLI and other processes use).

    client = edge.Client("http://127.0.0.1:8080")
    handle = client.start("fulfil", {"order_id": "o-2"}, id="o-2")
    handle.result(timeout=10)

Invariants:
- stdlib only (urllib), so importing the client costs nothing;
- the server's error object comes back as the matching EdgeError subclass
  (404 NotFound, 400 UsageError, 409 Conflict, 503 NotReady, ...) carrying the
  server's code, message and hint; a node that cannot be reached is
  ``Unreachable`` with a hint on how to start or point at one;
- ``RemoteHandle.result`` has the semantics of ``edge.Handle.result``:
  SUCCEEDED -> the output, FAILED -> WorkflowFailed, CANCELLED ->
  WorkflowCancelled, not final in time -> TimeoutError; it rides out a node that
  restarts (refused, reset, 503 not_ready are polled again until its timeout);
- proxies from the environment are honoured, except for loopback nodes;
- the token may be read from a file (``token_file``, e.g. a mounted Secret),
  once, when the client is made.
"""

from __future__ import annotations

import builtins
import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from edge.auth import is_loopback as _is_loopback
from edge.client_args import (
    DEFAULT_URL,
    api_token,
    enqueue_body,
    node_url,
    send_body,
    start_body,
    start_many_body,
    steps_query,
    truncated_href,
)
from edge.errors import (
    Conflict,
    DataError,
    EdgeError,
    NotFound,
    NotReady,
    RequestRefused,
    Unreachable,
    UsageError,
    WorkflowCancelled,
    WorkflowFailed,
)

_DATA_CODES = {"data_error", "checksum_mismatch", "corrupt_database", "foreign_database",
               "newer_schema", "no_database", "corrupt"}
_UNREACHABLE_HINT = "start it with `edge run --app MODULE:ATTR` or set --url / EDGE_URL"


def error_from_response(status: int, payload: Any, url: str) -> EdgeError:
    """The EdgeError a server's error response stands for."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return EdgeError(f"unexpected HTTP {status} from {url}",
                         "is --url pointing at an edge node?", code="bad_response")
    code = str(err.get("code") or "error")
    message = str(err.get("message") or f"HTTP {status}")
    hint = str(err.get("hint") or "")
    cls: type[EdgeError]
    if status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif code in _DATA_CODES:
        cls = DataError  # the node's file is damaged (503 corrupt): exit 4, not "not ready"
    elif status == 503:
        cls = NotReady
    elif status in (401, 403):
        cls = EdgeError
    elif 400 <= status < 500:
        cls = RequestRefused
    else:
        cls = EdgeError
    exc = cls(message, hint, code=code)
    exc.http_status = status
    return exc


def transient_failure(reason: object) -> bool:
    """Whether a failed exchange is what a node that is stopping or booting looks like
    (both clients): nothing listens (refused), the connection was cut (reset, closed
    mid-answer), no answer came in time, or the socket layer failed otherwise; not a name
    that does not resolve, a TLS failure, or a reply that is not HTTP."""
    if isinstance(reason, (socket.gaierror, ssl.SSLError)):
        return False
    return isinstance(reason, (OSError, http.client.IncompleteRead))


def _quote(text: str, what: str) -> str:
    """A path segment; text with no UTF-8 form (a lone surrogate, e.g. from an argv byte
    that is not UTF-8) is refused here rather than failing inside urllib."""
    try:
        return quote(text, safe="")
    except UnicodeEncodeError:
        raise UsageError(f"invalid {what} {text[:60]!r}: not valid Unicode text",
                         "pass UTF-8 text") from None


def encode_request(method: str, path: str, body: Any, query: dict[str, Any] | None,
                   token: str | None) -> tuple[str, bytes | None, dict[str, str]]:
    """(path with its query string, the JSON body, the headers) of one API call; shared by
    Client and AsyncClient (None query values are left out). A write always says
    ``Content-Type: application/json``: the node refuses one that does not (415, its CSRF
    rule), with or without a body."""
    q = {k: v for k, v in (query or {}).items() if v is not None}
    target = path + (("?" + urlencode(q, doseq=True)) if q else "")
    data = None
    headers = {"Accept": "application/json", "User-Agent": "edge-client"}
    if body is not None:
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    if body is not None or method not in ("GET", "HEAD"):
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return target, data, headers


def decode_reply(status: int, raw: bytes, accept: tuple[int, ...], url: str,
                 what: str) -> Any:
    """The parsed JSON of an accepted answer, or the EdgeError the answer stands for."""
    try:
        payload = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError):
        payload = None
    if status in accept:
        if payload is None and raw.strip():
            raise EdgeError(f"the node at {url} answered {what} with something that is not "
                            "JSON", "is --url pointing at an edge node?", code="bad_response")
        return payload
    raise error_from_response(status, payload, url)


class ResultPoll:
    """One wait for a remote workflow's outcome, shared by RemoteHandle and its asyncio
    twin: what a polled view means (the output, WorkflowFailed, WorkflowCancelled, or not
    yet), and how long to wait before the next poll (backoff 50 ms .. 1 s, TimeoutError
    once ``timeout`` s passed).

    A node that is restarting is ridden out until that deadline (None: forever): a
    connection refused, reset or timed out and a 503 ``not_ready`` are polled again; what
    waiting cannot fix (an unknown id, a refused token, a name that does not resolve) is
    raised at once."""

    def __init__(self, wid: str, timeout: float | None) -> None:
        self.wid = wid
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.delay = 0.05
        self.unread = "not readable (node not ready)"

    def http_timeout(self, per_request: float) -> float:
        """One poll's HTTP timeout: the client's, but never past the caller's deadline
        (a node that accepts and never answers must not outlast ``timeout``)."""
        if self.deadline is None:
            return per_request
        return max(0.05, min(per_request, self.deadline - time.monotonic()))

    def absorb(self, exc: EdgeError) -> None:
        """Re-raise ``exc`` unless it is what a restarting node looks like."""
        if isinstance(exc, Unreachable) and exc.transient:
            self.unread = f"not readable ({exc.message})"
        elif isinstance(exc, NotReady):
            self.unread = "not readable (node not ready)"
        else:
            raise exc

    def settle(self, view: dict[str, Any] | None) -> tuple[bool, Any]:
        """(True, output) once SUCCEEDED; raises for FAILED/CANCELLED; (False, None) else."""
        st = view.get("status") if view is not None else None
        if view is not None and st == "SUCCEEDED":
            return True, view.get("output")
        if view is not None and st == "FAILED":
            raise WorkflowFailed(self.wid, view.get("error") or {})
        if view is not None and st == "CANCELLED":
            raise WorkflowCancelled(self.wid, view.get("error"))
        return False, None

    def next_wait(self, view: dict[str, Any] | None) -> float:
        wait = self.delay
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                state = view.get("status") if view else self.unread
                raise TimeoutError(f"workflow {self.wid} is still {state}")
            wait = min(wait, left)
        self.delay = min(self.delay * 2, 1.0)
        return wait


class ValueWait:
    """One ``get_event`` wait, shared by RemoteHandle's client and its asyncio twin: the
    key checked before any request, each long-poll round (at most the server's 30 s) and
    when to stop (the deadline passed, or the workflow is final and will publish no more)."""

    def __init__(self, key: Any, timeout: float) -> None:
        if not isinstance(key, str) or not key:
            raise UsageError(f"invalid key {key!r}", "the key passed to edge.set_event")
        self.deadline = time.monotonic() + max(0.0, timeout)

    def round(self, http_timeout: float) -> tuple[dict[str, Any], float]:
        """(the query of the next long poll, the HTTP timeout it needs)."""
        wait = max(0.0, min(30.0, self.deadline - time.monotonic()))
        return {"timeout": f"{wait:.3f}"}, max(http_timeout, wait + 10.0)

    def over(self, view: dict[str, Any]) -> bool:
        return time.monotonic() >= self.deadline or view.get("status") in (
            "SUCCEEDED", "FAILED", "CANCELLED")


class RemoteHandle:
    """A workflow started through a Client: ``.id``, ``.created``, ``.result()``."""

    def __init__(self, client: Client, id: str, created: bool = True) -> None:
        self.client = client
        self.id = id
        self.created = created

    def __repr__(self) -> str:
        return f"RemoteHandle({self.id!r})"

    def get(self) -> dict[str, Any]:
        """The workflow's `edge show --json` object."""
        return self.client.get(self.id)

    def status(self) -> str:
        """The workflow's status now."""
        return str(self.get()["status"])

    def result(self, timeout: float | None = None) -> Any:
        """The output once SUCCEEDED; polls with backoff (50 ms .. 1 s). None waits forever."""
        poll = ResultPoll(self.id, timeout)
        path = "/v1/workflows/" + self.client._id(self.id)
        while True:
            view: dict[str, Any] | None = None
            try:
                view = self.client.request(
                    "GET", path, query=steps_query(0, 1),
                    timeout=poll.http_timeout(self.client.timeout))[1]
            except (NotReady, Unreachable) as exc:
                poll.absorb(exc)
            done, output = poll.settle(view)
            if done:
                return output
            time.sleep(poll.next_wait(view))


class Client:
    """A node's HTTP API as Python calls, from any process.

    ``Client(url="http://127.0.0.1:8080", token=None, timeout=10.0)``: ``token`` is the
    node's ``--api-token``; ``timeout`` bounds each HTTP request (seconds). Errors come
    back as edge exceptions: ``NotFound`` (unknown workflow or id), ``UsageError`` (bad
    request), ``Conflict`` (the workflow's state refuses it), ``NotReady`` (booting,
    standing by, stopping), ``DataError``, ``Unreachable`` (no node at ``url``), all
    ``EdgeError`` with ``.code``, ``.message`` and ``.hint``. ``RemoteHandle.result``
    raises ``WorkflowFailed``, ``WorkflowCancelled`` or ``TimeoutError``.
    """

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None,
                 timeout: float = 10.0, *, token_file: str | Path | None = None) -> None:
        self.url, _, host = node_url(url)
        self.token = api_token(token, token_file)
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = []
        if _is_loopback(host):
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # ---- transport -------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *,
                query: dict[str, Any] | None = None,
                accept: tuple[int, ...] = (200, 201),
                timeout: float | None = None) -> tuple[int, Any]:
        """One call; returns (status, parsed JSON). Raises EdgeError for anything else."""
        target, data, headers = encode_request(method, path, body, query, self.token)
        full = self.url + target
        # The scheme is checked in __init__ (http or https only).
        req = urllib.request.Request(full, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                status, raw = int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                exc.close()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Unreachable(f"cannot reach the edge node at {self.url}: {reason}",
                              _UNREACHABLE_HINT, transient=transient_failure(reason)) from None
        return status, decode_reply(status, raw, accept, self.url, f"{method} {path}")

    def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request(method, path, body, **kw)[1]

    @staticmethod
    def _id(id: str) -> str:
        if not isinstance(id, str) or not id:
            raise UsageError(f"invalid workflow id {id!r}", "ids are non-empty strings")
        return _quote(id, "workflow id")

    # ---- verbs -------------------------------------------------------------------

    def start(self, workflow: str, input: dict[str, Any] | builtins.list[Any] | None = None,
              id: str | None = None, tags: dict[str, str] | None = None,
              ack: str | None = None) -> RemoteHandle:
        """Start ``workflow``; ``input`` is a dict of keyword arguments or a list of
        positional ones. An existing ``id`` returns the existing workflow (``.created`` False).
        ``tags``: ``{"key": "value"}`` to search by (``list(tags=...)``).
        ``ack="replicated"`` returns only once the replica holds the start (the node's
        ``--ack`` when None)."""
        status, out = self.request("POST", "/v1/workflows",
                                   start_body(workflow, input, id, tags, ack))
        return RemoteHandle(self, str(out["id"]), created=status == 201)

    def start_many(self, workflow: str,
                   inputs: Sequence[dict[str, Any] | builtins.list[Any] | None],
                   ids: Sequence[str] | None = None, tags: dict[str, str] | None = None,
                   ack: str | None = None) -> builtins.list[RemoteHandle]:
        """Start ``workflow`` once per input (``ids``: one each), in one transaction on the
        node: all are created or none (at most 1,000 per call). As ``start`` otherwise."""
        _, out = self.request("POST", "/v1/batches",
                              start_many_body(workflow, inputs, ids, tags, ack))
        return [RemoteHandle(self, str(w["id"]), created=bool(w["created"]))
                for w in out["workflows"]]

    def handle(self, id: str) -> RemoteHandle:
        """A RemoteHandle for an existing workflow id (no request is made)."""
        return RemoteHandle(self, id, created=False)

    def get(self, id: str) -> dict[str, Any]:
        """The `edge show --json` object of one workflow: every step, every value in full.
        The node serves the timeline a page at a time (``steps(id)``); this pages through
        it and fetches each step listed as truncated, so a long timeline costs several
        requests."""
        path = "/v1/workflows/" + self._id(id)
        view: dict[str, Any] = self._call("GET", path, query=steps_query(0))
        nxt = view.pop("next_steps_cursor", None)
        while nxt is not None:
            page = self._call("GET", path, query=steps_query(int(nxt)))
            view["steps"] += page["steps"]
            nxt = page.get("next_steps_cursor")
        view["steps"] = [s if (href := truncated_href(s)) is None else self._call("GET", href)
                         for s in view["steps"]]
        return view

    def steps(self, id: str, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page of the workflow: its row, ``limit`` steps after seq ``after`` (values
        over 64 KiB as ``{"truncated": true, "bytes", "href"}`` markers) and
        ``next_steps_cursor``, the ``after`` of the next page (None at the end)."""
        out: dict[str, Any] = self._call("GET", "/v1/workflows/" + self._id(id),
                                         query=steps_query(after, limit))
        return out

    def list(self, status: str | None = None, workflow: str | None = None, limit: int = 50,
             cursor: str | None = None, tags: dict[str, str] | None = None,
             since: str | float | None = None, until: str | float | None = None,
             prefix: str | None = None) -> dict[str, Any]:
        """``{"workflows": [...], "next_cursor"}``, newest first. ``tags``: every key=value
        must match; ``since``/``until``: created in [since, until) (ISO 8601, epoch seconds or
        an age such as ``"1h"``); ``prefix``: ids that start with it."""
        out: dict[str, Any] = self._call("GET", "/v1/workflows", query={
            "status": status, "workflow": workflow, "limit": limit, "cursor": cursor,
            "tag": [f"{k}={v}" for k, v in (tags or {}).items()] or None,
            "since": since, "until": until, "prefix": prefix})
        return out

    def set_priority(self, id: str, priority: int) -> dict[str, Any]:
        """Re-prioritise a workflow waiting for a slot of its queue (higher goes first)."""
        out: dict[str, Any] = self._call("POST", f"/v1/workflows/{self._id(id)}/priority",
                                         {"priority": priority})
        return out

    def send(self, id: str, event: str, value: Any = None,
             dedup: str | None = None, ack: str | None = None) -> dict[str, Any]:
        """Send event ``event`` with ``value`` (JSON) to workflow ``id``; a retried send
        with the same ``dedup`` key is delivered once: ``{"delivered", "duplicate"}``."""
        body = send_body(event, value, dedup, ack)
        out: dict[str, Any] = self._call(
            "POST", f"/v1/workflows/{self._id(id)}/events/{_quote(event, 'event name')}", body)
        return out

    def cancel(self, id: str) -> dict[str, Any]:
        """Cancel workflow ``id`` and its children: ``{"id", "status", "cancel"}``."""
        out: dict[str, Any] = self._call("POST", f"/v1/workflows/{self._id(id)}/cancel", {})
        return out

    def resume(self, id: str) -> dict[str, Any]:
        """Run a FAILED or CANCELLED workflow again from its checkpoints."""
        out: dict[str, Any] = self._call("POST", f"/v1/workflows/{self._id(id)}/resume", {})
        return out

    # ---- management (edge/api/manage.py) ------------------------------------------

    def get_event(self, id: str, key: str, timeout: float = 0.0, default: Any = None) -> Any:
        """The latest value workflow ``id`` published under ``key`` (``edge.set_event``),
        waiting up to ``timeout`` s for a first one; ``default`` if none by then. Waits
        longer than the server's 30 s long-poll limit are polled in rounds."""
        poll = ValueWait(key, timeout)
        path = f"/v1/workflows/{self._id(id)}/values/{_quote(key, 'key')}"
        while True:
            query, http_timeout = poll.round(self.timeout)
            out = self._call("GET", path, query=query, timeout=http_timeout)
            if out.get("published"):
                return out.get("value")
            if poll.over(self.get(id)):
                return default

    def fork(self, id: str, from_step: int, new_id: str | None = None) -> RemoteHandle:
        """A new workflow with ``id``'s input reusing its checkpoints before ``from_step``."""
        body: dict[str, Any] = {"from_step": from_step}
        if new_id is not None:
            body["id"] = new_id
        out = self._call("POST", f"/v1/workflows/{self._id(id)}/fork", body)
        return RemoteHandle(self, str(out["id"]), created=True)

    def enqueue(self, queue: str, workflow: str,
                input: dict[str, Any] | builtins.list[Any] | None = None, id: str | None = None,
                priority: int = 0, dedup: str | None = None,
                tags: dict[str, str] | None = None) -> RemoteHandle:
        """Start ``workflow`` on ``queue`` (higher ``priority`` first; a live workflow of the
        queue with the same ``dedup`` key is returned instead of a new one)."""
        body = enqueue_body(workflow, input, id, priority, dedup, tags)
        path = f"/v1/queues/{_quote(queue, 'queue name')}/workflows"
        status, out = self.request("POST", path, body)
        return RemoteHandle(self, str(out["id"]), created=status == 201)

    def queues(self, name: str | None = None, limit: int = 50) -> dict[str, Any]:
        """``{"queues": [{"name", "concurrency", "rate", "waiting", "active", ...}]}``; with
        ``name``, also that queue's live ``"workflows"``."""
        if name is None:
            out: dict[str, Any] = self._call("GET", "/v1/queues")
        else:
            out = self._call("GET", f"/v1/queues/{_quote(name, 'name')}",
                             query={"limit": limit})
        return out

    def schedules(self) -> builtins.list[dict[str, Any]]:
        """The cron schedules: name, workflow, cron, tz, paused, last and next tick."""
        return list(self._call("GET", "/v1/schedules")["schedules"])

    def pause_schedule(self, name: str) -> dict[str, Any]:
        """Pause cron schedule ``name`` (durable)."""
        out: dict[str, Any] = self._call(
            "POST", f"/v1/schedules/{_quote(name, 'name')}/pause", {})
        return out

    def resume_schedule(self, name: str) -> dict[str, Any]:
        """Resume cron schedule ``name`` (the ticks missed meanwhile are skipped)."""
        out: dict[str, Any] = self._call(
            "POST", f"/v1/schedules/{_quote(name, 'name')}/resume", {})
        return out

    def trigger_schedule(self, name: str, backfill_from: str | None = None) -> dict[str, Any]:
        """Run schedule ``name``'s workflow now, or with ``backfill_from`` (ISO 8601, epoch
        seconds or an age such as "2d") start its ticks since then (at most 1,000) under
        the scheduler's ids: ``{"schedule", "workflow", "started": [{"id", "created"}]}``."""
        out: dict[str, Any] = self._call(
            "POST", f"/v1/schedules/{_quote(name, 'name')}/trigger",
            {} if backfill_from is None else {"backfill_from": str(backfill_from)})
        return out

    def prune(self, finished_before: str | float) -> dict[str, Any]:
        """Delete workflows that finished more than ``finished_before`` ago ("7d", "12h"
        or seconds): ``{"deleted", "cutoff"}``. Long prunes get a long HTTP timeout."""
        out: dict[str, Any] = self._call("POST", "/v1/prune",
                                         {"finished_before": finished_before},
                                         timeout=max(self.timeout, 600.0))
        return out

    def get_events(self, id: str) -> dict[str, Any]:
        """Every value workflow ``id`` published: ``{key: value}``."""
        out: dict[str, Any] = self._call("GET", f"/v1/workflows/{self._id(id)}/values")
        return dict(out["values"])

    def status(self) -> dict[str, Any]:
        """The node's `edge status --json` object."""
        out: dict[str, Any] = self._call("GET", "/v1/status")
        return out

    def app(self) -> dict[str, Any]:
        """The app the node runs: its name and workflows."""
        out: dict[str, Any] = self._call("GET", "/v1/app")
        return out

    def health(self) -> dict[str, Any]:
        """``/healthz``: 200 while the process lives."""
        out: dict[str, Any] = self._call("GET", "/healthz")
        return out

    def ready(self) -> dict[str, Any]:
        """The /readyz body (``{"ready": bool, "state", ...}``); does not raise when not ready."""
        out: dict[str, Any] = self._call("GET", "/readyz", accept=(200, 503))
        return out
