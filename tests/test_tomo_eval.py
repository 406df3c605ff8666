"""Real-tomogram and whole-tomogram measures of chapter 05 (cryolab.pipelines.tomoeval), on
synthetic microtubules whose axis, radius and lattice repeat are known."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import ndimage

from cryolab.errors import CryolabError
from cryolab.pipelines import tomoeval
from cryolab.pipelines.tomoeval import (
    TOPAZ_ENV,
    band_power_ratios,
    fit_microtubule,
    layer_line_strength,
    polarity,
    real_crop_scores,
    run_topaz,
    threshold_walls,
    topaz_available,
    wall_dice,
    wall_mask,
    whole_tomogram_scores,
)

PX = 10.0


def tube(shape=(40, 120, 80), axis_deg=20.0, radius_a=115.0, repeat_a=41.0, seed=0,
         noise=0.3):
    """A dark hollow tube (wall 50 Å) in the z = centre plane, at ``axis_deg`` from y towards
    x, its wall density modulated along the axis with period ``repeat_a`` (None: smooth),
    plus white noise. Returns (volume, centre, axis)."""
    centre = (np.asarray(shape) - 1) / 2
    a = np.radians(axis_deg)
    axis = np.array([0.0, np.cos(a), np.sin(a)])
    g = np.indices(shape, dtype=np.float64).reshape(3, -1).T - centre
    along = g @ axis
    r = np.linalg.norm(g - along[:, None] * axis, axis=1)
    wall = (np.abs(r - radius_a / PX) <= 2.5).astype(np.float64)
    if repeat_a:
        wall *= 1 + 0.8 * np.cos(2 * np.pi * along * PX / repeat_a)
    rng = np.random.default_rng(seed)
    vol = -wall.reshape(shape) + noise * rng.standard_normal(shape)
    return vol.astype(np.float32), centre, axis


def test_fit_finds_the_axis_and_radius_of_a_tube():
    vol, centre, axis = tube()
    fit = fit_microtubule(vol, PX)
    assert abs(np.dot(fit.axis, axis)) > 0.99
    assert fit.radius_a == pytest.approx(115.0, abs=10.0)
    # the centre lies on the true axis
    d = np.asarray(fit.centre) - centre
    assert np.linalg.norm(d - np.dot(d, axis) * axis) < 1.5
    wall = wall_mask(fit, vol.shape)
    assert vol[wall].mean() < -0.5 < vol[~wall].mean() + 0.5


def test_layer_line_shows_the_repeat_and_nothing_else():
    """A 41 Å modulation gives a strong layer line at 41 Å and none at 82 Å; the smooth tube
    none at all; Gaussian blurs fade it with their width: σ = 1 voxel keeps most of it,
    σ = 3 voxels (which passes ~1e-8 of the power at 41 Å) erases it."""
    vol, _, axis = tube()
    smooth, _, _ = tube(repeat_a=None)
    strong = layer_line_strength(vol, tuple(axis), PX, 41.0)
    assert strong > 5
    assert layer_line_strength(vol, tuple(axis), PX, 82.0) < 2
    assert layer_line_strength(smooth, tuple(axis), PX, 41.0) < 2
    kept = [(layer_line_strength(ndimage.gaussian_filter(vol, s), tuple(axis), PX, 41.0) - 1)
            / (strong - 1) for s in (1.0, 2.0, 3.0)]
    assert kept[0] > 0.5 > kept[1] > kept[2] and abs(kept[2]) < 0.02


def test_polarity_follows_the_sign_and_band_power_the_filter():
    vol, _, _ = tube()
    assert polarity(vol, vol) > 0.5
    assert polarity(-vol, vol) == pytest.approx(-polarity(vol, vol))
    same = band_power_ratios(vol, vol, PX)
    assert all(v == pytest.approx(1.0) for v in same.values())
    low = band_power_ratios(ndimage.gaussian_filter(vol, 2.0), vol, PX)
    assert low["high (< 40 Å)"] < 0.1 < 1 < low["low (> 100 Å)"]


def test_real_crop_scores_and_wall_dice():
    vol, _, _ = tube()
    fit = fit_microtubule(vol, PX)
    rows = real_crop_scores("tube", vol, {"inverted": -vol,
                                          "blurred": ndimage.gaussian_filter(vol, 1.0)}, fit)
    by = {r.method: r for r in rows}
    assert by["raw"].layer_lines_kept["4 nm"] == pytest.approx(1.0)
    assert np.isnan(by["raw"].layer_lines_kept["8 nm"])  # no 82 Å repeat in the tube
    assert by["inverted"].polarity < 0 < by["blurred"].polarity
    labels = np.where(wall_mask(fit, vol.shape), 5, 0)
    assert wall_dice(labels, fit, 5) == pytest.approx(1.0)
    assert wall_dice(np.zeros_like(labels), fit, 5) == 0.0
    # the thresholding baseline finds most of a clean tube's wall, less of a noisy one's
    clean, _, _ = tube(noise=0.05)
    noisy, _, _ = tube(noise=1.5)
    assert wall_dice(threshold_walls(clean, fit), fit, 1) > 0.8
    assert wall_dice(threshold_walls(noisy, fit), fit, 1) < wall_dice(
        threshold_walls(clean, fit), fit, 1)


def test_whole_tomogram_scores_against_two_truths():
    rng = np.random.default_rng(0)
    truth = ndimage.gaussian_filter(rng.standard_normal((16, 32, 32)), 1.5).astype(np.float32)
    other = ndimage.gaussian_filter(rng.standard_normal((16, 32, 32)), 1.5).astype(np.float32)
    noisy = truth + 0.5 * truth.std() * rng.standard_normal(truth.shape).astype(np.float32)
    rows = whole_tomogram_scores({"exact": 3 * truth + 1, "noisy": noisy},
                                 {"a": truth, "b": other}, PX)
    by = {(r.method, r.truth): r for r in rows}
    assert by["exact", "a"].correlation == pytest.approx(1.0, abs=1e-6)
    assert by["exact", "a"].psnr > 60
    assert by["noisy", "a"].psnr > by["noisy", "b"].psnr
    assert abs(by["exact", "b"].correlation) < 0.3


def test_topaz_is_skipped_with_a_reason_when_not_configured(monkeypatch):
    monkeypatch.delenv(TOPAZ_ENV, raising=False)
    assert TOPAZ_ENV in topaz_available()
    with pytest.raises(CryolabError, match=TOPAZ_ENV):
        run_topaz(np.zeros((8, 8, 8), np.float32), PX)
    monkeypatch.setenv(TOPAZ_ENV, "/no/such/python")
    assert "not a file" in topaz_available()


def test_topaz_runs_whole_tomograms_whole_and_large_ones_in_its_tiles(monkeypatch, tmp_path):
    """The command :func:`run_topaz` gives Topaz: ``--patch-size -1`` (one pass) up to
    ``TOPAZ_WHOLE_VOXELS``, Topaz's own 96-voxel tiles beyond, and what the caller asks for
    when it asks; the output MRC Topaz writes is read back."""
    import mrcfile

    python = tmp_path / "python"
    python.write_text("")
    monkeypatch.setenv(TOPAZ_ENV, str(python))
    seen = []

    def fake_topaz(cmd, **kwargs):
        seen.append(cmd)
        out = cmd[cmd.index("-o") + 1]
        os.makedirs(out, exist_ok=True)
        with mrcfile.open(cmd[-1]) as src, mrcfile.new(os.path.join(out, "t.mrc")) as dst:
            dst.set_data(-src.data)
        return tomoeval.subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(tomoeval.subprocess, "run", fake_topaz)
    vol = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    out, _ = run_topaz(vol, PX)
    np.testing.assert_array_equal(out, -vol)
    monkeypatch.setattr(tomoeval, "TOPAZ_WHOLE_VOXELS", vol.size - 1)
    run_topaz(vol, PX)
    run_topaz(vol, PX, patch=64, padding=16)
    patches = [(c[c.index("-s") + 1], c[c.index("-p") + 1]) for c in seen]
    assert patches == [("-1", "48"), ("96", "48"), ("64", "16")]


@pytest.mark.skipif(not os.environ.get(TOPAZ_ENV), reason=f"{TOPAZ_ENV} is not set: Topaz "
                    "runs only where a separate environment with topaz-em is named")
def test_topaz_denoises_a_noisy_tube():
    """Topaz's shipped 3D model, run in its own environment, lowers the noise of a noisy
    tube, in one pass and in its tiles, and the two agree."""
    vol, _, _ = tube(shape=(32, 64, 64), noise=1.0)
    clean, _, _ = tube(shape=(32, 64, 64), noise=0.0)
    whole, seconds = run_topaz(vol, PX, "unet-3d-10a")
    tiled, _ = run_topaz(vol, PX, "unet-3d-10a", patch=32, padding=16)
    for out in (whole, tiled):
        assert out.shape == vol.shape and seconds > 0
        assert np.corrcoef(out.ravel(), clean.ravel())[0, 1] > np.corrcoef(
            vol.ravel(), clean.ravel())[0, 1]
    assert np.corrcoef(whole.ravel(), tiled.ravel())[0, 1] > 0.9


def test_overview_reads_the_real_data_and_topaz_claims():
    """The results overview's chapter-05 claims on real tomograms and Topaz read the metrics
    the chapter writes: the verdicts follow the numbers, and a run without Topaz reads as not
    run rather than as a failure."""
    from cryolab.pipelines.overview import CLAIMS, _read

    real_claim, topaz_claim = [c for c in CLAIMS if c.notebook == "05_tomogram_learning"][2:]

    def crop(name, pol, kept):
        return {"crop": name, "method": "U-Net (shipped)", "polarity": pol,
                "layer_lines_kept": {"4 nm": kept, "8 nm": float("nan")}}

    def score(method, truth, p, r):
        return {"method": method, "truth": truth, "psnr": p, "correlation": r}

    truths = ("ideal", "noise-free with CTF")
    m = {"real_data": [crop("a", 0.4, 0.8), crop("b", 0.2, 0.6)],
         "topaz": {"skipped": None},
         "whole_tomogram": {"scores": [score("U-Net (shipped)", t, 30.0, 0.8) for t in truths]
                            + [score("Topaz unet-3d-10a", t, 28.0, 0.7) for t in truths]
                            + [score("Topaz unet-3d-20a", t, 29.0, 0.75) for t in truths]}}
    assert _read(real_claim, m) == (pytest.approx(0.2), True)
    assert _read(topaz_claim, m) == (pytest.approx(1.0), True)
    m["real_data"][1]["polarity"] = -0.1
    m["whole_tomogram"]["scores"][1]["correlation"] = 0.7  # loses on r vs the CTF truth
    assert _read(real_claim, m) == (pytest.approx(-0.1), False)
    assert _read(topaz_claim, m)[1] is False
    m["topaz"]["skipped"] = "not installed"
    assert _read(topaz_claim, m) == (None, None)
