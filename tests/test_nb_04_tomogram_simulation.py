"""The tomogram-simulation notebook, run through papermill (smoke) and its book results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.notebook

NB = "04_tomogram_simulation"
ROOT = Path(__file__).resolve().parents[1]


def _check_physics(m: dict, thon_tolerance: float) -> None:
    assert m["wavelength_300kV"] == pytest.approx(0.01969, abs=5e-6)
    assert m["wavelength_200kV"] == pytest.approx(0.02508, abs=5e-6)
    assert m["overlap_free"] and m["masks_match_atlas"] and m["deterministic"]
    assert m["n_particles"] > 0
    # Thon rings: the measured first zero matches the CTF's, and moves in with underfocus
    assert m["thon_max_relative_error"] < thon_tolerance
    firsts = [v["first zero, measured (1/Å)"] for _, v in sorted(
        m["thon"].items(), key=lambda kv: float(kv[0]))]
    assert all(a > b for a, b in zip(firsts, firsts[1:], strict=False))
    # missing wedge: the filled angle follows the tilt range
    wedge = {float(k): v for k, v in m["wedge_measured"].items()}
    for nominal, measured in wedge.items():
        assert abs(measured - nominal) <= 10
    # more dose, closer to the reference (up to 100 e-/Å²)
    assert m["dose_increase_low"]


def test_smoke(run_notebook):
    m = run_notebook(NB)
    assert m["_wall_seconds"] < 90
    _check_physics(m, thon_tolerance=0.1)
    assert set(m["files"]) >= {"tilt_series.mrc", "tomogram.mrc", "prior.mrc", "atlas.mrc",
                               "specimen.mrc"}
    assert m["n_tilts"] == 41
    steps = {float(k): v for k, v in m["step_correlation"].items()}
    assert steps[2.0] > steps[8.0]


def test_book_thresholds():
    path = ROOT / "results" / NB / "book" / "metrics.json"
    if not path.is_file():
        pytest.skip("no book run yet: papermill the notebook with -p profile book")
    m = json.loads(path.read_text())
    _check_physics(m, thon_tolerance=0.05)
    assert m["shape_xyz"] == [400, 400, 50] and m["n_tilts"] == 61
    assert m["pipeline_seconds"] < 60
    steps = {float(k): v for k, v in m["step_correlation"].items()}
    assert steps[2.0] > steps[8.0]
