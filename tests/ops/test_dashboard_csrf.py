"""Another web site cannot drive a node: a page served from another origin (its own
http.server on another port, tests/ops/cross_site/attack.html) opened in headless
Chromium tries to cancel, start and prune through fetch (no-cors and CORS) and HTML
forms; afterwards the node's API shows nothing changed, and the node logged every one of
those POSTs as refused. The dashboard's own actions (same origin) are
tests/ops/test_dashboard_actions.py (no token) and test_dashboard.py (token).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import edge
from edge.client import Client
from edge.errors import NotFound
from tests.conftest import wait_until
from tests.integration.conftest import basic_http_node  # noqa: F401  (the node)
from tests.ops.test_dashboard import (
    WebDriver,
    browser,  # noqa: F401  (the module's browser fixture)
    until,
)

PAGES = Path(__file__).parent / "cross_site"
POSTS = 7  # the page's POSTs that reach the node (4 no-cors fetches, 3 forms)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def other_site() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                functools.partial(_Quiet, directory=str(PAGES)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_page_on_another_origin_changes_nothing(
        browser: WebDriver, basic_http_node: edge.Node, other_site: str,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    node = basic_http_node
    assert node.http is not None
    caplog.set_level(logging.DEBUG, logger="edge.http")
    client = Client(node.http.url, timeout=5)
    waiting = client.start("wait_for", ["never"], id="csrf-waiting").id
    done = client.start("greet", {"name": "x"}, id="csrf-done")
    assert done.result(timeout=10)
    wait_until(lambda: client.get(waiting)["status"] == "WAITING", what="WAITING")

    first = len(caplog.records)
    browser.get(f"{other_site}/attack.html#node={node.http.url}&wait={waiting}")
    until(browser, lambda d: d.execute_script("return window.attackDone === true"),
          "the page's attempts to settle")

    def posts(statuses: str) -> list[str]:
        return [m for r in caplog.records[first:] if r.name == "edge.http"
                and re.search(rf'"POST [^"]*" ({statuses}) ', m := r.getMessage())]

    # Every write the page sent reached the node and was refused there (none was
    # answered 2xx, none is still in flight).
    wait_until(lambda: len(posts("403|415")) >= POSTS, what=f"{POSTS} refused POSTs")
    assert not posts(r"[0-9]+(?<!403)(?<!415)"), posts(".*")
    assert client.get(waiting)["status"] == "WAITING"
    assert client.get(done.id)["status"] == "SUCCEEDED"  # not pruned
    with pytest.raises(NotFound):
        client.get("csrf-started")
    log = browser.execute_script("return window.attackLog")
    # The CORS attempts never got an answer the page could read.
    assert any(x.startswith("cors start: failed") for x in log), log
    assert any(x.startswith("cors read: failed") for x in log), log
