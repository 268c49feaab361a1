"""The dashboard served at ``/``: plain HTML and a little JS, no build step, no
external assets."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from edge.api.routes import Request, Response, Route

if TYPE_CHECKING:
    from edge.node import Node


def home(node: Node, req: Request) -> Response:
    st = node.status()
    e = html.escape
    rows = "".join(
        f'<tr><td><a href="/v1/workflows?status={e(s)}">{e(s)}</a></td><td>{n}</td></tr>'
        for s, n in st["workflows"].items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edge: {e(str(st["app"]))}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em 1em;text-align:left}}</style>
</head><body>
<h1>edge node {e(str(st["node_id"]) or "(booting)")}</h1>
<p>app <b>{e(str(st["app"]))}</b>, state <b>{e(str(st["state"]))}</b>,
leader <b>{"yes" if st["leader"] else "no"}</b></p>
<table><tr><th>status</th><th>workflows</th></tr>{rows}</table>
<p><a href="/v1/workflows">/v1/workflows</a> &middot; <a href="/v1/status">/v1/status</a>
&middot; <a href="/metrics">/metrics</a> &middot; <a href="/openapi.json">/openapi.json</a></p>
</body></html>
"""
    return Response(200, page.encode("utf-8"), "text/html; charset=utf-8")


ROUTES: tuple[Route, ...] = (Route("GET", (), home),)
