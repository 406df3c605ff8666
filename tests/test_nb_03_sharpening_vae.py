"""The VAE sharpening notebook: the smoke run, and the book run's thresholds when present."""

import math

import pytest

from cryolab.results import results_dir

pytestmark = pytest.mark.notebook

NB = "03_sharpening_vae"
METHODS = ("degraded input", "B-factor sharpening", "U-Net (super-resolution chapter)", "VAE",
           "VAE with skips")


def test_smoke(run_notebook):
    m = run_notebook(NB)
    assert m["_wall_seconds"] < 90
    assert m["vae_loss_last"] < m["vae_loss_first"]  # the loss falls
    assert m["vae_kl_finite"] and math.isfinite(m["vae_kl_last"]) and m["vae_kl_last"] >= 0
    assert set(METHODS) <= set(m["table"])
    assert len(m["val_rscc"]["VAE"]) == m["profile_settings"]["epochs"]
    from test_nb_02_superres_unet3d import _check_real_maps

    _check_real_maps(m, ("input", "B-factor sharpening", "VAE", "VAE with skips"))
    # the calibration scale is fitted on validation maps and widens a too-narrow spread
    assert m["calibration_scale"] > 0
    for curve in m["reliability"].values():
        assert all(0 <= p["observed"] <= 1 for p in curve)


def test_book_thresholds():
    import json

    path = results_dir(NB, "book") / "metrics.json"
    if not path.is_file():
        pytest.skip("no book run yet: run the notebook with -p profile book")
    m = json.loads(path.read_text())
    assert set(METHODS) <= set(m["table"])  # the table holds every row
    for method in METHODS:
        row = m["table"][method]
        assert all(row[k] is not None for k in ("RSCC (masked)", "PCC", "EMRinger"))
    assert m["rscc"]["VAE"] > m["rscc"]["degraded input"]
    assert m["vae_kl_finite"]
