"""Build the HTML book from the executed notebooks.

    python book/build_site.py [--executed _build/executed]

Copies the book pages (``_config.yml``, ``_toc.yml``, ``book/``) and the executed notebooks into
``_build/site`` and runs ``jupyter-book build`` there with Sphinx warnings as errors, so a broken
reference or a missing figure fails the build. The site lands in ``_build/html``. Notebooks are
never executed here: ``book/execute.py`` (or the test suite) runs them with papermill first.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toc_notebooks(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Names of the notebooks the table of contents lists (``notebooks/<name>``)."""
    return re.findall(r"file:\s*notebooks/(\S+)", toc.read_text())


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
    for name in toc_notebooks():
        shutil.copy(executed / f"{name}.ipynb", site / "notebooks" / f"{name}.ipynb")
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
