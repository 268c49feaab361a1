"""docs/CLI.md documents `edge fleet serve` (a sub-command, which test_cli_docs.py's
walk over the top-level commands does not reach): every option and variable, and no
option it lacks."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from edge.cli import app

DOC = (Path(__file__).resolve().parents[2] / "docs" / "CLI.md").read_text()


def test_fleet_serve_is_documented() -> None:
    group = typer.main.get_command(app).commands["fleet"]  # type: ignore[attr-defined]
    serve = group.commands["serve"]
    m = re.search(r"^### `edge fleet serve`\n(.*?)(?=^##)", DOC + "\n##", re.S | re.M)
    assert m, "docs/CLI.md has no section for `edge fleet serve`"
    text = m.group(1)
    known = {o for p in [*serve.params, *group.params] for o in getattr(p, "opts", [])}
    for param in serve.params:
        for opt in param.opts:
            assert opt in text, opt
        if param.envvar:
            assert param.envvar in text and param.envvar in DOC.split("## Commands")[0]
    for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text)):
        assert opt in known, opt
