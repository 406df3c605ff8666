"""``make student``: the notebooks without their solutions, still runnable.

Solutions are found here independently of ``book/student.py``: every block between a line
``:::{admonition} Solution`` and its closing ``:::``, and every cell tagged ``solution``.

Running every student notebook would repeat the whole smoke run of the book (minutes of CI);
instead each student notebook is checked to hold, before its exercises, exactly the code cells
of its source notebook in the same order (those the notebook tests execute in smoke), and
exercise stubs that compile, and the primer's student notebook — the cheapest — is executed
end to end with papermill in the smoke profile.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
from build_site import toc_notebooks  # noqa: E402
from student import strip_solutions  # noqa: E402

NOTEBOOKS = toc_notebooks()
CHAPTERS = [n for n in NOTEBOOKS if not n.startswith("99")]


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    """``make student``'s command, writing into a temporary folder."""
    out = tmp_path_factory.mktemp("student")
    subprocess.run([sys.executable, str(ROOT / "book" / "student.py"), "--out", str(out)],
                   check=True, capture_output=True, text=True)
    return out


def _source(name: str) -> dict:
    return json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())


def _student(student_dir: Path, name: str) -> dict:
    return json.loads((student_dir / f"{name}.ipynb").read_text())


def _text(cell: dict) -> str:
    return "".join(cell["source"])


SOLUTION = re.compile(r"^\s*:::\{admonition\} Solution[^\n]*\n(.*?)^\s*:::\s*$", re.M | re.S)


def _solutions(nb: dict) -> tuple[list[str], str]:
    """The text of every solution (dropdown bodies and cells tagged ``solution``), and the
    rest of the notebook's text."""
    found, rest = [], []
    for cell in nb["cells"]:
        if "solution" in cell["metadata"].get("tags", []):
            found.append(_text(cell))
        elif cell["cell_type"] == "markdown":
            found += SOLUTION.findall(_text(cell))
            rest.append(SOLUTION.sub("", _text(cell)))
        else:
            rest.append(_text(cell))
    return found, "\n".join(rest)


def _exercise_count(nb: dict) -> int:
    text = "\n".join(_text(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    if "## Exercises" not in text:
        return 0
    section = text.split("## Exercises", 1)[1].split("\n## ", 1)[0]
    return len(re.findall(r"^\d+\. ", section, flags=re.M))


def test_writes_one_student_notebook_per_chapter(student_dir):
    assert sorted(p.stem for p in student_dir.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_solution_text_survives(student_dir, name):
    solutions, rest = _solutions(_source(name))
    assert len(solutions) >= 2, f"{name}: the source should have solutions to remove"
    student = json.dumps(_student(student_dir, name), ensure_ascii=False)
    assert "Solution" not in student and ":class: dropdown" not in student
    body = "\n".join(_text(c) for c in _student(student_dir, name)["cells"])
    for solution in solutions:
        for line in solution.splitlines():
            # a distinctive line: not "```python", not also in the text outside the solutions
            if len(line.strip()) >= 25 and line.strip() not in rest:
                assert line.strip() not in body, f"{name}: solution text left: {line.strip()!r}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_same_code_up_to_the_exercises_and_one_stub_per_exercise(student_dir, name):
    source, student = _source(name), _student(student_dir, name)
    code = [_text(c) for c in source["cells"]
            if c["cell_type"] == "code" and "solution" not in c["metadata"].get("tags", [])]
    stubs = [c for c in student["cells"] if "exercise" in c["metadata"].get("tags", [])]
    kept = [_text(c) for c in student["cells"] if c["cell_type"] == "code" and c not in stubs]
    assert kept == code, f"{name}: the student notebook's code differs from the book's"
    assert len(stubs) == _exercise_count(source) >= 2
    for stub in stubs:
        compile(_text(stub), f"{name} stub", "exec")
    params = [c for c in student["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1


def test_strip_solutions_keeps_text_around_nested_blocks():
    text = ("1. Question one?\n\n:::{admonition} Solution\n:class: dropdown\nAnswer.\n"
            "::::{note}\ninner\n::::\n```python\nx = 1\n```\n:::\n\n2. Question two?\n\n"
            "   :::{admonition} Solution\n   :class: dropdown\n   Indented answer.\n   :::\n")
    assert strip_solutions(text) == "1. Question one?\n\n2. Question two?\n"


@pytest.mark.notebook
def test_primer_student_notebook_runs_in_smoke(student_dir, tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(student_dir / "00_maps_and_models.ipynb"), str(out),
                               parameters={"profile": "smoke"}, cwd=str(ROOT / "notebooks"),
                               kernel_name="python3", progress_bar=False)
    executed = json.loads(out.read_text())
    stubs = [c for c in executed["cells"] if "exercise" in c["metadata"].get("tags", [])]
    assert stubs and all(c["execution_count"] for c in stubs)  # ran through to the stubs
