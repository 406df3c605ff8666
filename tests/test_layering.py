"""The package's layers, as drawn in CONTRIBUTING.md, checked from the source's imports.

- ``cryolab.commands`` (and ``cryolab.cli``) sit on top of the core and never import chapter
  glue (``cryolab.pipelines``);
- ``cryolab.weights.train``, the script that retrains the shipped models, composes chapters as
  the notebooks do: it sits above the pipelines, and nothing in the package imports it; so
  does the results overview (``cryolab.pipelines.overview``), which reads every chapter's
  results with that chapter's types;
- chapter pipelines never import one another (shared steps move into the core);
- the core never imports ``cryolab.pipelines``, ``cryolab.commands`` or ``cryolab.cli``;
- physics modules take arrays and structures and never fetch data: ``cryolab.data`` is not
  among their imports, direct or through other cryolab modules.

Imports are read with :mod:`ast` (module level and inside functions alike), so the test needs
no heavy dependency and a lazy import cannot hide a dependency.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cryolab"

#: Modules that simulate or transform data and must never fetch it.
PHYSICS = (
    "cryolab.afm",
    "cryolab.degrade",
    "cryolab.density",
    "cryolab.fourier",
    "cryolab.normalise",
    "cryolab.sharpen",
    "cryolab.tomo.microscope",
    "cryolab.tomo.reconstruct",
    "cryolab.tomo.specimen",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every cryolab module ``path`` imports (``from .x import y`` resolved; a name imported
    from a package counts as its submodule when one exists)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cryolab")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("cryolab"):
                continue
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES}
    return {m for m in found if m in MODULES}


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for dep in IMPORTS[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


#: Scripts that compose chapters, as the notebooks do (above the pipelines). ``cryolab train
#: CHAPTER`` is one: it trains a chapter's networks with the functions its notebook calls; the
#: results overview is another: it reads every chapter's results.
COMPOSITIONS = ("cryolab.weights.train", "cryolab.commands.train", "cryolab.pipelines.overview")


def _layer(name: str) -> str:
    if name in COMPOSITIONS:
        return "compositions"
    if name.startswith("cryolab.pipelines"):
        return "pipelines"
    if name.startswith("cryolab.commands") or name == "cryolab.cli":
        return "commands"
    return "core"


def test_the_import_reader_sees_relative_and_lazy_imports():
    assert "cryolab.tomo.microscope" in IMPORTS["cryolab.tomo.simulate"]
    assert "cryolab.data" in IMPORTS["cryolab.tomo.particles"]
    assert "cryolab.train" in IMPORTS["cryolab.apply"]  # imported inside generate_map


def test_nothing_in_the_package_imports_a_composition():
    assert not {n for n in MODULES if set(COMPOSITIONS) & IMPORTS[n]}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "commands"))
def test_commands_import_the_core_only(name):
    assert not {m for m in IMPORTS[name] if _layer(m) == "pipelines"}, (
        f"{name} imports chapter glue; move what it needs into a core module")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "pipelines"))
def test_pipelines_never_import_one_another(name):
    others = {m for m in IMPORTS[name] if _layer(m) == "pipelines" and m != "cryolab.pipelines"}
    assert not others, f"{name} imports {sorted(others)}; shared steps belong in the core"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "core"))
def test_the_core_never_imports_the_layers_above_it(name):
    above = {m for m in IMPORTS[name] if _layer(m) != "core"}
    assert not above, f"{name} imports {sorted(above)}"


@pytest.mark.parametrize("name", PHYSICS)
def test_physics_modules_never_fetch_data(name):
    assert name in MODULES
    assert "cryolab.data" not in _closure(name), (
        f"{name} reaches cryolab.data; take arrays, structures or a loader as arguments")
