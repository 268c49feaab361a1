"""The layering promises of docs/ARCHITECTURE.md, checked by reading the imports.

Every import of every edge/ module counts (module level, function level, under
TYPE_CHECKING): no cycle at all, and no import along a forbidden arrow of the
"Forbidden arrows" section. The scanner itself is tested on
synthetic packages, so a scanner that found nothing could not pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.importscan import cycles, forbidden_arrows, graph, violations, without

ROOT = Path(__file__).resolve().parents[2]

def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_edge_package_has_no_import_cycle() -> None:
    # The last allowed one, edge.node -> edge.api.server while the API typed its node as
    # Node, went when the API was handed the verbs (edge/verbs.py) instead.
    assert cycles(graph(ROOT / "edge")) == []


def test_no_import_follows_a_forbidden_arrow_of_the_architecture_doc() -> None:
    groups, arrows = forbidden_arrows((ROOT / "docs" / "ARCHITECTURE.md").read_text())
    assert len(arrows) >= 6, arrows  # the section parsed (a typo would silence it)
    assert violations(graph(ROOT / "edge"), groups, arrows) == []


def test_only_the_store_imports_sqlite3() -> None:
    g_text = {p: p.read_text() for p in (ROOT / "edge").rglob("*.py")}
    offenders = [str(p.relative_to(ROOT)) for p, text in g_text.items()
                 if ("import sqlite3" in text or "from sqlite3" in text)
                 and (ROOT / "edge" / "store") not in p.parents]
    assert offenders == []


def test_the_scanner_finds_cycles_through_type_checking_and_function_imports(
        tmp_path: Path) -> None:
    pkg = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n",
        "pkg/c.py": "def f():\n    from .a import thing\n",
        "pkg/d.py": "import pkg.a\n",
        "pkg/sub/__init__.py": "from pkg.sub.x import y\n",
        "pkg/sub/x.py": "y = 1\n",
        "pkg/e.py": "from pkg.sub import x\n",  # an edge to pkg.sub.x, not to pkg.sub
    })
    g = graph(pkg)
    assert g["pkg.a"] == {"pkg.b"} and g["pkg.c"] == {"pkg.a"} and g["pkg.e"] == {"pkg.sub.x"}
    assert cycles(g) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert cycles(without(g, {("pkg.c", "pkg.a")})) == []


def test_the_scanner_reports_a_forbidden_arrow_through_a_group(tmp_path: Path) -> None:
    pkg = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "import json\n",
        "pkg/mid.py": "import pkg.low\n",
        "pkg/top/__init__.py": "",
        "pkg/top/x.py": "import pkg.mid\n",
        "pkg/low2.py": "def f():\n    from pkg.top import x\n",
    })
    doc = ("## Forbidden arrows\n\n- group base: pkg.low, pkg.low2\n"
           "- `base -> pkg.mid, pkg.top`\n- `pkg.mid -> pkg.top`\n\n"
           "## Next\n- `pkg.top -> pkg.mid`\n")  # another section: not a rule
    groups, arrows = forbidden_arrows(doc)
    assert arrows == [("base", "pkg.mid"), ("base", "pkg.top"), ("pkg.mid", "pkg.top")]
    assert violations(graph(pkg), groups, arrows) == [
        "pkg.low2 -> pkg.top.x (rule base -> pkg.top)"]


def test_a_rule_naming_no_module_is_reported_not_ignored(tmp_path: Path) -> None:
    pkg = write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": ""})
    out = violations(graph(pkg), {}, [("pkg.typo", "pkg.a")])
    assert out == ["rule pkg.typo -> pkg.a: 'pkg.typo' names no module"]


def test_a_doc_without_the_section_is_an_error() -> None:
    with pytest.raises(ValueError, match="Forbidden arrows"):
        forbidden_arrows("# nothing here\n")
