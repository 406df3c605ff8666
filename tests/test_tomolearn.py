"""Tests of the tomogram-learning glue (slabs, baselines, scores) and of
``cryolab denoise`` / ``cryolab segment``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from cryolab.apply import INPUT_CLIP, SCALINGS
from cryolab.cli import main
from cryolab.errors import ConfigError
from cryolab.fourier import central_section as central_spectrum
from cryolab.io import Volume, read_map, write_map
from cryolab.metrics import calibrate, confusion_matrix
from cryolab.nn.unet import UNet, predict_logits
from cryolab.normalise import zscore
from cryolab.pipelines.tomolearn import (
    PROFILES,
    blend_heads,
    class_weights,
    denoise_tomogram,
    gaussian_baseline,
    simulate_sample,
    tomogram_defocus,
    train_unet,
    whole_tomogram,
    with_setting,
)
from cryolab.tiles import random_slabs
from cryolab.train import Trainer, load_model, supervised_step


def test_slabs_are_aligned_windows_of_the_volumes():
    vol = np.arange(6 * 10 * 12, dtype=np.float32).reshape(6, 10, 12)
    lab = (vol.astype(np.int64) % 7)
    x, y = random_slabs([vol], [lab], 8, 3, 20, np.random.default_rng(0), flips=False)
    assert x.shape == (20, 3, 8, 8) and y.shape == (20, 8, 8) and y.dtype == np.int64
    for xi, yi in zip(x, y, strict=True):
        z, r, c = np.argwhere(vol == xi[1, 0, 0])[0]
        np.testing.assert_array_equal(xi[1], vol[z, r : r + 8, c : c + 8])
        np.testing.assert_array_equal(yi, lab[z, r : r + 8, c : c + 8])
    xf, yf = random_slabs([vol], [vol], 8, 3, 50, np.random.default_rng(1))
    assert yf.shape == (50, 1, 8, 8)
    np.testing.assert_array_equal(xf[:, 1], yf[:, 0])  # flips keep input and target aligned
    # no 90° rotations: rows of a slab always run along x (values step by 1 along x)
    assert np.all(np.abs(np.diff(xf[:, 1], axis=2)) == 1)
    xr, yr = random_slabs([vol], [vol], 8, 3, 50, np.random.default_rng(2), rotate=True)
    np.testing.assert_array_equal(xr[:, 1], yr[:, 0])
    steps = np.abs(np.diff(xr[:, 1], axis=2))[:, 0, 0]
    assert set(steps.tolist()) == {1.0, 12.0}  # rows run along x or (rotated) along y
    with pytest.raises(ConfigError, match="odd"):
        random_slabs([vol], [vol], 8, 2, 1, np.random.default_rng(0))


def test_class_weights_follow_the_frequencies():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    w = class_weights([labels], 3, power=1.0)
    np.testing.assert_allclose(w / w[0], [1, 10, 90], rtol=1e-6)
    np.testing.assert_allclose(class_weights([labels], 3, power=0.5).mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(class_weights([labels], 3, power=0.0), 1.0)


def test_calibration_and_best_gaussian():
    rng = np.random.default_rng(0)
    clean = ndimage.gaussian_filter(rng.normal(size=(16, 32, 32)), 2).astype(np.float32)
    np.testing.assert_allclose(calibrate(3 * clean - 2, clean), clean, atol=1e-4)
    noisy = clean + rng.normal(0, clean.std(), clean.shape).astype(np.float32)
    best, filtered, scores = gaussian_baseline(noisy, clean, [0.5, 1.5, 6.0])
    assert best == 1.5 and scores[1.5] > scores[0.5] and scores[1.5] > scores[6.0]
    np.testing.assert_allclose(filtered, ndimage.gaussian_filter(noisy, 1.5))


def test_confusion_matrix_rows_sum_to_one():
    truth = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 2, 0, 0])
    m = confusion_matrix(pred, truth, 3)
    np.testing.assert_allclose(m, [[0.5, 0.5, 0], [0, 1, 0], [0.5, 0, 0.5]])


def test_missing_wedge_shows_in_the_xz_spectrum():
    from cryolab.tomo.reconstruct import weighted_backprojection

    rng = np.random.default_rng(0)
    images = rng.normal(size=(41, 8, 48)).astype(np.float32)
    vol = weighted_backprojection(images, np.linspace(-40, 40, 41), 48, cutoff=None)
    spec = central_spectrum(vol, "xz")
    # along k_z (inside the wedge) much less power than along k_x (measured)
    c = 24
    assert spec[c + 8 : c + 20, c].mean() < 0.3 * spec[c, c + 8 : c + 20].mean()


def test_profiles_and_settings():
    assert set(PROFILES) == {"smoke", "book", "pretrained", "paper"}
    assert with_setting(PROFILES["book"], dose=40.0).dose == 40.0
    # each tomogram's defocus is drawn from the range, reproducibly; a swept defocus is exact
    book = PROFILES["book"]
    drawn = [tomogram_defocus(book, s) for s in range(100, 112)]
    assert all(3.0 <= d <= 6.0 for d in drawn) and len(set(drawn)) == len(drawn)
    assert drawn == [tomogram_defocus(book, s) for s in range(100, 112)]
    assert tomogram_defocus(with_setting(book, defocus=8.0), 100) == 8.0
    with pytest.raises(ConfigError, match="sweep"):
        with_setting(PROFILES["book"], slices=3)
    assert zscore(np.array([1.0, 3.0])).tolist() == [-1.0, 1.0]


def normalise_input(a):
    """The tomogram networks' input scaling, as ``cryolab denoise``/``segment`` apply it."""
    return SCALINGS["robust_zscore"](a)[0]


