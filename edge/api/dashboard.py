"""The dashboard served at ``/``: one HTML page with a stylesheet and a script, shipped as
package data (``edge/api/static/``: linted as the files they are), no build step, no
external assets (no CDN, no web fonts).

What it shows (refreshed every 2 s with ``fetch``): counts by status, the node's
state and leadership, replication and lease health (``/v1/status``), the
workflow list with status/workflow filters, a jump to an id, and cursor paging
(``/v1/workflows``), one workflow's timeline (steps with durations, attempts,
outputs and errors, what a parked workflow waits for, its children), and the
queue and schedule pages (``/v1/queues``, ``/v1/schedules``). It acts through
the same API: cancel, resume, fork from a step, send an event, pause and resume a
schedule, each after a confirmation, with the API's answer shown; and it downloads
a workflow's JSON. The view lives in the URL fragment
(``/#status=FAILED&workflow=fulfil&id=o-1``, ``/#page=queues``), so a view can be
bookmarked or shared.

Invariants:
- the page is the same bytes for every request and holds no data: everything the
  user sees arrives as JSON through the public API and is put in the DOM with
  ``textContent`` (ids, inputs, outputs and errors are user data);
- the statuses the page knows come from ``edge.store.WORKFLOW_STATUSES`` (a JSON data
  block in the page, which the CSP does not run), never from a copy in the script;
- a strict Content-Security-Policy: ``default-src 'none'``; the one inline
  script and the one inline stylesheet are allowed by their SHA-256 hashes
  (computed here from the exact bytes served), ``connect-src 'self'`` for the
  API; no inline handlers, no ``eval``, no framing, no foreign origin;
- with an API token (``EDGE_API_TOKEN``), the page sends ``Authorization:
  Bearer`` on its API calls: open it as ``/#token=...`` (the script moves the
  token to this tab's sessionStorage and drops it from the address bar) or type
  it in the form the page shows after a 401. Actions are the API's write routes,
  so a read-only token sees them refused (the page shows the API's answer).
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from typing import TYPE_CHECKING

from edge.api.wire import Request, Response, Route
from edge.store import FINAL_STATUSES, WORKFLOW_STATUSES

if TYPE_CHECKING:
    from edge.verbs import Verbs

HTML_TYPE = "text/html; charset=utf-8"


def _asset(name: str) -> str:
    return (resources.files("edge.api") / "static" / name).read_text("utf-8")


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


CSS = _asset("dashboard.css")
JS = _asset("dashboard.js")
# "</" cannot occur in this JSON (statuses are upper-case words), so it cannot end the block.
STATUS_DATA = json.dumps({"statuses": list(WORKFLOW_STATUSES),
                          "final": [s for s in WORKFLOW_STATUSES if s in FINAL_STATUSES]})


def page() -> str:
    """The page with its stylesheet and script inline (hashed as they appear here)."""
    tiles = "".join(
        f'<button type="button" class="tile st-{s}" data-status="{s}">'
        f'<span class="n">&ndash;</span><span class="l">{s}</span></button>'
        for s in WORKFLOW_STATUSES)
    options = "".join(f'<option value="{s}">{s}</option>' for s in WORKFLOW_STATUSES)
    return (_asset("dashboard.html").replace("@@TILES@@", tiles)
            .replace("@@STATUS_OPTIONS@@", options).replace("@@STATUSES@@", STATUS_DATA)
            .replace("@@CSS@@", CSS).replace("@@JS@@", JS))


PAGE: bytes = page().encode("utf-8")

CSP = "; ".join([
    "default-src 'none'",
    f"script-src {_sha256(JS)}",
    f"style-src {_sha256(CSS)}",
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


def home(verbs: Verbs, req: Request) -> Response:
    return Response(200, PAGE, HTML_TYPE, dict(HEADERS))


ROUTES: tuple[Route, ...] = (Route("GET", (), home, op="dashboard", tag="documents",
                                    summary="The dashboard (HTML)",
                                    responses={200: HTML_TYPE}),)
