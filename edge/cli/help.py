"""What `edge ... --help` shows in the value column: a placeholder or the choices, never `<str>`.

typer labels every option with its Python type (`--json <bool>`, `--durability <str>`).
``command(app)`` builds the click command of the typer app once and gives every
parameter without an explicit metavar one from the tables below: nothing for a flag,
the choices for an option that takes one of a fixed set, a placeholder (JSON, ID,
SECONDS, ...) for the rest. Only help text changes; parsing and validation do not.

Invariant: the choices listed here are the ones the code accepts (tests/unit/
test_cli_help.py compares them with edge/config.py and edge/store).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import typer
import typer.main

# Options whose value is one of a fixed set: shown as a|b|c.
CHOICES: dict[str, tuple[str, ...]] = {
    "--status": ("PENDING", "RUNNING", "SLEEPING", "WAITING", "SUCCEEDED", "FAILED",
                 "CANCELLED"),
    "--durability": ("full", "normal"),
    "--log-format": ("human", "json"),
    "--replication": ("embedded", "external"),
}

# Placeholders by option name; anything else falls back to its type below.
PLACEHOLDERS: dict[str, str] = {
    "--app": "MODULE:ATTR", "--data-dir": "DIR", "--replica": "URL", "--listen": "HOST:PORT",
    "--url": "URL", "--api-token": "TOKEN", "--input": "JSON", "--value": "JSON",
    "--id": "ID", "--dedup": "KEY", "--workflow": "NAME", "--queue": "NAME",
    "--cursor": "CURSOR", "--output": "PATH", "--timestamp": "ISO8601", "--epoch": "N",
    "--from-step": "SEQ", "--retention": "DURATION", "--finished-before": "DURATION",
    "--sidecar-socket": "PATH", "--workers": "N", "--limit": "N",
    "--backfill-from": "TIME",
}
_BY_TYPE = {str: "TEXT", int: "N", float: "SECONDS", Path: "PATH"}
# Arguments that take one of a fixed set (edge schedules ACTION).
ARG_CHOICES: dict[str, tuple[str, ...]] = {"action": ("list", "pause", "resume", "trigger")}


def _label(param: Any) -> str:
    if getattr(param, "param_type_name", "") == "argument":
        if param.name in ARG_CHOICES:
            return "|".join(ARG_CHOICES[param.name])
        return str(param.name or "ARG").upper()
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    for opt in param.opts:
        if opt in CHOICES:
            return "|".join(CHOICES[opt])
        if opt in PLACEHOLDERS:
            return PLACEHOLDERS[opt]
    desc = getattr(param, "type_descriptor", None)
    annotation = getattr(desc, "annotation", None)
    return _BY_TYPE.get(annotation, "VALUE") if isinstance(annotation, type) else "VALUE"


def _no_type(ctx: Any) -> None:
    return None


def _no_metavar(*args: Any, **kwargs: Any) -> str:
    return ""


def _label_all(cmd: Any) -> None:
    for param in cmd.params:
        if param.metavar is None:
            param.metavar = _label(param)
        if getattr(param, "param_type_name", "") == "argument":
            # typer prints an argument's type (`<str>`) beside its name (the placeholder
            # already): show nothing there. Newer typer asks display_type_rich, older
            # the type's get_metavar (a per-parameter copy: click's types are shared).
            param.display_type_rich = _no_type
            if getattr(param, "type", None) is not None:
                param.type = copy.copy(param.type)
                param.type.get_metavar = _no_metavar
    help_opt = cmd.get_help_option(typer.Context(cmd))
    if help_opt is not None:
        help_opt.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        _label_all(sub)


def command(app: typer.Typer) -> Any:
    """The click command of ``app`` with help placeholders filled in (call it to run)."""
    cmd = typer.main.get_command(app)
    _label_all(cmd)
    return cmd
