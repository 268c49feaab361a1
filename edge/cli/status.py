"""`edge status`: the node's state, leader, counts by status and replication, asked of
the running node over HTTP or read from a data directory (--data-dir, read-only).

Invariants: thin (one Client call or one inspection, then render.py); `--json`
prints the API's object (or the file's, with ``"source": "file"``).
"""

from __future__ import annotations

from edge.cli.inspect import status_file
from edge.cli.options import (
    DEFAULT_URL,
    InspectOpt,
    JsonOpt,
    TokenFileOpt,
    TokenOpt,
    UrlOpt,
    client,
)
from edge.cli.render import echo_json, format_status


def status(
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    api_token: TokenOpt = None,
    api_token_file: TokenFileOpt = None,
    data_dir: InspectOpt = None,
) -> None:
    """Node, leader, state, counts by status, replication."""
    st = (status_file(data_dir) if data_dir is not None
          else client(url, api_token, api_token_file).status())
    if json_:
        echo_json(st)
    else:
        print(format_status(st))
