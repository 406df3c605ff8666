"""Notebook 06 (virtual AFM and Pix2Vox++) through papermill, and its book-profile numbers."""

import math

import pytest

from cryolab.results import load_metrics, results_dir

pytestmark = pytest.mark.notebook
NB = "06_afm_pix2vox"


def test_smoke(run_notebook):
    m = run_notebook(NB)
    assert m["_wall_seconds"] < 90
    assert m["loss_last"] < m["loss_first"]  # the network learns
    for split in ("train", "validation"):
        for value in m["iou"][split].values():
            assert 0 <= value <= 1
        for value in m["carving_iou"][split].values():
            assert 0 < value <= 1
    assert m["n_structures"] >= 5 and m["n_validation"] >= 1
    assert len(m["gap"]) == 2


def test_book_thresholds():
    if not (results_dir(NB, "book") / "metrics.json").is_file():
        pytest.skip("no book-profile run yet")
    m = load_metrics(NB, "book")
    assert m["n_structures"] >= 400
    assert m["validation_iou_5_views"] >= 0.5
    for split in ("train", "validation"):
        for views in ("3", "5", "8", "10"):
            assert not math.isnan(m["iou"][split][views])
