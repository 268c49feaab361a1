"""``edge fleet serve``: the head office's read-only page and ``/metrics``.

A refresher thread reads the fleet (``report.Fleet.read_all``) every ``refresh``
seconds; requests only ever see the last complete read. Routes: ``/`` (the page),
``/fleet.js`` and ``/fleet.css`` (package data files of edge/fleet/static/),
``GET /v1/fleet`` (the ``edge fleet --json`` object), ``/metrics``, ``/healthz``.

Invariants:
- read-only: the server has no route that writes, and the fleet it reads goes
  through ``bucket.ReadOnlyStore``;
- labels are bounded: per-site gauges carry ``site`` (and ``status``), never a
  workflow id; a site that left the bucket leaves ``/metrics`` at the next read
  (the collector renders the last read, it keeps no series of its own);
- a failed read keeps the previous one on display and is reported
  (``edge_fleet_read_errors_total``, the page's banner), never a 500 page;
- the page holds no data and puts every value in the DOM with ``textContent``;
  a strict Content-Security-Policy allows only this origin's script and style;
- with a token (``--api-token``), ``/v1/fleet`` and ``/metrics`` need ``Authorization:
  Bearer TOKEN`` (compared in constant time); the page shell, its assets and
  ``/healthz`` hold no data and stay open (probes and a first page load cannot send
  the header; the page's script sends it from ``/#token=...``).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.config import parse_listen
from edge.errors import EdgeError
from edge.fleet.report import Fleet
from edge.store.rows import WORKFLOW_STATUSES

__all__ = ["FleetServer", "run_server"]

log = logging.getLogger("edge.fleet")

_STATIC = {"/": ("fleet.html", "text/html; charset=utf-8"),
           "/fleet.js": ("fleet.js", "text/javascript; charset=utf-8"),
           "/fleet.css": ("fleet.css", "text/css; charset=utf-8")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def _asset(name: str) -> bytes:
    return resources.files("edge.fleet").joinpath("static", name).read_bytes()


class _Collector(Collector):
    def __init__(self, server: FleetServer) -> None:
        self._server = server

    def collect(self) -> Iterable[Metric]:
        report, errors, last_ok = self._server.snapshot()
        sites = report["sites"] if report else []
        wf = GaugeMetricFamily("edge_fleet_site_workflows",
                               "Workflows of a site by status, from its replica",
                               labels=["site", "status"])
        age = GaugeMetricFamily("edge_fleet_site_replica_age_seconds",
                                "Seconds since the site's replica last changed",
                                labels=["site"])
        epoch = GaugeMetricFamily("edge_fleet_site_lease_epoch",
                                  "Epoch of the site's replica lease", labels=["site"])
        failed = GaugeMetricFamily("edge_fleet_site_failed_24h",
                                   "Workflows of the site that failed in the last 24 h",
                                   labels=["site"])
        up = GaugeMetricFamily("edge_fleet_site_up",
                               "1 when the site's lease and replica were read", labels=["site"])
        expired = GaugeMetricFamily("edge_fleet_site_lease_expired",
                                    "1 when the site's lease aged out unrenewed",
                                    labels=["site"])
        for s in sites:
            name = s["site"]
            up.add_metric([name], 0.0 if s.get("error") else 1.0)
            lease = s.get("lease")
            if lease:
                epoch.add_metric([name], float(lease["epoch"]))
                expired.add_metric([name], 1.0 if lease["state"] == "expired" else 0.0)
            rep = s.get("replica")
            if rep:
                age.add_metric([name], float(rep["age_seconds"]))
            counts = s.get("workflows")
            if counts:
                for status in WORKFLOW_STATUSES:
                    wf.add_metric([name, status], float(counts.get(status, 0)))
            if s.get("failed_24h") is not None:
                failed.add_metric([name], float(s["failed_24h"]))
        n = GaugeMetricFamily("edge_fleet_sites", "Sites found under the prefix")
        n.add_metric([], float(len(sites)))
        last = GaugeMetricFamily("edge_fleet_last_read_timestamp_seconds",
                                 "Unix time of the last complete read of the bucket")
        last.add_metric([], last_ok)
        errs = CounterMetricFamily("edge_fleet_read_errors",
                                   "Reads of the bucket that failed as a whole")
        errs.add_metric([], float(errors))
        yield from (wf, age, epoch, failed, up, expired, n, last, errs)


class FleetServer:
    """The HTTP server and its refresher; ``start`` returns once the first read ran."""

    def __init__(self, fleet: Fleet, host: str, port: int, refresh: float,
                 token: str | None = None) -> None:
        self.fleet = fleet
        self.refresh = refresh
        self.token = token
        self._host = host
        self._lock = threading.Lock()
        self._report: dict[str, Any] | None = None
        self._error: dict[str, str] | None = None
        self._errors = 0
        self._last_ok = 0.0
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._httpd.server_address[1]}"

    def snapshot(self) -> tuple[dict[str, Any] | None, int, float]:
        with self._lock:
            return self._report, self._errors, self._last_ok

    def read_once(self) -> None:
        try:
            report = self.fleet.read_all()
        except EdgeError as exc:
            log.warning("fleet read failed: %s", exc.message)
            with self._lock:
                self._errors += 1
                self._error = exc.to_dict()
            return
        with self._lock:
            self._report, self._error, self._last_ok = report, None, time.time()

    def _refresher(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(self.refresh)
            self._kick.clear()
            if not self._stop.is_set():
                self.read_once()

    def start(self) -> FleetServer:
        self.read_once()
        for target, name in ((self._refresher, "edge-fleet-refresh"),
                             (self._httpd.serve_forever, "edge-fleet-http")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def fleet_json(self) -> dict[str, Any]:
        with self._lock:
            report, error, last_ok = self._report, self._error, self._last_ok
        out: dict[str, Any] = (dict(report) if report
                               else {"replica": self.fleet.root.describe(), "sites": []})
        out["refresh_seconds"] = self.refresh
        out["last_error"] = error
        out["last_ok"] = last_ok or None
        return out

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "edge-fleet"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

            def _authorised(self) -> bool:
                if server.token is None:
                    return True
                scheme, _, given = self.headers.get("Authorization", "").partition(" ")
                if scheme.lower() == "bearer" and hmac.compare_digest(
                        given.strip().encode(), server.token.encode()):
                    return True
                err = {"error": {"code": "unauthorized",
                                 "message": "this fleet view needs its token",
                                 "hint": "send Authorization: Bearer TOKEN (the page: open "
                                         "/#token=TOKEN)"}}
                self._send(401, json.dumps(err).encode(), "application/json",
                           {"WWW-Authenticate": "Bearer"})
                return False

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                path = self.path.split("?", 1)[0]
                if path in ("/v1/fleet", "/metrics") and not self._authorised():
                    return
                if path in _STATIC:
                    name, ctype = _STATIC[path]
                    self._send(200, _asset(name), ctype, _HEADERS)
                elif path == "/v1/fleet":
                    body = json.dumps(server.fleet_json(), ensure_ascii=False).encode()
                    self._send(200, body, "application/json; charset=utf-8")
                elif path == "/metrics":
                    self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b'{"ok":true}', "application/json")
                else:
                    err = {"error": {"code": "not_found", "message": f"no route {path}",
                                     "hint": "GET /, /v1/fleet or /metrics"}}
                    self._send(404, json.dumps(err).encode(), "application/json")

            def _refuse(self) -> None:
                err = {"error": {"code": "method_not_allowed",
                                 "message": f"{self.command} is not allowed: the fleet view "
                                            "is read-only", "hint": "use GET"}}
                self._send(405, json.dumps(err).encode(), "application/json", {"Allow": "GET"})

            do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

            def _send(self, code: int, body: bytes, ctype: str,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def run_server(fleet: Fleet, listen: str, refresh: float, token: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT (exit 0)."""
    import signal

    host, port = parse_listen(listen)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = FleetServer(fleet, host, port, refresh, token)
    except OSError as exc:
        raise EdgeError(f"--listen {listen}: cannot listen: {exc.strerror or exc}",
                        "pick a free port, or stop what holds this one",
                        code="listen_failed") from None
    server.start()
    log.info("fleet view of %s on %s (refresh every %g s)", fleet.root.describe(),
             server.url, refresh)
    while not stop.wait(1.0):
        pass
    server.stop()
