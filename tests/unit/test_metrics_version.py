"""``edge_info{version}``: the version comes from the distribution's own metadata, looked up
by the name pyproject.toml gives it, without scanning every installed distribution (the
scan took 50-170 ms, and every Node builds its Metrics)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from edge import metrics

ROOT = Path(__file__).resolve().parents[2]


def test_the_distribution_name_is_pyprojects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert metrics.DISTRIBUTION == project["name"]


def test_the_version_is_read_by_name_without_a_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        want = metadata.version(metrics.DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{metrics.DISTRIBUTION} is not installed under that name here (an "
                    "editable install made before the rename)")

    def scan() -> None:
        raise AssertionError("every installed distribution was scanned")

    monkeypatch.setattr(metadata, "packages_distributions", scan)
    assert metrics.version() == want


def test_an_install_under_another_name_is_still_found(monkeypatch: pytest.MonkeyPatch) -> None:
    def version_of(name: str) -> str:
        if name != "edge-x":
            raise metadata.PackageNotFoundError(name)
        return "9.9"

    monkeypatch.setattr(metrics, "DISTRIBUTION", "edge-durable-not-installed")
    monkeypatch.setattr(metadata, "packages_distributions", lambda: {"edge": ["edge-x"]})
    monkeypatch.setattr(metadata, "version", version_of)
    assert metrics.version() == "9.9"
