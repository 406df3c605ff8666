"""Build the HTML book from the executed notebooks.

    python book/build_site.py [--executed _build/executed]

Copies the book pages (``_config.yml``, ``_toc.yml``, ``book/``) and the executed notebooks into
``_build/site`` and runs ``jupyter-book build`` there with Sphinx warnings as errors, so a broken
reference or a missing figure fails the build. The site lands in ``_build/html``. Notebooks are
never executed here: ``book/execute.py`` (or the test suite) runs them with papermill first.

The interactive 3D viewers (py3Dmol) load 3Dmol.js from a CDN by default. The site serves its
own copy instead, so that pages work offline: the script of the npm package ``3dmol`` of the
version py3Dmol asks for is fetched once with ``npm pack`` (into ``_build/npm``), copied to
``_build/html/_static/3dmol/``, and the viewers' script address is rewritten to that copy.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where the site serves 3Dmol.js, relative to the site root and to a page in notebooks/.
THREEDMOL_STATIC = "_static/3dmol/3Dmol-min.js"
THREEDMOL_FROM_PAGE = "../" + THREEDMOL_STATIC


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


def threedmol_cdn() -> tuple[str, str]:
    """The 3Dmol.js address py3Dmol uses by default and the npm version in it."""
    import py3Dmol

    url = inspect.signature(py3Dmol.view).parameters["js"].default
    match = re.search(r"3dmol@([0-9][^/]*)/", url)
    if match is None:
        raise RuntimeError(f"cannot read the 3Dmol.js version from py3Dmol's default {url!r}")
    return url, match.group(1)


def fetch_threedmol(version: str, cache: Path = ROOT / "_build" / "npm") -> Path:
    """``build/3Dmol-min.js`` of the npm package ``3dmol@<version>``, fetched with ``npm pack``
    (which checks the tarball against the registry's integrity hash) and kept in ``cache``."""
    script = cache / f"3dmol-{version}" / "3Dmol-min.js"
    if script.is_file():
        return script
    if shutil.which("npm") is None:
        raise RuntimeError("npm not found: it is needed once to fetch 3Dmol.js for the site "
                           "(install Node.js, e.g. apt-get install npm)")
    cache.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["npm", "pack", f"3dmol@{version}", "--pack-destination", str(cache)],
                          capture_output=True, text=True)
    tarball = cache / f"3dmol-{version}.tgz"
    if proc.returncode != 0 or not tarball.is_file():
        raise RuntimeError(f"npm pack 3dmol@{version} failed: {proc.stderr.strip()[-500:]}")
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("package/build/3Dmol-min.js")
        if member is None:
            raise RuntimeError(f"{tarball}: no package/build/3Dmol-min.js")
        script.parent.mkdir(parents=True, exist_ok=True)
        tmp = script.with_suffix(".tmp")
        tmp.write_bytes(member.read())
        tmp.replace(script)
    tarball.unlink()
    return script


def _serve_threedmol_locally(notebook: dict, cdn: str) -> bool:
    """Point every py3Dmol viewer of an executed notebook at the site's copy of 3Dmol.js;
    returns whether the notebook has one."""
    found = False
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            for mime, value in output.get("data", {}).items():
                text = "".join(value) if isinstance(value, list) else value
                if isinstance(text, str) and cdn in text:
                    output["data"][mime] = text.replace(cdn, THREEDMOL_FROM_PAGE)
                    found = True
    return found


def _title_index(notebook: dict) -> int:
    """Index of the cell holding the page title (the first markdown cell)."""
    return next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "markdown")


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
    cdn, version = threedmol_cdn()
    viewers = False
    for name in toc_notebooks():
        notebook = json.loads((executed / f"{name}.ipynb").read_text())
        notebook["cells"].insert(_title_index(notebook) + 1,
                                 _run_box(name, report.get(name), report.get("profile")))
        _show_only_injected_parameters(notebook)
        viewers |= _serve_threedmol_locally(notebook, cdn)
        (site / "notebooks" / f"{name}.ipynb").write_text(json.dumps(notebook))
    script = fetch_threedmol(version) if viewers else None
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
    if script is not None:
        (html / THREEDMOL_STATIC).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(script, html / THREEDMOL_STATIC)
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