def test_input_normalisation_is_robust_and_idempotent():
    rng = np.random.default_rng(0)
    a = rng.normal(5.0, 2.0, size=100_000).astype(np.float32)
    a[:50] = -1000.0  # a gold bead
    n = normalise_input(a)
    assert abs(float(np.median(n))) < 0.02 and abs(float(n[50:].std()) - 1) < 0.02
    assert float(n.min()) == -INPUT_CLIP
    np.testing.assert_allclose(normalise_input(3 * n + 7), n, atol=1e-4)
    np.testing.assert_allclose(normalise_input(n), n, atol=1e-5)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A denoising and a 3-class segmentation checkpoint trained for one short epoch."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("ckpt")
    cfg = dataclasses.replace(PROFILES["smoke"], patch=16, base=4, depth=2, steps=2,
                              batch_size=2, slices=3)
    vol = np.random.default_rng(0).normal(size=(8, 20, 20)).astype(np.float32)
    lab = (vol > 0.5).astype(np.int64) + (vol > 1.5)
    train_unet([vol], [vol], cfg, 1, checkpoint=folder / "den.pt", progress=False)
    train_unet([vol], [lab], cfg, 1, n_classes=3, checkpoint=folder / "seg.pt",
               progress=False)
    other = torch.nn.Linear(2, 2)
    Trainer(other, torch.optim.SGD(other.parameters(), 0.1), supervised_step(torch.nn.MSELoss()),
            checkpoint=folder / "linear.pt").save(folder / "linear.pt")
    yield folder
    torch.set_num_threads(before)


def test_cli_denoise_and_segment_keep_the_grid(checkpoints, tmp_path):
    rng = np.random.default_rng(3)
    data = rng.normal(5, 2, size=(10, 30, 26)).astype(np.float32)
    tomo = Volume(data, (7.0, 6.5, 6.0), (1.0, 2.0, 3.0))
    write_map(tmp_path / "t.mrc", tomo)
    assert main(["denoise", str(tmp_path / "t.mrc"), "--checkpoint",
                 str(checkpoints / "den.pt"), "--out", str(tmp_path / "d.mrc"),
                 "--patch", "16", "--stride", "8"]) == 0
    out = read_map(tmp_path / "d.mrc")
    assert out.shape == tomo.shape
    np.testing.assert_allclose(out.voxel_size, tomo.voxel_size, rtol=1e-5)
    np.testing.assert_allclose(out.origin, tomo.origin, atol=1e-3)
    model = load_model(checkpoints / "den.pt", UNet, device="cpu")
    whole = predict_logits(model, normalise_input(data))[0]
    inner = (slice(4, -4), slice(8, -8), slice(8, -8))
    assert np.corrcoef(out.data[inner].ravel(), whole[inner].ravel())[0, 1] > 0.99
    assert main(["segment", str(tmp_path / "t.mrc"), "--checkpoint",
                 str(checkpoints / "seg.pt"), "--out", str(tmp_path / "s.mrc.gz"),
                 "--patch", "16"]) == 0
    labels = read_map(tmp_path / "s.mrc.gz")
    assert labels.shape == tomo.shape
    assert set(np.unique(labels.data)) <= {0.0, 1.0, 2.0}


