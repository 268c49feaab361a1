"""The CLI reference (docs/CLI.md) documents every command, option and environment
variable of the `edge` app, and names no option that does not exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from edge.cli import app

DOC = (Path(__file__).resolve().parents[2] / "docs" / "CLI.md").read_text()
GROUP = typer.main.get_command(app)
CMDS: dict[str, Any] = GROUP.commands  # type: ignore[attr-defined]
COMMANDS = sorted(CMDS)


def section(name: str) -> str:
    m = re.search(rf"^### `edge {name}`\n(.*?)(?=^##)", DOC + "\n##", re.S | re.M)
    assert m, f"docs/CLI.md has no section for `edge {name}`"
    return m.group(1)


def is_option(param: object) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def test_the_contract_commands_exist() -> None:
    assert set(COMMANDS) >= {"run", "start", "list", "show", "send", "cancel", "resume",
                             "status", "restore"}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_and_variable_is_documented(name: str) -> None:
    text = section(name)
    cmd = CMDS[name]
    for param in cmd.params:
        if is_option(param):
            for opt in param.opts:
                assert opt in text, f"`edge {name}`: {opt} is not documented"
            if param.envvar:
                envs = [param.envvar] if isinstance(param.envvar, str) else param.envvar
                for env in envs:
                    assert env in text, f"`edge {name}`: {env} is not documented"
                    assert env in DOC.split("## Commands")[0], f"{env} missing from the table"
        else:
            assert (param.name or "").upper() in text, f"`edge {name}`: argument {param.name}"


@pytest.mark.parametrize("name", COMMANDS)
def test_the_docs_name_no_option_that_does_not_exist(name: str) -> None:
    known = {opt for p in CMDS[name].params if is_option(p)
             for opt in p.opts}
    for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", section(name))):
        assert opt in known, f"`edge {name}` docs mention {opt}, which the command lacks"


def test_root_options_are_documented() -> None:
    for param in GROUP.params:
        for opt in getattr(param, "opts", []):
            if opt != "--help":
                assert opt in DOC


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_that_takes_a_token_takes_it_from_a_file_too(name: str) -> None:
    """A token on the command line shows in `ps` and shell history: every command with
    --api-token also reads --api-token-file (EDGE_API_TOKEN_FILE)."""
    opts = {opt for p in CMDS[name].params if is_option(p) for opt in p.opts}
    if "--api-token" in opts:
        assert "--api-token-file" in opts, f"`edge {name}` lacks --api-token-file"
