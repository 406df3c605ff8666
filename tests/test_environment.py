"""How the book is installed and published: environment.yml (conda) and pyproject.toml (pip)
ask for the same packages and bounds, and the Pages workflow builds the book with its data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")

ROOT = Path(__file__).resolve().parents[1]
#: pip names whose conda-forge package is called otherwise
CONDA_NAME = {"torch": "pytorch"}
#: conda-only entries: the interpreter, the installer and Node.js (npm, for the site build)
CONDA_ONLY = {"python", "pip", "nodejs"}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*?)\s*$")


def _parse(requirement: str) -> tuple[str, str]:
    """(normalised name, specifier without spaces) of one requirement."""
    match = REQUIREMENT.match(requirement.split("#")[0])
    assert match, f"unreadable requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return CONDA_NAME.get(name, name), match.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"],
                    *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return dict(_parse(r) for r in requirements)


def _environment() -> tuple[dict, dict[str, str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps: dict[str, str] = {}
    for entry in env["dependencies"]:
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        for item in items:
            if item.startswith("-e"):
                continue
            # conda's "name>=1,<2" and pip's "name>=1,<2" read alike
            name, spec = _parse(str(item))
            deps[name] = spec
    return env, deps


def test_conda_forge_alone():
    env, _ = _environment()
    assert env["channels"][0] == "conda-forge"
    assert set(env["channels"]) <= {"conda-forge", "nodefaults"}, env["channels"]


def test_environment_installs_the_package_itself():
    env, _ = _environment()
    pip = next(e["pip"] for e in env["dependencies"] if isinstance(e, dict))
    assert "-e ." in pip


def test_same_packages_and_bounds_as_pyproject():
    wanted = _pyproject()
    _, have = _environment()
    have = {k: v for k, v in have.items() if k not in CONDA_ONLY}
    assert sorted(set(wanted) - set(have)) == [], "in pyproject.toml, not in environment.yml"
    assert sorted(set(have) - set(wanted)) == [], "in environment.yml, not in pyproject.toml"
    differ = {n: (wanted[n], have[n]) for n in wanted if wanted[n] != have[n]}
    assert not differ, f"bounds differ (pyproject, environment): {differ}"


def test_parse_reads_names_extras_and_bounds():
    assert _parse("torch>=2.4") == ("pytorch", ">=2.4")
    assert _parse("jupyter-book>=1.0,<2") == ("jupyter-book", ">=1.0,<2")
    assert _parse("dask[distributed] >= 2024.1") == ("dask", ">=2024.1")
    assert _parse("py3Dmol>=2.4") == ("py3dmol", ">=2.4")


def test_pages_workflow_builds_the_book_with_its_data_and_deploys_it():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    build = workflow["jobs"]["build"]["steps"]
    commands = [step.get("run", "") for step in build]
    order = [next(i for i, c in enumerate(commands) if what in c)
             for what in ("make install", "cryolab data download --all", "make book")]
    assert order == sorted(order), "install, then download the data, then make book"
    upload = next(s for s in build if "upload-pages-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert any("deploy-pages" in s.get("uses", "") for s in deploy["steps"])
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML reads the key `on` as True
