"""edge.AsyncClient: reach a running node over HTTP from asyncio code, without blocking the loop.

    client = edge.AsyncClient("http://127.0.0.1:8080")
    handle = await client.start("fulfil", {"order_id": "o-2"}, id="o-2")
    await handle.result(timeout=10)

It mirrors ``edge.Client`` method for method (same arguments, same JSON back,
same errors); every verb is a coroutine.

Invariants:
- stdlib only: a small HTTP/1.1 exchange over ``asyncio.open_connection``, one
  connection per request (``Connection: close``: the node's server answers
  HTTP/1.0-style and closes anyway), so importing it costs nothing and it binds
  to no particular event loop (one client can serve several ``asyncio.run``s);
- the server's error object comes back as the same EdgeError subclass
  ``edge.Client`` raises (``edge.client.error_from_response``); a node that cannot
  be reached, a connect or read timeout, or a reply that is not HTTP is
  ``Unreachable`` with the same hint;
- ``AsyncRemoteHandle.result`` has the semantics of ``edge.Handle.result``
  (SUCCEEDED -> output, FAILED -> WorkflowFailed, CANCELLED -> WorkflowCancelled,
  not final in time -> TimeoutError), rides out a restarting node as it does, and
  waits with ``asyncio.sleep``;
- proxies from the environment (``http_proxy``/``https_proxy``/``no_proxy``) are
  honoured, except for loopback nodes, as ``edge.Client`` does;
- cancelling the awaiting task closes the connection (nothing is left open).
"""

from __future__ import annotations

import asyncio
import builtins
import ssl
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from edge.auth import is_loopback as _is_loopback
from edge.client import (
    _UNREACHABLE_HINT,
    ResultPoll,
    ValueWait,
    decode_reply,
    encode_request,
    transient_failure,
)
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
    NotReady,
    Unreachable,
    UsageError,
)

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a reply larger than this is not from an edge node
_MAX_HEADER_LINES = 100


