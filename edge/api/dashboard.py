"""The dashboard served at ``/``: one static HTML page with a little vanilla JS, no
build step, no external assets (no CDN, no web fonts).

What it shows (refreshed every 2 s with ``fetch``): counts by status, the node's
state and leadership, replication and lease health (``/v1/status``), the
workflow list with status/workflow filters and cursor paging (``/v1/workflows``),
and one workflow's timeline: steps with durations, attempts, outputs and errors,
and what a SLEEPING/WAITING/blocked workflow waits for (``/v1/workflows/{id}``).
The view lives in the URL fragment (``/#status=FAILED&workflow=fulfil&id=o-1``),
so a view can be bookmarked or shared.

Invariants:
- the page is the same bytes for every request and holds no data: everything the
  user sees arrives as JSON through the public API and is put in the DOM with
  ``textContent`` (ids, inputs, outputs and errors are user data);
- a strict Content-Security-Policy: ``default-src 'none'``; the one inline
  script and the one inline stylesheet are allowed by their SHA-256 hashes
  (computed here from the exact bytes served), ``connect-src 'self'`` for the
  API; no inline handlers, no ``eval``, no framing, no foreign origin;
- with an API token (``EDGE_API_TOKEN``), the page sends ``Authorization:
  Bearer`` on its API calls: open it as ``/#token=...`` (the script moves the
  token to this tab's sessionStorage and drops it from the address bar) or type
  it in the form the page shows after a 401. The page request itself goes
  through the server's token check like every route but /healthz, so a browser
  reaches the page only through something that adds the header (a reverse
  proxy, an SSH tunnel's local proxy, a header extension).
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from edge.api import static_dashboard
from edge.api.routes import Request, Response, Route

if TYPE_CHECKING:
    from edge.node import Node

HTML_TYPE = "text/html; charset=utf-8"


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


PAGE: bytes = static_dashboard.page().encode("utf-8")

CSP = "; ".join([
    "default-src 'none'",
    f"script-src {_sha256(static_dashboard.JS)}",
    f"style-src {_sha256(static_dashboard.CSS)}",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def home(node: Node, req: Request) -> Response:
    return Response(200, PAGE, HTML_TYPE, dict(HEADERS))


ROUTES: tuple[Route, ...] = (Route("GET", (), home),)
