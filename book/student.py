"""Write the student versions of the notebooks: the exercises without their solutions.

    python book/student.py [--out _build/student] [notebooks/00_*.ipynb ...]

From the same source notebooks as the book, each student notebook drops

- every solution dropdown of the markdown (a ``{admonition}`` or ``{dropdown}`` whose title
  starts with "Solution", whatever it contains), and
- every cell tagged ``solution``,

and, in the ``## Exercises`` section, gives each numbered exercise its own markdown cell
followed by an empty code cell (tagged ``exercise``) for the answer. Everything before the
exercises is kept cell for cell, so a student notebook runs like the book's own. Instructors
keep the full notebooks in ``notebooks/``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
from build_site import toc_notebooks  # noqa: E402

SOLUTION_OPEN = re.compile(r"^\s*(:{3,}|`{3,})\{(admonition|dropdown)\}\s*Solution", re.I)
EXERCISE_ITEM = re.compile(r"^\d+\.\s", re.M)
STUB = "# Exercise {n}: your answer here\n"


def strip_solutions(markdown: str) -> str:
    """``markdown`` without its solution blocks (nested directives inside them included)."""
    kept: list[str] = []
    fence, depth = None, 0
    for line in markdown.splitlines(keepends=True):
        if fence is None:
            if match := SOLUTION_OPEN.match(line):
                fence, depth = match.group(1)[0], 1
            else:
                kept.append(line)
            continue
        stripped = line.strip()
        if re.fullmatch(rf"{re.escape(fence)}{{3,}}", stripped):
            depth -= 1
        elif re.match(rf"{re.escape(fence)}{{3,}}\{{", stripped):
            depth += 1
        if depth == 0:
            fence = None
    text = "".join(kept)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def _markdown(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source.splitlines(keepends=True)}


def _stub(n: int) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": ["exercise"]},
            "outputs": [], "source": [STUB.format(n=n)]}


def _split_exercises(markdown: str) -> list[dict]:
    """One markdown cell per numbered exercise, each followed by its stub code cell."""
    starts = [m.start() for m in EXERCISE_ITEM.finditer(markdown)]
    if not starts:
        return [_markdown(markdown)]
    cells = [_markdown(markdown[: starts[0]])] if markdown[: starts[0]].strip() else []
    for begin, end in zip(starts, [*starts[1:], len(markdown)], strict=True):
        item = markdown[begin:end].strip("\n") + "\n"
        cells += [_markdown(item), _stub(int(item.split(".", 1)[0]))]
    return cells


def _sections(markdown: str) -> list[str]:
    """The text of a markdown cell cut before each ``## `` heading."""
    starts = [0, *(m.start() for m in re.finditer(r"^## ", markdown, flags=re.M))]
    return [markdown[a:b] for a, b in zip(starts, [*starts[1:], len(markdown)], strict=True)
            if markdown[a:b].strip()]


def student_version(notebook: dict) -> dict:
    """The student notebook of a source notebook (a new dict; the source is not changed)."""
    cells, in_exercises = [], False
    for cell in notebook["cells"]:
        if "solution" in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] != "markdown":
            cells.append({k: v for k, v in cell.items() if k != "id"})
            continue
        for section in _sections(strip_solutions("".join(cell["source"]))):
            if section.startswith("## "):
                in_exercises = section[3:].split("\n", 1)[0].strip().lower() == "exercises"
            if in_exercises:
                cells += _split_exercises(section)
            else:
                cells.append({**_markdown(section), "metadata": cell.get("metadata", {})})
    # cell ids are dropped (nbformat 4.4): the split cells have no ids of their own
    return {**notebook, "cells": cells, "nbformat_minor": 4}


def write(out: Path, notebooks: list[Path]) -> list[Path]:
    """Write the student version of each notebook into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        student = student_version(json.loads(path.read_text()))
        target = out / path.name
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(student, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(target)
        written.append(target)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args()
    notebooks = args.notebooks or [ROOT / "notebooks" / f"{n}.ipynb" for n in toc_notebooks()]
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        print(f"student.py: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 1
    for path in write(args.out, notebooks):
        print(f"student notebook: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
