"""Packaging: pyproject.toml and environment.yml install the same stack, the console script resolves,
and the top-level layout DESIGN.md fixes is there."""

from __future__ import annotations

import importlib
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

#: PyPI name -> conda-forge name, where they differ (none do today).
CONDA_NAMES: dict[str, str] = {}
#: Conda-only entries of environment.yml that pyproject.toml expresses otherwise.
CONDA_ONLY = {"python", "pip"}
#: Top level as DESIGN.md ("Layout") fixes it.
LAYOUT = ["geo_monitor/", "pipelines/", "models/", "web/", "sample_data/", "environment.yml", "tests/", "docs/"]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


def _lower_bound(specifier: SpecifierSet, what: str) -> str:
    bounds = [s.version for s in specifier if s.operator == ">="]
    assert len(bounds) == 1, f"{what}: expected exactly one '>=' lower bound, got {str(specifier) or 'none'}"
    return bounds[0]


def _pip_requirements() -> dict[str, str]:
    """Runtime and dev requirements of pyproject.toml as conda name -> lower bound."""
    project = _pyproject()["project"]
    found = {}
    for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        found[CONDA_NAMES.get(name, name)] = _lower_bound(req.specifier, text)
    return found


def _conda_dependencies() -> tuple[dict[str, str], list[str]]:
    """environment.yml's conda packages as name -> lower bound, and its pip entries."""
    conda: dict[str, str] = {}
    pip: list[str] = []
    for entry in _environment()["dependencies"]:
        if isinstance(entry, dict):
            pip.extend(entry.get("pip", []))
            continue
        req = Requirement(entry)
        name = canonicalize_name(req.name)
        assert name not in conda, f"environment.yml lists {name} twice"
        conda[name] = _lower_bound(req.specifier, entry) if req.specifier else ""
    return conda, pip


def test_environment_uses_conda_forge_only() -> None:
    assert _environment()["channels"] == ["conda-forge"]


def test_same_packages_in_pyproject_and_environment() -> None:
    pip_side = _pip_requirements()
    conda_side = {k: v for k, v in _conda_dependencies()[0].items() if k not in CONDA_ONLY}
    assert sorted(set(pip_side) - set(conda_side)) == [], "in pyproject.toml but not environment.yml"
    assert sorted(set(conda_side) - set(pip_side)) == [], "in environment.yml but not pyproject.toml"


def test_same_lower_bounds_in_pyproject_and_environment() -> None:
    conda_side = _conda_dependencies()[0]
    differ = {
        name: (bound, conda_side.get(name))
        for name, bound in _pip_requirements().items()
        if conda_side.get(name) != bound
    }
    assert differ == {}, "lower bounds differ (pyproject, environment.yml)"


def test_environment_python_matches_requires_python() -> None:
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert _conda_dependencies()[0]["python"] == _lower_bound(requires, "requires-python")


def test_environment_installs_the_project_with_pip_only() -> None:
    """Conda brings every dependency; pip's only job is the editable project."""
    assert _conda_dependencies()[1] == ["-e ."]


def test_console_script_resolves_to_a_callable() -> None:
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "geo-monitor"]
    declared = _pyproject()["project"]["scripts"]["geo-monitor"]
    assert script.value == declared
    module, _, attr = declared.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert callable(script.load())


@pytest.mark.parametrize("entry", LAYOUT)
def test_top_level_layout(entry: str) -> None:
    path = ROOT / entry.rstrip("/")
    assert path.is_dir() if entry.endswith("/") else path.is_file(), f"{entry} missing at the top level"