def test_cli_refuses_wrong_checkpoints(checkpoints, tmp_path, capsys):
    write_map(tmp_path / "t.mrc", Volume(np.zeros((8, 16, 16), np.float32), 10.0, 0.0))
    cases = [
        ("denoise", checkpoints / "seg.pt", "segmentation network"),
        ("segment", checkpoints / "den.pt", "denoising network"),
        ("denoise", checkpoints / "linear.pt", "not a UNet"),
        ("segment", tmp_path / "missing.pt", "no such checkpoint"),
    ]
    for command, ckpt, message in cases:
        out = tmp_path / f"{command}.mrc"
        code = main([command, str(tmp_path / "t.mrc"), "--checkpoint", str(ckpt),
                     "--out", str(out)])
        assert code == 2
        assert message in capsys.readouterr().err
        assert not out.exists()
    code = main(["denoise", str(tmp_path / "nope.mrc"), "--checkpoint",
                 str(checkpoints / "den.pt"), "--out", str(tmp_path / "x.mrc")])
    assert code == 2 and "no such map" in capsys.readouterr().err


def test_simulated_sample_targets_are_consistent(mirror):
    cfg = dataclasses.replace(PROFILES["smoke"], size=(400.0, 400.0, 330.0), gold=2,
                              vesicles=0, tilt_step=6.0)
    s = simulate_sample(cfg, seed=3, halves=True)
    assert s.tomogram.shape == s.prior.shape == s.atlas.shape == s.even.shape
    assert abs(float(s.prior.mean())) < 1e-4 and abs(float(s.prior.std()) - 1) < 1e-4
    assert float(np.abs(s.tomogram).max()) <= INPUT_CLIP  # clipped: gold is an outlier
    np.testing.assert_allclose(normalise_input(s.tomogram), s.tomogram, atol=1e-5)
    assert set(np.unique(s.atlas)) <= set(range(len(s.classes)))
    assert np.any(s.atlas == s.classes.index("gold"))
    # every labelled voxel lies in a placed object of that class (particles do not overlap)
    for label in np.unique(s.atlas[s.atlas > 0]):
        ids = np.unique(s.instances[s.atlas == label])
        assert all(s.class_of[int(i)] == label for i in ids if i)
    # the halves share the signal: each correlates with the full reconstruction
    assert np.corrcoef(s.even.ravel(), s.tomogram.ravel())[0, 1] > 0.5


