"""Shared fixtures: the data mirror, and notebooks executed through papermill."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "_build" / "executed"


def mirror_dir() -> Path | None:
    """The real-data mirror: CRYOLAB_DATA_DIR, else ../shared/data beside the repo."""
    for candidate in (os.environ.get("CRYOLAB_DATA_DIR"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "SOURCES.tsv").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mirror() -> Path:
    """Path of the data mirror; tests that need real data skip without one."""
    path = mirror_dir()
    if path is None:
        pytest.skip("no data mirror: set CRYOLAB_DATA_DIR (e.g. ../shared/data)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _data_dir_env() -> None:
    """Point cryolab.data at the mirror when one exists and nothing else is set."""
    path = mirror_dir()
    if path is not None and "CRYOLAB_DATA_DIR" not in os.environ:
        os.environ["CRYOLAB_DATA_DIR"] = str(path)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small networks run several times faster on one torch thread than on two busy cores;
    a module asks for it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_RUNS: dict[tuple[str, str], dict] = {}


@pytest.fixture(scope="session")
def run_notebook():
    """``run_notebook(name, profile="smoke")`` executes ``notebooks/<name>.ipynb`` once per
    session with papermill (through ``book/execute.py``, which also records its run time and
    peak memory in ``_build/executed/report.json``) and returns its ``metrics.json`` with the
    wall time added as ``_wall_seconds``."""
    sys.path.insert(0, str(ROOT / "book"))
    from execute import record, run

    def run_once(name: str, profile: str = "smoke") -> dict:
        key = (name, profile)
        if key not in _RUNS:
            EXECUTED.mkdir(parents=True, exist_ok=True)
            metrics_path = ROOT / "results" / name / profile / "metrics.json"
            metrics_path.unlink(missing_ok=True)
            row = run(ROOT / "notebooks" / f"{name}.ipynb", EXECUTED, profile, timeout=600)
            record(EXECUTED, profile, row)
            if not row["ok"]:
                pytest.fail(f"notebook {name} failed:\n{row['error']}", pytrace=False)
            metrics = json.loads(metrics_path.read_text())
            metrics["_wall_seconds"] = row["seconds"]
            _RUNS[key] = metrics
        return _RUNS[key]

    return run_once
