"""The README's code runs as written, so it cannot rot.

- Every ```python block runs in a fresh interpreter in an empty directory;
  consecutive python blocks under one heading run as one program (the later ones
  say "continuing the code above"). The first one is run twice: the README says the
  second run prints the same result at once.
- Every ```sh block carries a marker comment just above it: `readme-test: run`
  (executed), `readme-test: run (with scripts/demo running)` (the demo is started
  first, as the reader has it in another terminal), or `readme-test: skip (REASON)`.
  The run blocks are executed in order as one bash session, in a copy of the
  repository's scripts/ and examples/, against the real `scripts/demo` (EDGE_VENV
  points it at this interpreter's environment; a line `scripts/demo`, which the
  reader runs in the first terminal, starts it in the background and waits until
  it answers). Afterwards the promises the text makes are checked: every order
  SUCCEEDED, o-4 survived the lost disk, each charge happened once.
- No user-facing file cites DESIGN.md (users do not have it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.client import Client
from tests.integration.test_cli import clean_env, free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"(?:<!-- readme-test: (?P<mark>[^\n]*?) -->\n)?^```(?P<lang>\w*)\n"
                   r"(?P<body>.*?)^```$", re.S | re.M)


def blocks() -> list[dict[str, str]]:
    out = []
    # Headings outside code: a `# comment` inside a block is not one.
    prose = FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), README)
    for m in FENCE.finditer(README):
        heading = re.findall(r"^#+ (.*)$", prose[:m.start()], re.M)
        out.append({"mark": m["mark"] or "", "lang": m["lang"], "body": m["body"],
                    "heading": heading[-1] if heading else ""})
    return out


def python_programs() -> list[str]:
    programs: list[tuple[str, str]] = []
    for b in blocks():
        if b["lang"] != "python":
            continue
        if programs and programs[-1][0] == b["heading"]:
            programs[-1] = (b["heading"], programs[-1][1] + "\n" + b["body"])
        else:
            programs.append((b["heading"], b["body"]))
    return [p for _, p in programs]


def test_every_shell_block_says_whether_it_runs() -> None:
    shell = [b for b in blocks() if b["lang"] in ("sh", "bash", "shell")]
    assert shell
    for b in shell:
        assert re.fullmatch(r"run( \(with scripts/demo running\))?|skip \(.+\)", b["mark"]), \
            f"a shell block under {b['heading']!r} has no readme-test marker"
    assert sum(b["mark"].startswith("run") for b in shell) >= 3


def test_no_user_facing_file_cites_the_design_doc() -> None:
    # What users read; docs/ARCHITECTURE.md is for people working on edge itself.
    files = [ROOT / "README.md", ROOT / "deploy" / "README.md", ROOT / "litestream.yml",
             ROOT / "Dockerfile", ROOT / "docs" / "CLI.md", ROOT / "docs" / "SEMANTICS.md",
             *(ROOT / "deploy").rglob("*.y*ml"), *(ROOT / "examples").glob("*.py")]
    for f in files:
        assert "DESIGN.md" not in f.read_text(), f"{f.relative_to(ROOT)} cites DESIGN.md"
    for link in re.findall(r"\]\(([^)#]+)", README):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def _env(**extra: str) -> dict[str, str]:
    return clean_env(PYTHONPATH=str(ROOT), **extra)


@pytest.mark.parametrize("index", range(len(python_programs())))
def test_python_blocks_run(index: int, tmp_path: Path) -> None:
    program = tmp_path / "readme_block.py"
    program.write_text(python_programs()[index])
    runs = 2 if index == 0 else 1
    outputs = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, str(program)], cwd=tmp_path, env=_env(),
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        outputs.append(res.stdout)
    if index == 0:
        assert "'approved': True" in outputs[0] and "ch_o-1:1" in outputs[0], outputs[0]
        assert outputs[1] == outputs[0]  # the second run: same result, from the database
    if "edge.Client(" in python_programs()[index]:
        assert outputs[0].splitlines()[0] == "hello ada", outputs[0]
        assert outputs[0].splitlines()[1].startswith("not_found: "), outputs[0]


DEMO_WAIT = r'''
demo_up() {  # what the reader's first terminal does: scripts/demo, then it answers
  bash scripts/demo >> demo.log 2>&1 &
  python - <<'PY'
import os, time
from edge.client import Client
from edge.errors import EdgeError
c, deadline = Client(os.environ["EDGE_URL"], timeout=2), time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        if c.ready().get("ready"):
            raise SystemExit(0)
    except EdgeError:
        pass
    time.sleep(0.1)
raise SystemExit("scripts/demo did not become ready")
PY
}
'''


def walkthrough() -> str:
    lines = ["set -eu", DEMO_WAIT]
    for b in blocks():
        if not b["mark"].startswith("run") or b["lang"] not in ("sh", "bash", "shell"):
            continue
        if "with scripts/demo running" in b["mark"]:
            lines.append("demo_up")
        for line in b["body"].splitlines():
            if re.fullmatch(r"scripts/demo(\s+#.*)?", line.strip()):
                line = "demo_up"
            lines.append(line)
    return "\n".join(lines) + "\n"


def test_shell_walkthroughs_run_and_keep_their_promises(tmp_path: Path) -> None:
    work = tmp_path / "clone"
    work.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("scripts", "examples"):
        shutil.copytree(ROOT / d, work / d, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
    venv_bin = Path(sys.executable).parent
    # `. .venv/bin/activate`: this test's environment stands in for scripts/demo's venv.
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / ".venv" / "bin" / "activate").write_text(f'export PATH="{venv_bin}:$PATH"\n')
    url = f"http://127.0.0.1:{free_port()}"
    env = _env(EDGE_VENV=str(venv_bin.parent), EDGE_LISTEN=url.removeprefix("http://"),
               EDGE_URL=url, PATH=f"{venv_bin}:{os.environ['PATH']}")
    (work / "walkthrough.sh").write_text(walkthrough())
    try:
        res = subprocess.run(["bash", "walkthrough.sh"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=300)
        log = (work / "demo.log").read_text() if (work / "demo.log").exists() else ""
        assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n--- demo.log\n{log[-3000:]}"
        client = Client(url)
        for wid in ("o-2", "o-3", "o-4"):
            view = client.get(wid)
            assert view["status"] == "SUCCEEDED", view
            assert view["output"]["status"] == "shipped"
        assert client.status()["replication"]["restored_from_epoch"] is not None
        with sqlite3.connect(work / "demo-payments.db") as db:
            keys = dict(db.execute("SELECT order_id, COUNT(*) FROM charges GROUP BY order_id"))
        assert keys.get("o-3") == 1 and keys.get("o-4") == 1, keys  # one charge each
        assert "o-4" in res.stdout  # the restored copy lists it
    finally:
        pid_file = work / "edge-demo.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
