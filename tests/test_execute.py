"""book/execute.py runs notebooks several at a time, each on its own cores, and keeps one
correct report.json."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
from execute import core_shares, execute_all, longest_first, main, record, run  # noqa: E402


@pytest.mark.parametrize("jobs, cores, shares", [
    (1, [0, 1], [[0, 1]]),
    (2, [0, 1], [[0], [1]]),
    (2, [0, 1, 2, 3, 4], [[0, 1, 2], [3, 4]]),
    (3, [2, 5], [[2], [5], [2]]),
])
def test_core_shares(jobs, cores, shares) -> None:  # noqa: ANN001
    assert core_shares(jobs, cores) == shares


def test_concurrent_runs_share_the_cores_and_one_report(tmp_path) -> None:  # noqa: ANN001
    """Four fake notebooks, two at a time on cores [0] and [1]: at most two run at once, never
    two on the same core, and report.json ends with all four rows."""
    running: dict[int, str] = {}
    lock = threading.Lock()
    most = []

    def runner(nb: Path, cores: list[int]) -> dict:
        with lock:
            assert not set(cores) & set(running), "two notebooks on one core"
            running.update({c: nb.stem for c in cores})
            most.append(len(running))
        time.sleep(0.2)
        with lock:
            for c in cores:
                del running[c]
        return {"notebook": nb.stem, "ok": True, "seconds": 0.2, "peak_mib": 1, "cores": cores}

    notebooks = [Path(f"{i:02d}_nb.ipynb") for i in (3, 1, 2, 0)]
    rows = execute_all(notebooks, 2, runner, lambda r: record(tmp_path, "smoke", r, jobs=2),
                       cores=[0, 1])
    assert [r["notebook"] for r in rows] == [nb.stem for nb in notebooks]
    assert max(most) == 2
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["notebook"] for r in report["notebooks"]] == ["00_nb", "01_nb", "02_nb", "03_nb"]
    assert report["jobs"] == 2 and report["total_seconds"] == pytest.approx(0.8)
    assert not list(tmp_path.glob("*.tmp"))


def test_longest_first_from_the_last_report(tmp_path) -> None:  # noqa: ANN001
    for name, seconds in (("a", 5.0), ("b", 50.0)):
        record(tmp_path, "book", {"notebook": name, "ok": True, "seconds": seconds,
                                  "peak_mib": 1})
    order = longest_first([Path("a.ipynb"), Path("b.ipynb"), Path("new.ipynb")], tmp_path,
                          "book")
    assert [p.stem for p in order] == ["new", "b", "a"]
    # another profile's times say nothing: the given order stays
    order = longest_first([Path("a.ipynb"), Path("b.ipynb")], tmp_path, "smoke")
    assert [p.stem for p in order] == ["a", "b"]


@pytest.mark.notebook
def test_two_smoke_notebooks_and_the_overview_last(tmp_path) -> None:  # noqa: ANN001
    """Notebooks 00 and 99 in the smoke profile with two jobs: the overview (99), which reads
    the chapters' results, starts only after 00 has finished, each alone gets all the cores,
    and the report holds both with their time and peak memory."""
    names = ["00_maps_and_models", "99_results_overview"]
    status = main(["--profile", "smoke", "--out", str(tmp_path), "--jobs", "2",
                   *(str(ROOT / "notebooks" / f"{n}.ipynb") for n in reversed(names))])
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {r["notebook"]: r for r in report["notebooks"]}
    assert status == 0, [r.get("error") for r in rows.values()]
    assert sorted(rows) == names and report["jobs"] == 2
    first, last = rows[names[0]], rows[names[1]]
    assert last["started_s"] >= first["started_s"] + first["seconds"] - 0.5
    cores = len(os.sched_getaffinity(0))
    assert all(r["cores"] == cores and r["seconds"] > 0 and r["peak_mib"] > 50
               for r in rows.values())
    assert report["wall_seconds"] >= report["total_seconds"] - 1
    assert all((tmp_path / f"{n}.ipynb").is_file() for n in names)


@pytest.mark.notebook
def test_kernel_runs_on_its_cores_with_as_many_threads(tmp_path) -> None:  # noqa: ANN001
    """A notebook run on a share of one core sees that core only, and torch one thread."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell('profile = "book"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import json, os, torch\n"
            "json.dump({'cores': sorted(os.sched_getaffinity(0)),"
            " 'torch': torch.get_num_threads()}, open('probe.json', 'w'))"),
    ]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    core = max(os.sched_getaffinity(0))
    (tmp_path / "out").mkdir()
    row = run(path, tmp_path / "out", "smoke", 120, cores=[core])
    assert row["ok"], row.get("error")
    assert json.loads((tmp_path / "probe.json").read_text()) == {"cores": [core], "torch": 1}