@pytest.mark.parametrize("correction", ["none", "phase-flip"])
def test_the_noise_free_tomogram_is_one_truth_made_like_the_input(mirror, correction):
    """The second truth is the specimen imaged again without noise and reconstructed as the
    input was (with or without phase flipping): the same volume whether a training sample or
    the whole held-out tomogram asks for it, closer to the noisy tomogram than the ideal
    reconstruction is (it keeps the CTF and the wedge), yet not the tomogram itself; the
    even/odd halves are reconstructed the same way."""
    cfg = dataclasses.replace(PROFILES["smoke"], size=(320.0, 320.0, 330.0), gold=1,
                              vesicles=0, microtubules=0, tilt_step=6.0,
                              ctf_correction=correction)
    s = simulate_sample(cfg, seed=5, halves=True, noise_free=True)
    whole = whole_tomogram(cfg, seed=5)
    np.testing.assert_allclose(zscore(whole.ctf_truth, eps=1e-12), s.noise_free, atol=1e-5)
    assert abs(float(s.noise_free.mean())) < 1e-4 and abs(float(s.noise_free.std()) - 1) < 1e-4

    def r(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    assert r(s.noise_free, s.tomogram) > r(s.prior, s.tomogram)
    assert r(s.noise_free, s.tomogram) < 0.99
    assert r(s.even, s.tomogram) > 0.5


def test_two_head_regression_folds_into_one_output():
    """A two-head denoiser trains on both targets of the same slabs, and its blend is one
    1×1 convolution: the folded one-output network equals the weighted sum of the heads."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(PROFILES["smoke"], steps=3, batch_size=4, patch=16)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 16, 16)).astype(np.float32)
    smooth = ndimage.gaussian_filter(x, 1.0)
    model, history = train_unet([x], [np.stack([x, smooth])], cfg, 2, progress=False)
    assert model.hparams["out_channels"] == 2 and len(history["loss"]) == 2
    heads = predict_logits(model, x)
    one = blend_heads(model, (0.8, 0.2))
    assert one.hparams["out_channels"] == 1
    np.testing.assert_allclose(predict_logits(one, x)[0], 0.8 * heads[0] + 0.2 * heads[1],
                               atol=1e-5)
    with pytest.raises(ConfigError, match="3 weights for 2 heads"):
        blend_heads(model, (0.5, 0.3, 0.2))


@pytest.mark.parametrize("angle,along_y", [(0.0, True), (90.0, False)])
def test_filaments_run_at_the_requested_angle(mirror, angle, along_y):
    cfg = dataclasses.replace(PROFILES["smoke"], size=(640.0, 640.0, 330.0), filaments=1,
                              tilt_step=10.0)
    s = simulate_sample(cfg, seed=1, filament_angle=angle)
    assert s.classes == ("background", "filament") and s.counts == {"filament": 1}
    seen = (s.atlas == 1).any(axis=0)  # (y, x) footprint of the 26-voxel-wide tube
    # a filament along y (within ±10°) crosses the whole view in y but not in x
    assert seen.all(axis=0).any() == along_y
    assert seen.all(axis=1).any() == (not along_y)


def test_cli_uses_the_shipped_models_without_a_checkpoint(tmp_path, capsys):
    """Without --checkpoint, denoise and segment run the shipped weights, say so, and agree
    with the shipped network run on the whole volume at once (normalised once, as the command
    normalises the whole tomogram, never tile by tile): the tiles, each voxel from the tile
    whose centre is nearest, leave no seams."""
    from cryolab import weights

    rng = np.random.default_rng(4)
    data = ndimage.gaussian_filter(rng.normal(0, 1, size=(12, 72, 70)), 1.0).astype(np.float32)
    write_map(tmp_path / "t.mrc", Volume(data, 10.0, 0.0))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["denoise", str(tmp_path / "t.mrc"), "--out", str(tmp_path / "d.mrc"),
                     "--patch", "48", "--stride", "16"]) == 0
        assert "shipped weights 'denoiser'" in capsys.readouterr().out
        assert main(["segment", str(tmp_path / "t.mrc"), "--out", str(tmp_path / "s.mrc"),
                     "--patch", "32"]) == 0
        assert "shipped weights 'segmenter'" in capsys.readouterr().out
        whole = predict_logits(weights.load("denoiser"), normalise_input(data))[0]
    finally:
        torch.set_num_threads(before)
    out = read_map(tmp_path / "d.mrc").data
    inner = (slice(3, -3), slice(12, -12), slice(12, -12))
    assert np.corrcoef(out[inner].ravel(), whole[inner].ravel())[0, 1] > 0.99
    assert np.abs(out[inner] - whole[inner]).mean() < 0.1 * np.abs(whole[inner]).mean()
    labels = read_map(tmp_path / "s.mrc").data
    n_classes = weights.card("segmenter")["architecture"]["hparams"]["out_channels"]
    assert labels.shape == data.shape and 0 <= labels.min() <= labels.max() < n_classes


def test_denoise_tomogram_is_what_cryolab_denoise_writes(tmp_path):
    """The chapter's and the benchmarks' whole-tomogram denoising is the command's: the same
    normalisation and tiles give the same voxels (to float32 rounding of the batching)."""
    from cryolab import weights

    data = np.random.default_rng(5).normal(0, 1, size=(10, 60, 52)).astype(np.float32)
    write_map(tmp_path / "t.mrc", Volume(data, 10.0, 0.0))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["denoise", str(tmp_path / "t.mrc"), "--out", str(tmp_path / "d.mrc"),
                     "--patch", "32"]) == 0
        ours = denoise_tomogram(weights.load("denoiser"), data, patch=32)
    finally:
        torch.set_num_threads(before)
    written = read_map(tmp_path / "d.mrc").data
    assert ours.shape == data.shape
    np.testing.assert_allclose(ours, written, rtol=1e-4, atol=1e-4 * np.abs(written).max())
