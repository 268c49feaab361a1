"""`edge ... --help` shows placeholders and choices, never typer's `<str>`/`<bool>`, and
the choices it lists are exactly what the code accepts."""

from __future__ import annotations

import dataclasses

import pytest
import typer.main

from edge.cli import app
from edge.cli.help import CHOICES
from edge.config import Settings
from edge.errors import ConfigError
from edge.store import WORKFLOW_STATUSES
from tests.conftest import run_cli

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_shows_no_python_type(name: str, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli([name, "--help"] if name else ["--help"], capsys)
    assert code == 0
    for bad in ("<str>", "<bool>", "<int>", "<float>", "<path>", "<int range>"):
        assert bad not in out, f"`edge {name} --help` shows {bad}"


def test_list_help_shows_the_statuses(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    _, out, _ = run_cli(["list", "--help"], capsys)
    assert "|".join(WORKFLOW_STATUSES) in out


def test_status_choices_are_the_stores() -> None:
    assert CHOICES["--status"] == tuple(WORKFLOW_STATUSES)


@pytest.mark.parametrize("opt,field", [("--durability", "durability"),
                                       ("--log-format", "log_format"),
                                       ("--replication", "replication")])
def test_setting_choices_are_what_settings_accept(opt: str, field: str, tmp_path) -> None:
    base = Settings(data_dir=tmp_path, sidecar_socket=str(tmp_path / "s.sock"))
    for choice in CHOICES[opt]:
        dataclasses.replace(base, **{field: choice}).validate()
    with pytest.raises(ConfigError):
        dataclasses.replace(base, **{field: "nope"}).validate()


def test_schedules_help_shows_its_actions(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.cli.help import ARG_CHOICES

    monkeypatch.setenv("COLUMNS", "200")
    _, out, _ = run_cli(["schedules", "--help"], capsys)
    assert "list|pause|resume" in out
    # the actions the command accepts are the ones shown
    for bad in ("nope",):
        code, _, err = run_cli(["schedules", bad], capsys)
        assert code == 2 and "list" in err
    assert ARG_CHOICES["action"] == ("list", "pause", "resume", "trigger")
