"""The typed run records of chapters 03, 04 and 05 (``SharpeningRun``, ``TomoSimRun``,
``TomoLearnRun``): the verdicts they read from their numbers, and their ``metrics.json``
schema (the keys the chapter tests and the results overview read), on small made-up inputs
written through :func:`cryolab.results.save_metrics` and read back."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cryolab.pipelines import sharpening as sp
from cryolab.pipelines.tomoeval import (
    TomoLearnRun,
    WholeTomogramScore,
    dice_mean,
    gaussian_label,
    psnr_gain,
    topaz_margins,
)
from cryolab.pipelines.tomosim import TomoSimRun, spectral_summary, thon_table
from cryolab.results import load_metrics, save_metrics
from cryolab.superres import RealVerdict
from cryolab.tomo.microscope import MicroscopeConfig
from cryolab.tomo.simulate import SimulationConfig, simulate
from cryolab.tomo.specimen import SpecimenConfig
from cryolab.train import History


@pytest.fixture
def written(tmp_path, monkeypatch):
    """``written(record)``: the record as ``metrics.json`` holds it after a round trip."""
    monkeypatch.setenv("CRYOLAB_RESULTS_DIR", str(tmp_path))

    def write(record: dict) -> dict:
        save_metrics("runs", "smoke", record)
        return load_metrics("runs", "smoke")

    return write


def _history(**columns: list[float]) -> History:
    n = len(next(iter(columns.values())))
    return History([{"epoch": e, **{k: v[e] for k, v in columns.items()}} for e in range(n)])


def test_sharpening_run_verdicts_and_schema(written):
    cols = ["RSCC (masked)", "PCC", "FSC-0.5 resolution (Å)", "EMRinger"]
    table = pd.DataFrame([[0.50, 0.50, 2.0, 0.5],   # the input's FSC is lowest: not a method
                          [1.00, 1.00, np.nan, 3.0],  # the target beats all: not a method
                          [0.60, 0.70, 4.0, 1.0],
                          [0.70, 0.90, 3.5, 1.5],
                          [0.80, 0.85, 3.1, 2.0]], columns=cols,
                         index=["degraded input", "target (model map)", "B-factor sharpening",
                                "VAE", "VAE with skips"])
    hist = {"VAE": _history(loss=[2.0, 1.0], reconstruction=[1.5, 0.8], kl=[0.1, 0.2],
                            val_rscc=[0.5, 0.95]),
            "VAE with skips": _history(loss=[2.0, 1.5], reconstruction=[1.5, 1.0],
                                       kl=[0.1, 0.1], val_rscc=[0.92, 0.90])}
    agreement = {label: [{"corr_mask": 0.2, "corr_box": 0.4, "std_mean": 1.0, "error_mean": 2.0},
                         {"corr_mask": 0.4, "corr_box": 0.0, "std_mean": 3.0, "error_mean": 2.0}]
                 for label in hist}
    skips = RealVerdict("VAE with skips", {"m": True}, {"m": True}, {"m": False})
    run = sp.SharpeningRun(
        profile=sp.PROFILES["smoke"], test_entries=["1ABC"], val_entries=["2DEF"],
        resolution=3.2, bfactors={"target": 20.0, "degraded input": 80.0}, histories=hist,
        unet_source="trained here", table=table, uncertainty=sp.uncertainty_table(agreement),
        calibration=1.7, reliability={"raw": pd.DataFrame([{"nominal": 0.5, "observed": 0.3}])},
        real_table=pd.DataFrame([{"map": "m", "method": "input", "emringer": 1.0}]),
        real_verdicts={"VAE with skips": skips}, timings={"train": 1.0})
    assert run.wins("VAE with skips") == 3 and run.wins("VAE") == 1
    assert run.wins("B-factor sharpening") == 0
    assert run.last_val_rscc == {"VAE": 0.95, "VAE with skips": 0.90}
    assert run.best_val_rscc["VAE with skips"] == 0.92
    assert run.n_reaching_bar == 1  # by the last epoch, not the best
    assert run.real_verdict is skips
    shipped = RealVerdict("shipped VAE", {"m": True}, {"m": True}, {"m": True})
    with_shipped = replace(run, real_verdicts={"VAE with skips": skips, "shipped VAE": shipped})
    assert with_shipped.real_verdict is shipped

    m = written(run.to_dict())
    assert m["vae_loss_first"] == 2.0 and m["vae_loss_last"] == 1.0
    assert m["vae_kl_finite"] and m["vae_kl_last"] == 0.2
    assert m["val_rscc"]["VAE with skips"] == [0.92, 0.90]
    assert m["profile_settings"]["epochs"] == sp.PROFILES["smoke"].epochs
    assert m["rscc"]["VAE"] == 0.70 and m["table"]["VAE"]["PCC"] == 0.90
    assert m["uncertainty_agreement"]["VAE"] == pytest.approx({"corr_mask": 0.3,
                                                                "corr_box": 0.2})
    assert m["guinier_bfactor_input"] == 80.0 and m["calibration_scale"] == 1.7
    assert m["real_verdicts"]["VAE with skips"]["method"] == "VAE with skips"


def test_tomosim_run_verdicts_and_schema(written):
    config = SimulationConfig(
        specimen=SpecimenConfig(size=(240.0, 200.0, 160.0), pixel_size_a=20.0),
        microscope=MicroscopeConfig(min_angle=-60, max_angle=60, step=30), seed=1)
    sim = simulate(config)
    thon = {2.0: {"first zero, theory (1/Å)": 0.020, "first zero, measured (1/Å)": 0.021,
                  "1/sqrt(λΔz) (1/Å)": 0.02},
            5.0: {"first zero, theory (1/Å)": 0.010, "first zero, measured (1/Å)": 0.0098,
                  "1/sqrt(λΔz) (1/Å)": 0.01}}
    np.testing.assert_allclose(thon_table(thon)["relative error"], [0.05, 0.02])
    similarity = {100.0: {"vs a": 0.5, "vs b": 0.7}, 20.0: {"vs a": 0.9, "vs b": 0.8}}
    assert spectral_summary(similarity) == {"best simulated dose": 20.0, "vs a at 20": 0.9,
                                            "vs b at 20": 0.8, "vs a at 100": 0.5,
                                            "vs b at 100": 0.7}
    run = TomoSimRun(
        simulation=sim, files={"tomogram.mrc": [5, 8, 10]}, n_tilts=5, masks_match_atlas=True,
        deterministic=True, prior_correlation=pd.DataFrame({"standard": {"WBP": 0.6}}),
        thon=thon, wedge={60.0: 58.0}, dose_correlation={3.0: 0.3, 30.0: 0.6, 100.0: 0.7,
                                                         300.0: 0.65},
        step_correlation={2.0: 0.7, 8.0: 0.6}, real_spectral_similarity={"best": 20.0},
        timings={"simulate": 1.0})
    assert run.thon_max_relative_error == pytest.approx(0.05)
    assert run.dose_increase_low  # the fall beyond 100 e⁻/Å² does not count
    falls = replace(run, dose_correlation={3.0: 0.3, 30.0: 0.8, 100.0: 0.7})
    assert not falls.dose_increase_low
    assert run.shape_xyz == list(sim.tomogram.shape[::-1])
    assert run.pipeline_seconds == pytest.approx(sum(sim.timings.values()))

    m = written(run.to_dict())
    assert m["wavelength_300kV"] == pytest.approx(0.01969, abs=5e-6)
    assert m["n_tilts"] == 5 and m["overlap_free"] and m["dose_increase_low"]
    assert m["thon"]["2.0"]["first zero, measured (1/Å)"] == 0.021
    assert m["wedge_measured"] == {"60.0": 58.0}
    assert m["timings"]["simulate"] == 1.0
    assert set(m["timings"]) >= {f"pipeline_{k}" for k in sim.timings}
    assert m["class_voxels"]["background"] == sim.atlas.size


def test_tomolearn_run_verdicts_and_schema(written):
    sigma = 1.5
    denoising = pd.DataFrame({"PSNR (dB)": [10.0, 12.5, 16.0], "SSIM": [0.2, 0.4, 0.6]},
                             index=["raw tomogram", gaussian_label(sigma), "supervised U-Net"])
    assert gaussian_label(sigma) == "Gaussian σ=1.5"
    assert psnr_gain(denoising, sigma) == pytest.approx(3.5)
    dice = {"ribosome": 0.5, "gold": 0.9}
    assert dice_mean(dice) == pytest.approx(0.7)
    robustness = pd.DataFrame({"setting": ["-", "dose"], "test value": ["-", 30.0],
                               "ribosome": [0.5, 0.4], "gold": [0.9, 0.8],
                               "mean Dice": [0.7, 0.6]}, index=["as trained", "dose = 30"])
    run = TomoLearnRun(
        shape=(8, 16, 16), pixel_size=10.0, denoising=denoising, best_sigma=sigma,
        histories={"denoiser": _history(loss=[1.0, 0.5]),
                   "segmenter": _history(loss=[2.0, 1.0])},
        dice=dice, confusion=np.eye(2), picking=pd.DataFrame({"f1": {"all (class-blind)": 0.5}}),
        real_scores=[], real_fits={}, real_wall_dice={"crop": {"segmenter (shipped)": 0.4}},
        whole_scores=[WholeTomogramScore("raw", "ideal", 20.0, 0.5, 0.3, 40.0)],
        whole_shape=(8, 32, 32), whole_seed=4242, whole_seconds=2.0,
        topaz_skipped="not installed", topaz_seconds={}, missing_wedge=None,
        robustness=robustness, cli_agreement=0.99, timings={"simulate": 3.0})
    assert run.psnr_gain_over_gaussian_db == pytest.approx(3.5)
    assert run.mean_dice == pytest.approx(0.7)

    m = written(run.to_dict())
    assert m["psnr_gain_over_gaussian_db"] == pytest.approx(3.5)
    assert m["mean_dice"] == pytest.approx(0.7) and m["dice"] == dice
    assert m["losses"]["denoiser"] == {"first": 1.0, "last": 0.5}
    assert m["denoising"]["supervised U-Net"]["PSNR (dB)"] == 16.0
    assert m["confusion"] == [[1.0, 0.0], [0.0, 1.0]]
    assert m["whole_tomogram"]["scores"][0]["truth"] == "ideal"
    assert m["whole_tomogram"]["shape"] == [8, 32, 32]
    assert m["topaz"] == {"skipped": "not installed", "seconds": {}}
    assert m["missing_wedge"] is None
    assert m["robustness"]["dose = 30"] == {"ribosome": 0.4, "gold": 0.8, "mean Dice": 0.6}


def test_topaz_margins_are_over_the_better_topaz_model():
    rows = [WholeTomogramScore(m, t, psnr, 0.5, r, 30.0)
            for t in ("ideal", "noise-free with CTF")
            for m, psnr, r in (("U-Net (shipped)", 30.0, 0.8), ("Topaz unet-3d-10a", 28.0, 0.85),
                               ("Topaz unet-3d-20a", 29.5, 0.7), ("raw tomogram", 20.0, 0.3))]
    margins = topaz_margins(rows)
    assert margins == pytest.approx({("ideal", "psnr"): 0.5, ("ideal", "correlation"): -0.05,
                                     ("noise-free with CTF", "psnr"): 0.5,
                                     ("noise-free with CTF", "correlation"): -0.05})
    assert topaz_margins([r.to_dict() for r in rows]) == margins  # as metrics.json holds them
    assert topaz_margins([r for r in rows if not r.method.startswith("Topaz")]) == {}
