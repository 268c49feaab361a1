"""The node's HTTP server: stdlib http.server, JSON errors, limits, optional token.

Connections are held by edge/api/connections.py (idle ones without a thread, a bounded
worker pool for requests, the idle, head and body deadlines); this module handles one
request on one.

Invariants:
- a malformed request is a 4xx with ``{"error": {"code", "message", "hint"}}``,
  never a 500: the request target, query and body are decoded here with
  strict checks (invalid percent-encoding or UTF-8, duplicate or unknown query
  parameters, a missing/invalid/oversized Content-Length, chunked bodies, a
  non-JSON content type), and the route's models validate the fields
  (routes.dispatch, models.py);
- a body over ``max_body`` bytes is refused (413) from its Content-Length,
  before a byte of it is read;
- a connection is kept alive only when the request's framing passed edge/api/guard.py's
  strict checks and its body, if any, was read to its end: a refused or unread body
  (whatever its Content-Length said) closes it, so no byte of one request is ever
  parsed as the next (request smuggling);
- an unexpected exception is a 500 ``internal`` with the traceback in the log
  (the client gets no traceback);
- a Host the node does not serve is 421, a write from another web origin 403, a write
  without a JSON Content-Type 415 (edge/api/guard.py: DNS rebinding and CSRF), before
  the route runs;
- with a token, every request except /healthz, /readyz and the dashboard shell (GET /) needs
  ``Authorization: Bearer``
  (compared in constant time);
- the read-only token (edge/auth.py) passes that check for GET and HEAD only; any
  other method with it is 403 ``read_only_token``, whatever the route, so a new
  write route is guarded without being listed anywhere;
- the server runs before the node is ready (boot step 1), so routes cope with
  a node that has no database yet;
- per-request lines go to the ``edge.http`` logger at debug, never to stderr.
"""

from __future__ import annotations

import hmac
import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from edge.api.connections import Conn, Connections, ConnLimits, Writer
from edge.api.guard import HostRules, body_length
from edge.api.routes import (
    ROUTES,
    ApiError,
    Request,
    Response,
    dispatch,
    error_response,
    find_route,
    json_response,
)
from edge.api.spec import ApiDoc
from edge.auth import is_loopback
from edge.errors import CorruptDatabase, EdgeError

if TYPE_CHECKING:
    from edge.verbs import Verbs

log = logging.getLogger("edge.http")

MAX_BODY_BYTES = 2 * 1024 * 1024
LISTEN_BACKLOG = 1024


def _same_token(given: str, token: str) -> bool:
    # http.server decodes header bytes as latin-1: a token sent as UTF-8 bytes comes back
    # as their latin-1 reading, one sent as latin-1 as itself. Accept either, in constant time.
    raw = given.encode("latin-1", "replace")
    as_utf8 = hmac.compare_digest(raw, token.encode("utf-8"))
    as_text = hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))
    return as_utf8 or as_text


class _Disconnected(Exception):
    """The client went away (or stalled past the socket timeout) mid-request."""


class _HttpServer(HTTPServer):
    allow_reuse_address = True
    # socketserver's default backlog is 5: a burst of 400 connects lost about half of them
    # (reset or never answered). The kernel caps it at net.core.somaxconn (4096 on current
    # Linux); a queued connection costs no thread until it is accepted.
    request_queue_size = LISTEN_BACKLOG
    api: ApiServer
    conns: Connections

    def process_request(self, request: Any, client_address: Any) -> None:
        self.conns.admit(request, client_address)  # never blocks the accept loop

    def serve_conn(self, conn: Conn) -> bool:
        """Run the one request whose head ``conn`` holds; whether to keep ``conn``."""
        try:
            handler = _Handler(conn, conn.addr, self)  # type: ignore[arg-type]
        except OSError:  # reset or timed out while answering
            return False
        return not handler.close_connection

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn): skip it, it can hang.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


def _decode_segment(seg: str) -> str:
    try:
        return unquote(seg, errors="strict")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", f"path segment {seg[:80]!r} is not valid UTF-8 "
                       "after percent-decoding", "percent-encode ids as UTF-8") from None


