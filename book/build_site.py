"""Build the HTML book from the executed notebooks.

    python book/build_site.py [--executed _build/executed]

Copies the book pages (``_config.yml``, ``_toc.yml``, ``book/``) and the executed notebooks into
``_build/site`` and runs ``jupyter-book build`` there with Sphinx warnings as errors, so a broken
reference or a missing figure fails the build. The site lands in ``_build/html``. Notebooks are
never executed here: ``book/execute.py`` (or the test suite) runs them with papermill first.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toc_notebooks(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Names of the notebooks the table of contents lists (``notebooks/<name>``)."""
    return re.findall(r"file:\s*notebooks/(\S+)", toc.read_text())


def _report(executed: Path) -> dict:
    """Rows of ``report.json`` (written by book/execute.py) by notebook, plus the profile."""
    path = executed / "report.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text())
    return {"profile": report["profile"], **{r["notebook"]: r for r in report["notebooks"]}}


def _run_box(name: str, row: dict | None, profile: str | None) -> dict:
    """A markdown cell: how long this page took to run here, its memory, and how to run it."""
    if row:
        measured = (f"This page was executed in the `{profile}` profile in {row['seconds']:.0f} s "
                    f"on this build's machine (2 CPU cores, no GPU)")
        measured += f", with a peak memory of {row['peak_mib']} MiB." if row["peak_mib"] else "."
    else:
        measured = "This page's run time was not recorded in this build."
    paper = ROOT / "results" / name / "paper" / "metrics.json"
    gpu = "The `paper` profile has not been run on a GPU yet."
    if paper.is_file():
        wall = json.loads(paper.read_text()).get("wall_seconds")
        gpu = (f"The `paper` profile took {wall / 60:.0f} min on a GPU." if wall
               else "The `paper` profile has been run on a GPU; its results are committed.")
    text = (
        ":::{admonition} Run it yourself\n:class: tip\n"
        f"{measured} {gpu}\n\n"
        "```bash\n"
        "# profile: smoke (under 90 s), book (under 15 min on 2 cores) or paper (GPU)\n"
        f"papermill notebooks/{name}.ipynb out.ipynb -p profile book\n"
        "```\n:::"
    )
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _show_only_injected_parameters(notebook: dict) -> None:
    """Hide the stored ``profile = "book"`` cell when papermill injected the profile that ran,
    so a page never shows two different profiles."""
    tags = [c.get("metadata", {}).get("tags", []) for c in notebook["cells"]]
    if any("injected-parameters" in t for t in tags):
        for cell, cell_tags in zip(notebook["cells"], tags, strict=True):
            if "parameters" in cell_tags:
                cell.setdefault("metadata", {})["tags"] = [*cell_tags, "remove-cell"]


def build(executed: Path = ROOT / "_build" / "executed") -> Path:
    """Stage the sources and build the site; returns the path of ``index.html``.

    Raises ``RuntimeError`` with the warnings if a listed notebook has not been executed or the
    build reports a problem.
    """
    missing = [n for n in toc_notebooks() if not (executed / f"{n}.ipynb").is_file()]
    if missing:
        raise RuntimeError(f"not executed yet (run them with papermill first): {missing}")
    site, html = ROOT / "_build" / "site", ROOT / "_build" / "html"
    shutil.rmtree(site, ignore_errors=True)
    shutil.rmtree(html, ignore_errors=True)
    (site / "notebooks").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, site / name)
    shutil.copytree(ROOT / "book", site / "book", ignore=shutil.ignore_patterns("__pycache__"))
    report = _report(executed)
    for name in toc_notebooks():
        notebook = json.loads((executed / f"{name}.ipynb").read_text())
        notebook["cells"].insert(1, _run_box(name, report.get(name), report.get("profile")))
        _show_only_injected_parameters(notebook)
        (site / "notebooks" / f"{name}.ipynb").write_text(json.dumps(notebook))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(site),
         "--path-output", str(site), "-W", "--keep-going"],
        capture_output=True, text=True,
    )
    warnings = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                if "WARNING" in ln or "ERROR" in ln]
    if proc.returncode != 0 or warnings:
        raise RuntimeError("book build failed:\n" + "\n".join(warnings or [proc.stderr[-3000:]]))
    shutil.move(str(site / "_build" / "html"), str(html))
    return html / "index.html"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executed", type=Path, default=ROOT / "_build" / "executed")
    args = parser.parse_args()
    try:
        index = build(args.executed)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"site: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