class _BadReply(Exception):
    """The peer's bytes are not an HTTP/1.x response."""


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status and headers of one response (lower-case header names)."""
    line = await reader.readline()
    version, _, rest = line.decode("latin-1").strip().partition(" ")
    code = rest.partition(" ")[0]
    if not version.startswith("HTTP/1.") or not code.isdigit() or len(code) != 3:
        raise _BadReply(f"not an HTTP response: {line[:60]!r}")
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n"):
            break
        if not raw:
            raise _BadReply("the connection closed inside the headers")
        key, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise _BadReply(f"malformed header line {raw[:60]!r}")
        headers[key.strip().lower()] = value.strip()
    else:
        raise _BadReply("too many header lines")
    return int(code), headers


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status, headers = await _read_head(reader)
    if status in (204, 304) or 100 <= status < 200:
        return status, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, await _read_chunked(reader)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_RESPONSE_BYTES:
            raise _BadReply(f"bad Content-Length {length[:40]!r}")
        return status, await reader.readexactly(int(length))
    body = await reader.read(MAX_RESPONSE_BYTES + 1)
    while len(body) <= MAX_RESPONSE_BYTES:
        more = await reader.read(MAX_RESPONSE_BYTES + 1 - len(body))
        if not more:
            return status, body
        body += more
    raise _BadReply("the reply is too large")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readline()).split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise _BadReply(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        if len(body) + size > MAX_RESPONSE_BYTES:
            raise _BadReply("the reply is too large")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


class AsyncRemoteHandle:
    """A workflow started through an AsyncClient: ``.id``, ``.created``, ``await .result()``."""

    def __init__(self, client: AsyncClient, id: str, created: bool = True) -> None:
        self.client = client
        self.id = id
        self.created = created

    def __repr__(self) -> str:
        return f"AsyncRemoteHandle({self.id!r})"

    async def get(self) -> dict[str, Any]:
        return await self.client.get(self.id)

    async def status(self) -> str:
        return str((await self.get())["status"])

    async def result(self, timeout: float | None = None) -> Any:
        """The output once SUCCEEDED; polls with backoff (50 ms .. 1 s). None waits forever."""
        poll = ResultPoll(self.id, timeout)
        path = "/v1/workflows/" + self.client._id(self.id)
        while True:
            view: dict[str, Any] | None = None
            try:
                view = (await self.client.request(
                    "GET", path, query=steps_query(0, 1),
                    timeout=poll.http_timeout(self.client.timeout)))[1]
            except (NotReady, Unreachable) as exc:
                poll.absorb(exc)
            done, output = poll.settle(view)
            if done:
                return output
            await asyncio.sleep(poll.next_wait(view))


class AsyncClient:
    """A node's HTTP API as coroutines (``edge.Client``'s twin for asyncio code)."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None,
                 timeout: float = 10.0, *, token_file: str | Path | None = None) -> None:
        self.url, parts, self._host = node_url(url)
        self.token = api_token(token, token_file)
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path  # a node behind a path prefix keeps it
        self._host_header = parts.netloc.rpartition("@")[2]
        self._proxy = self._find_proxy(parts.scheme, self._host)
        self._ssl: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    @staticmethod
    def _find_proxy(scheme: str, host: str) -> tuple[str, int] | None:
        if _is_loopback(host) or urllib.request.proxy_bypass(host):
            return None
        proxy = urllib.request.getproxies().get(scheme)
        if not proxy:
            return None
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if p.scheme != "http" or not p.hostname:
            return None  # only plain-HTTP proxies are spoken to (as urllib does)
        return p.hostname, p.port or 80

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    # ---- transport -------------------------------------------------------------

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._proxy is None:
            return await asyncio.open_connection(
                self._host, self._port, ssl=self._ssl_context() if self._https else None)
        reader, writer = await asyncio.open_connection(*self._proxy)
        if not self._https:
            return reader, writer
        try:
            target = f"{self._host}:{self._port}"
            writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            await writer.drain()
            # A CONNECT answer has no body: the tunnel starts right after its head.
            status, _ = await _read_head(reader)
            if status != 200:
                raise _BadReply(f"the proxy refused CONNECT with HTTP {status}")
            await writer.start_tls(self._ssl_context(), server_hostname=self._host)
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _exchange(self, method: str, target: str, headers: dict[str, str],
                        data: bytes | None, timeout: float) -> tuple[int, bytes]:
        async with asyncio.timeout(timeout):
            reader, writer = await self._open()
            try:
                if self._proxy is not None and not self._https:
                    target = self.url[: len(self.url) - len(self._base)] + target
                lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}",
                         "Connection: close", *(f"{k}: {v}" for k, v in headers.items()),
                         f"Content-Length: {len(data or b'')}", "", ""]
                writer.write("\r\n".join(lines).encode("latin-1") + (data or b""))
                await writer.drain()
                return await _read_response(reader)
            finally:
                writer.close()

    async def request(self, method: str, path: str, body: Any = None, *,
                      query: dict[str, Any] | None = None,
                      accept: tuple[int, ...] = (200, 201),
                      timeout: float | None = None) -> tuple[int, Any]:
        """One call; returns (status, parsed JSON). Raises EdgeError for anything else."""
        target, data, headers = encode_request(method, path, body, query, self.token)
        target = self._base + target
        try:
            status, raw = await self._exchange(method, target, headers, data,
                                               timeout or self.timeout)
        except TimeoutError:
            raise Unreachable(f"cannot reach the edge node at {self.url}: timed out",
                              _UNREACHABLE_HINT, transient=True) from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                _BadReply) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            cut = isinstance(exc, asyncio.IncompleteReadError) or transient_failure(exc)
            raise Unreachable(f"cannot reach the edge node at {self.url}: {reason}",
                              _UNREACHABLE_HINT, transient=cut) from None
        return status, decode_reply(status, raw, accept, self.url, f"{method} {path}")

    async def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return (await self.request(method, path, body, **kw))[1]

    @staticmethod
    def _id(id: str) -> str:
        if not isinstance(id, str) or not id:
            raise UsageError(f"invalid workflow id {id!r}", "ids are non-empty strings")
        return quote(id, safe="")

    # ---- verbs (edge.Client's, one for one) ----------------------------------------

    async def start(self, workflow: str,
                    input: dict[str, Any] | builtins.list[Any] | None = None,
                    id: str | None = None, tags: dict[str, str] | None = None,
                    ack: str | None = None) -> AsyncRemoteHandle:
        """Start ``workflow``; ``input`` is a dict of keyword arguments or a list of
        positional ones. An existing ``id`` returns the existing workflow (``.created`` False).
        ``tags``: ``{"key": "value"}`` to search by; ``ack="replicated"`` returns only once
        the replica holds the start (the node's ``--ack`` when None)."""
        status, out = await self.request("POST", "/v1/workflows",
                                         start_body(workflow, input, id, tags, ack))
        return AsyncRemoteHandle(self, str(out["id"]), created=status == 201)

    async def start_many(self, workflow: str,
                         inputs: Sequence[dict[str, Any] | builtins.list[Any] | None],
                         ids: Sequence[str] | None = None, tags: dict[str, str] | None = None,
                         ack: str | None = None) -> builtins.list[AsyncRemoteHandle]:
        """Start ``workflow`` once per input (``ids``: one each), in one transaction on the
        node: all are created or none (at most 1,000 per call). As ``start`` otherwise."""
        _, out = await self.request("POST", "/v1/batches",
                                    start_many_body(workflow, inputs, ids, tags, ack))
        return [AsyncRemoteHandle(self, str(w["id"]), created=bool(w["created"]))
                for w in out["workflows"]]

    def handle(self, id: str) -> AsyncRemoteHandle:
        return AsyncRemoteHandle(self, id, created=False)

    async def get(self, id: str) -> dict[str, Any]:
        """The `edge show --json` object of one workflow, every step and value in full: as
        ``edge.Client.get``, it pages through the timeline and fetches truncated steps."""
        path = "/v1/workflows/" + self._id(id)
        view: dict[str, Any] = await self._call("GET", path, query=steps_query(0))
        nxt = view.pop("next_steps_cursor", None)
        while nxt is not None:
            page = await self._call("GET", path, query=steps_query(int(nxt)))
            view["steps"] += page["steps"]
            nxt = page.get("next_steps_cursor")
        for i, step in enumerate(view["steps"]):
            href = truncated_href(step)
            if href is not None:
                view["steps"][i] = await self._call("GET", href)
        return view

    async def steps(self, id: str, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page of the workflow, as ``edge.Client.steps``."""
        out: dict[str, Any] = await self._call("GET", "/v1/workflows/" + self._id(id),
                                               query=steps_query(after, limit))
        return out

    async def list(self, status: str | None = None, workflow: str | None = None,
                   limit: int = 50, cursor: str | None = None,
                   tags: dict[str, str] | None = None, since: str | float | None = None,
                   until: str | float | None = None,
                   prefix: str | None = None) -> dict[str, Any]:
        """``{"workflows": [...], "next_cursor"}``, newest first; the filters of
        ``edge.Client.list``."""
        out: dict[str, Any] = await self._call("GET", "/v1/workflows", query={
            "status": status, "workflow": workflow, "limit": limit, "cursor": cursor,
            "tag": [f"{k}={v}" for k, v in (tags or {}).items()] or None,
            "since": since, "until": until, "prefix": prefix})
        return out

    async def set_priority(self, id: str, priority: int) -> dict[str, Any]:
        """Re-prioritise a workflow waiting for a slot of its queue (higher goes first)."""
        out: dict[str, Any] = await self._call(
            "POST", f"/v1/workflows/{self._id(id)}/priority", {"priority": priority})
        return out

    async def send(self, id: str, event: str, value: Any = None,
                   dedup: str | None = None, ack: str | None = None) -> dict[str, Any]:
        """Send event ``event`` with ``value`` to workflow ``id`` (as ``edge.Client.send``)."""
        body = send_body(event, value, dedup, ack)
        out: dict[str, Any] = await self._call(
            "POST", f"/v1/workflows/{self._id(id)}/events/{quote(event, safe='')}", body)
        return out

    async def cancel(self, id: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("POST", f"/v1/workflows/{self._id(id)}/cancel", {})
        return out

    async def resume(self, id: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("POST", f"/v1/workflows/{self._id(id)}/resume", {})
        return out

    async def get_event(self, id: str, key: str, timeout: float = 0.0,
                        default: Any = None) -> Any:
        """The latest value workflow ``id`` published under ``key`` (``edge.set_event``),
        waiting up to ``timeout`` s for a first one; ``default`` if none by then. Waits
        longer than the server's 30 s long-poll limit are polled in rounds."""
        poll = ValueWait(key, timeout)
        path = f"/v1/workflows/{self._id(id)}/values/{quote(key, safe='')}"
        while True:
            query, http_timeout = poll.round(self.timeout)
            out = await self._call("GET", path, query=query, timeout=http_timeout)
            if out.get("published"):
                return out.get("value")
            if poll.over(await self.get(id)):
                return default

    async def fork(self, id: str, from_step: int, new_id: str | None = None) -> AsyncRemoteHandle:
        """A new workflow with ``id``'s input reusing its checkpoints before ``from_step``."""
        body: dict[str, Any] = {"from_step": from_step}
        if new_id is not None:
            body["id"] = new_id
        out = await self._call("POST", f"/v1/workflows/{self._id(id)}/fork", body)
        return AsyncRemoteHandle(self, str(out["id"]), created=True)

    async def enqueue(self, queue: str, workflow: str,
                      input: dict[str, Any] | builtins.list[Any] | None = None,
                      id: str | None = None, priority: int = 0,
                      dedup: str | None = None,
                      tags: dict[str, str] | None = None) -> AsyncRemoteHandle:
        """Start ``workflow`` on ``queue`` (higher ``priority`` first; a live workflow of the
        queue with the same ``dedup`` key is returned instead of a new one)."""
        body = enqueue_body(workflow, input, id, priority, dedup, tags)
        status, out = await self.request(
            "POST", f"/v1/queues/{quote(queue, safe='')}/workflows", body)
        return AsyncRemoteHandle(self, str(out["id"]), created=status == 201)

    async def queues(self, name: str | None = None, limit: int = 50) -> dict[str, Any]:
        """``{"queues": [...]}``; with ``name``, also that queue's live ``"workflows"``."""
        if name is None:
            out: dict[str, Any] = await self._call("GET", "/v1/queues")
        else:
            out = await self._call("GET", f"/v1/queues/{quote(name, safe='')}",
                                   query={"limit": limit})
        return out

    async def schedules(self) -> builtins.list[dict[str, Any]]:
        """The cron schedules: name, workflow, cron, tz, paused, last and next tick."""
        return list((await self._call("GET", "/v1/schedules"))["schedules"])

    async def pause_schedule(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call(
            "POST", f"/v1/schedules/{quote(name, safe='')}/pause", {})
        return out

    async def resume_schedule(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call(
            "POST", f"/v1/schedules/{quote(name, safe='')}/resume", {})
        return out

    async def trigger_schedule(self, name: str,
                               backfill_from: str | None = None) -> dict[str, Any]:
        """As ``edge.Client.trigger_schedule``."""
        out: dict[str, Any] = await self._call(
            "POST", f"/v1/schedules/{quote(name, safe='')}/trigger",
            {} if backfill_from is None else {"backfill_from": str(backfill_from)})
        return out

    async def prune(self, finished_before: str | float) -> dict[str, Any]:
        """Delete workflows that finished more than ``finished_before`` ago ("7d", "12h"
        or seconds): ``{"deleted", "cutoff"}``. Long prunes get a long HTTP timeout."""
        out: dict[str, Any] = await self._call("POST", "/v1/prune",
                                               {"finished_before": finished_before},
                                               timeout=max(self.timeout, 600.0))
        return out

    async def get_events(self, id: str) -> dict[str, Any]:
        """Every value workflow ``id`` published: ``{key: value}``."""
        out: dict[str, Any] = await self._call("GET", f"/v1/workflows/{self._id(id)}/values")
        return dict(out["values"])

    async def status(self) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("GET", "/v1/status")
        return out

    async def app(self) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("GET", "/v1/app")
        return out

    async def health(self) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("GET", "/healthz")
        return out

    async def ready(self) -> dict[str, Any]:
        """The /readyz body (``{"ready": bool, "state", ...}``); does not raise when not ready."""
        out: dict[str, Any] = await self._call("GET", "/readyz", accept=(200, 503))
        return out