def _parse_query(text: str, multi: frozenset[str] = frozenset()
                 ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(parameters given once, parameters in ``multi`` that may repeat: ``tag=a=1&tag=b=2``)."""
    out: dict[str, str] = {}
    many: dict[str, list[str]] = {}
    if not text:
        return out, many
    for part in text.split("&"):
        if not part:
            continue
        raw_key, _, raw_value = part.partition("=")
        key = _decode_segment(raw_key.replace("+", " "))
        value = _decode_segment(raw_value.replace("+", " "))
        if key in multi:
            many.setdefault(key, []).append(value)
            continue
        if key in out:
            raise ApiError(400, "bad_query", f"query parameter {key!r} is given twice",
                           "give each parameter once")
        out[key] = value
    return out, many


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "edge"
    sys_version = ""
    # Keep-alive: every response carries a Content-Length, and a connection whose request
    # body was not read to its end is closed (its unread bytes would be the next request).
    protocol_version = "HTTP/1.1"
    # The head and the body go out in one write (below), and TCP_NODELAY: on a kept-alive
    # connection, Nagle's algorithm would hold a second small write until the client's
    # delayed ACK (40 ms per response).
    disable_nagle_algorithm = True
    _body_done = False  # the framing was clean and the body, if any, was read to its end
    _length: int | None = None

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up do_<METHOD>: every method goes through one
        # dispatcher, so an unknown method is a JSON 405/404 instead of an HTML 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def setup(self) -> None:
        # ``request`` is the connection (connections.Conn), not a socket: its reads keep
        # the bytes past this request for the next one, and obey the phase deadlines.
        self._conn: Conn = self.request
        self.connection = self._conn.sock
        self.rfile = self._conn
        self.wfile = Writer(self._conn.sock)

    def handle(self) -> None:
        # One request; the connection then waits for the next in the selector, not here.
        self.close_connection = True
        self.handle_one_request()

    def version_string(self) -> str:
        return "edge"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        # Called by the base class for malformed request lines and headers: answer in
        # JSON, and as a 4xx (the client sent something we cannot parse).
        status = code if 400 <= code < 500 else 400
        self.close_connection = True
        self._conn.answered()
        self._write(json_response(status, {"error": {
            "code": "bad_request", "message": message or "malformed HTTP request",
            "hint": explain or "send a well-formed HTTP/1.1 request"}}))

    # ---- one request ---------------------------------------------------------

    def _handle(self) -> None:
        self._body_done = False
        self._conn.answered()
        try:
            resp = self._respond()
        except _Disconnected:
            self.close_connection = True
            return
        except EdgeError as exc:
            if isinstance(exc, CorruptDatabase):
                # The server's fault, not the client's: one line in the log, no traceback.
                log.error("%s %s: %s", self.command, self.path[:200], exc.message)
            resp = error_response(exc)
        except Exception:
            health = self.server.api.verbs.health
            if not health.ready and health.state in ("stopping", "stopped"):
                # A request racing the shutdown (its database just closed): not a bug.
                log.debug("request during shutdown failed", exc_info=True)
                resp = json_response(503, {"error": {
                    "code": "not_ready", "message": f"the node is {health.state}",
                    "hint": "retry when the node is back"}})
            else:
                log.exception("internal error serving %s %s", self.command, self.path[:200])
                resp = json_response(500, {"error": {
                    "code": "internal", "message": "internal error",
                    "hint": "see the node's log for the traceback"}})
        if not self._body_done:
            self.close_connection = True
        self._write(resp)

    def _respond(self) -> Response:
        api = self.server.api
        self._length = body_length(self.headers)
        self._body_done = not self._length
        host = self.headers.get("Host")
        api.hosts.check_host(host, self.path)
        parts = urlsplit(self.path)
        raw = parts.path.split("/")[1:] if parts.path.startswith("/") else [parts.path]
        if len(raw) > 1 and raw[-1] == "":
            raw.pop()  # tolerate one trailing slash
        segments = [] if raw == [""] else [_decode_segment(s) for s in raw]
        # /healthz and /readyz are for probes, which cannot send a secret header; GET /
        # is the dashboard's shell, which holds no data (it fetches everything with
        # the token the user gives it).
        open_route = segments in (["healthz"], ["readyz"]) or (
            segments == [] and self.command in ("GET", "HEAD"))
        access = "open"
        if api.token is not None and not open_route:
            access = self._check_token(api.token, api.read_token)
        route, params = find_route(self.command, segments)
        api.hosts.check_write(self.command, host, self.headers.get("Origin"),
                              self.headers.get("Content-Type"))
        query, multi = _parse_query(parts.query, route.multi) if route.query is not None else (
            {}, {})
        if route.query is not None:
            unknown = sorted(set(query) - route.query)
            if unknown:
                raise ApiError(400, "bad_query", f"unknown query parameter {unknown[0]!r}",
                               f"accepted: {', '.join(sorted(route.query))}")
        body = self._read_body(api.max_body) if route.body else None
        return dispatch(route, api.verbs, Request(
            self.command, params, query, body, {k.lower(): v for k, v in self.headers.items()},
            multi, access=access, doc=api.doc))

    def _check_token(self, token: str, read_token: str | None) -> str:
        """"write" or "read" (what the caller's token allows), or an ApiError."""
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and _same_token(given.strip(), token):
            return "write"
        if (read_token is not None and scheme.lower() == "bearer"
                and _same_token(given.strip(), read_token)):
            if self.command in ("GET", "HEAD"):
                return "read"
            raise ApiError(403, "read_only_token",
                           f"the read-only API token cannot {self.command} {self.path[:120]}",
                           "send the API token (not the read-only one) for writes")
        raise ApiError(401, "unauthorized", "missing or wrong API token",
                       "send Authorization: Bearer <token> (the CLI: --api-token-file or "
                       "EDGE_API_TOKEN_FILE, --api-token or EDGE_API_TOKEN)")

    def _read_body(self, limit: int) -> bytes | None:
        n = self._length
        if n is None:
            return None
        if n > limit:
            raise ApiError(413, "too_large", f"the request body is {n} bytes, over the "
                           f"{limit}-byte limit", "send large payloads by reference")
        self._conn.expect_body(self.server.api.limits.body)
        try:
            data = self.rfile.read(n)
        except OSError as exc:  # reset, or the body deadline passed
            raise _Disconnected() from exc
        finally:
            self._conn.answered()
        if len(data) < n:
            raise _Disconnected()
        self._body_done = True
        return data

    def _write(self, resp: Response) -> None:
        if getattr(self, "request_version", "") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # answer with a status line all the same
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in resp.headers.items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            # end_headers() would flush the head alone; the body joins the same buffer
            # (BaseHTTPRequestHandler's, stable since 3.3) to leave in one write.
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(resp.body)
            self.flush_headers()
        except OSError:  # the client went away; nothing to tell it
            self.close_connection = True


class ApiServer:
    """Serves a node's ``verbs`` over HTTP on ``host:port`` (port 0 picks a free one: see
    ``.port``)."""

    def __init__(self, verbs: Verbs, host: str, port: int, token: str | None = None,
                 max_body: int = MAX_BODY_BYTES, read_token: str | None = None,
                 allowed_hosts: tuple[str, ...] = (),
                 limits: ConnLimits | None = None) -> None:
        self.verbs = verbs
        self.host = host
        self.requested_port = port
        self.token = token or None
        self.read_token = (read_token or None) if self.token else None
        self.max_body = max_body
        self.hosts = HostRules(host, allowed_hosts)
        self.limits = limits or ConnLimits()
        self.doc = ApiDoc(ROUTES)  # the spec and the workflow inputs, built on first use
        self._bound_port: int | None = None
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.requested_port if self._bound_port is None else self._bound_port

    @property
    def connections(self) -> tuple[int, int]:
        """(open connections, request worker threads); (0, 0) when stopped."""
        return (0, 0) if self._server is None else self._server.conns.counts

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ApiServer:
        if self._server is not None:
            return self
        cls = _HttpServer6 if ":" in self.host else _HttpServer
        try:
            server = cls((self.host, self.requested_port), _Handler)
        except OSError as exc:
            raise EdgeError(
                f"cannot listen on {self.host}:{self.requested_port}: "
                f"{exc.strerror or exc}",
                "another process may use that port; choose another with --listen HOST:PORT",
                code="listen_failed") from None
        server.api = self
        server.conns = Connections(self.limits, server.serve_conn)
        self._server = server
        self._bound_port = int(server.server_address[1])
        # The poll interval is how long stop() waits for the serving loop to see the
        # shutdown (socketserver checks it between selects): 0.2 s made every stop of a
        # node with HTTP cost ~0.2 s; 20 idle selects a second cost nothing measurable.
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="edge-http-accept", daemon=True)
        self._thread.start()
        log.info("HTTP API on %s", self.url)
        if self.token is None and not is_loopback(self.host):
            log.warning("INSECURE: the HTTP API on %s has no token (--insecure-no-token): "
                        "anyone who can reach it can start, cancel, resume, fork and prune "
                        "workflows", self.url)
        return self

    def stop(self) -> None:
        """Stop accepting requests and close the socket. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.conns.close()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
