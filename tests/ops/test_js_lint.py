"""eslint (pinned in tools/js, installed by scripts/system-deps) over every script the node
or the fleet page serves: the JS is a file, so a linter sees it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ESLINT = ROOT / "tools" / "js" / "node_modules" / ".bin" / "eslint"


def test_dashboard_scripts_pass_eslint() -> None:
    scripts = sorted(p for p in (ROOT / "edge").rglob("static/*.js"))
    assert scripts, "no dashboard scripts found under edge/**/static/"
    assert ESLINT.exists(), "eslint is missing: run scripts/system-deps (npm ci in tools/js)"
    out = subprocess.run([str(ESLINT), "-c", str(ROOT / "tools/js/eslint.config.mjs"),
                          "--max-warnings", "0", *map(str, scripts)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_eslint_catches_markup_injection(tmp_path: Path) -> None:
    # The rule that keeps user data out of markup must really fire.
    bad = tmp_path / "probe.js"
    bad.write_text('"use strict";\ndocument.body.innerHTML = location.hash;\n')
    out = subprocess.run([str(ESLINT), "-c", str(ROOT / "tools/js/eslint.config.mjs"),
                          str(bad)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "innerHTML" in out.stdout, out.stdout + out.stderr
