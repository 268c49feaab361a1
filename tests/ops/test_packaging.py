"""The distribution a stranger installs: the wheel built from this tree carries the
right name and metadata (license, classifiers for exactly the Pythons CI tests, URLs
when there are any, the console script), py.typed and every package data file; the
image installs the pinned constraints."""

from __future__ import annotations

import email.parser
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "edge", src / "edge",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "-w", str(out), str(src)], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    (path,) = out.glob("*.whl")
    return zipfile.ZipFile(path)


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(wheel.read(name).decode())


def ci_pythons() -> list[str]:
    """The Pythons scripts/test runs: .venv's (3.11, the Dockerfile's) and OTHER_PYTHONS."""
    text = (ROOT / "scripts" / "test").read_text()
    m = re.search(r"^OTHER_PYTHONS=\(([^)]*)\)", text, re.M)
    assert m, "scripts/test has no OTHER_PYTHONS=(...)"
    base = re.search(r"FROM python:(\d+\.\d+)", (ROOT / "Dockerfile").read_text())
    assert base
    return sorted({base.group(1), *m.group(1).split()})


def test_the_name_is_ours_and_the_import_is_edge(wheel: zipfile.ZipFile) -> None:
    meta = _metadata(wheel)
    assert meta["Name"] == "edge-durable"  # `edge` on PyPI is an unrelated project
    assert Path(wheel.filename or "").name.startswith("edge_durable-")
    assert "edge/__init__.py" in wheel.namelist()
    eps = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "edge = edge.cli:main" in wheel.read(eps[0]).decode()
    # The console script's package and every module of it (the CLI is edge/cli/).
    cli = {Path(n).name for n in wheel.namelist() if n.startswith("edge/cli/")}
    assert {p.name for p in (ROOT / "edge" / "cli").glob("*.py")} <= cli, cli


def test_license_and_classifiers(wheel: zipfile.ZipFile) -> None:
    meta = _metadata(wheel)
    assert meta["License-Expression"] == "Apache-2.0"
    assert any(n.endswith("licenses/LICENSE") for n in wheel.namelist())
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    classifiers = meta.get_all("Classifier") or []
    claimed = sorted(c.rsplit(" ", 1)[1] for c in classifiers
                     if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert claimed == ci_pythons()
    assert meta["Requires-Python"] == f">={ci_pythons()[0]}"
    assert "Typing :: Typed" in classifiers
    for url in meta.get_all("Project-URL") or []:
        assert re.match(r"[^,]+, https://", url), url


def test_py_typed_and_package_data_are_inside(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "edge/py.typed" in names
    data = [p.relative_to(ROOT).as_posix() for p in (ROOT / "edge").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert "edge/py.typed" in data
    missing = [d for d in data if d not in names]
    assert not missing, f"package files missing from the wheel: {missing}"


def test_runtime_dependencies_match_pyproject(wheel: zipfile.ZipFile) -> None:
    meta = _metadata(wheel)
    from packaging.requirements import Requirement

    def norm(req: str) -> tuple[str, frozenset[str]]:
        r = Requirement(req)
        return _norm(r.name), frozenset(str(sp) for sp in r.specifier)

    requires = {norm(r) for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r}
    assert requires == {norm(r) for r in PYPROJECT["project"]["dependencies"]}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_image_installs_with_pinned_constraints() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install [^\n]*-c /src/constraints\.txt /src", docker)
    assert re.search(r"^COPY [^\n]*constraints\.txt[^\n]* /src/", docker, re.M)
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[_norm(name)] = version
    from packaging.requirements import Requirement

    for req in map(Requirement, PYPROJECT["project"]["dependencies"]):
        name = _norm(req.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert req.specifier.contains(pins[name]), \
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {req.specifier}"
