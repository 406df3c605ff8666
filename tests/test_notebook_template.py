"""Every notebook follows the book's template (static checks on the sources in git).

The same rules, checked on the executed notebooks and in the browser, are in ``test_site.py``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
from build_site import toc_notebooks  # noqa: E402

NOTEBOOKS = toc_notebooks()
CHAPTERS = [n for n in NOTEBOOKS if not n.startswith("99")]
STUDIES = [n for n in CHAPTERS if not n.startswith("00")]
TERM = re.compile(r"\{term\}`([^`]+)`")
GLUE_REF = re.compile(r"\{glue(?::\w+)?\}`([A-Za-z0-9_]+)")
GLUE_CALL = re.compile(r"\bglue\(\s*[\"']([A-Za-z0-9_]+)[\"']")
FIGURE_NAME = re.compile(r"fig-(\d\d)-[a-z0-9-]+")


def _cells(name: str) -> list[dict]:
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    return [{**c, "text": "".join(c["source"])} for c in nb["cells"]]


def _install_cell(name: str) -> dict | None:
    """The cell that installs cryolab on a fresh runtime (Colab, Binder), if any."""
    return next((c for c in _cells(name) if 'find_spec("cryolab")' in c["text"]), None)


def _markdown(name: str) -> str:
    return "\n".join(c["text"] for c in _cells(name) if c["cell_type"] == "markdown")


def _glossary() -> set[str]:
    text = (ROOT / "book" / "glossary.md").read_text()
    body = text.split("```{glossary}", 1)[1]
    return {line.strip().lower() for line in body.splitlines() if re.match(r"^[^\s`]", line)}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_without_outputs_and_with_one_parameters_cell(name):
    code = [c for c in _cells(name) if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and 'profile = "book"' in params[0]["text"]


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_sections_and_exercises_with_hidden_solutions(name):
    text = _markdown(name)
    headings = [h.lower() for h in re.findall(r"^## (.+)$", text, flags=re.M)]
    for section in ("objectives", "prerequisites and run time", "exercises", "summary"):
        assert section in headings, f"{name}: no '## {section}' section"
    assert any(h.startswith("results") for h in headings), f"{name}: no results section"
    exercises = text.split("## Exercises", 1)[1].split("## Summary", 1)[0]
    assert exercises.count(":class: dropdown") >= 2, f"{name}: solutions not behind a toggle"


@pytest.mark.parametrize("name", CHAPTERS)
def test_glossary_terms_are_linked_and_exist(name):
    used = {t.split("<")[-1].rstrip(">").strip().lower() for t in TERM.findall(_markdown(name))}
    assert len(used) >= 3, f"{name} links only {sorted(used)} to the glossary"
    missing = used - _glossary()
    assert not missing, f"{name}: terms not in book/glossary.md: {sorted(missing)}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_glued_numbers_are_defined_by_the_notebook(name):
    cells = _cells(name)
    refs = set(GLUE_REF.findall(_markdown(name)))
    defined = {k for c in cells if c["cell_type"] == "code" for k in GLUE_CALL.findall(c["text"])}
    assert refs <= defined, f"{name}: glued but never computed: {sorted(refs - defined)}"
    if name in STUDIES:
        assert len(refs) >= 3, f"{name}: its prose quotes fewer than 3 numbers from the run"


def _figure_cells(name: str) -> list[dict]:
    return [c for c in _cells(name) if c["cell_type"] == "code" and "save_figure(" in c["text"]]


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_figure_has_a_caption_a_name_and_alt_text(name):
    figures = _figure_cells(name)
    assert figures, f"{name} saves no figure"
    for cell in figures:
        where = f"{name}: figure cell starting {cell['text'][:60]!r}"
        options = cell["metadata"].get("mystnb", {})
        caption = options.get("figure", {}).get("caption", "")
        alt = options.get("image", {}).get("alt", "")
        label = options.get("figure", {}).get("name", "")
        assert len(caption) >= 30, f"{where}: no caption"
        assert len(alt) >= 30 and alt != caption, f"{where}: no alt text of its own"
        match = FIGURE_NAME.fullmatch(label)
        assert match and match.group(1) == name[:2], f"{where}: name {label!r} not fig-{name[:2]}-…"
        # myst-nb wraps *every* display output of a captioned cell in the figure
        assert "display(" not in cell["text"] and "glue(" not in cell["text"], where
        assert cell["text"].rstrip().endswith(";"), f"{where}: must end with ';' (one output)"


def test_figure_names_are_unique_across_the_book():
    names = [c["metadata"]["mystnb"]["figure"]["name"] for n in CHAPTERS for c in _figure_cells(n)
             if "name" in c["metadata"].get("mystnb", {}).get("figure", {})]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", CHAPTERS)
def test_figures_use_the_book_style(name):
    install = _install_cell(name)
    setup = next(c["text"] for c in _cells(name)
                 if "import" in c["text"] and c["text"] != (install or {}).get("text"))
    assert re.search(r"^(viz\.)?use_style\(\)", setup, flags=re.M), f"{name}: no use_style()"
    for cell in _cells(name):
        assert "plt.style.use" not in cell["text"] and "rcParams" not in cell["text"], name


def _repository_url() -> str:
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(),
                      flags=re.M)
    assert match, "_config.yml: no repository url (the launch buttons need it)"
    return match.group(1).rstrip("/")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_cell_installs_cryolab_where_it_is_missing(name, monkeypatch):
    """The first cell installs the package from the book's repository on a fresh runtime (the
    Colab launch button), does nothing where cryolab is importable, and is not on the page."""
    first = _cells(name)[0]
    assert first["cell_type"] == "code"
    assert first["text"] == (_install_cell(name) or {}).get("text"), f"{name}: not first"
    assert "remove-cell" in first["metadata"].get("tags", [])
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(args))
    exec(compile(first["text"], name, "exec"), {})
    assert calls == [], f"{name}: installs although cryolab is importable"
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: None)
    exec(compile(first["text"], name, "exec"), {})
    assert len(calls) == 1 and calls[0][:4] == [sys.executable, "-m", "pip", "install"]
    assert calls[0][-1].endswith(f"@ git+{_repository_url()}"), calls[0]
