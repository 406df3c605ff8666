"""Tests for cryolab.metrics against scikit-image, numpy and analytic cases."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cryolab.errors import ConfigError, FormatError
from cryolab.metrics import (
    FSCCurve,
    chimerax_correlation,
    contour_level,
    dice,
    fsc,
    fsc_resolution,
    iou,
    model_mask,
    pcc,
    psnr,
    rscc,
    ssim,
    struc2map_preprocess,
    threshold_percentile,
)
from cryolab.normalise import minmax


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def _correlated_pair(
    rng: np.random.Generator, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated random maps with the same mean (3) but different spreads."""
    a = rng.normal(size=shape) + 3.0
    b = 0.6 * a + 0.8 * rng.normal(size=shape) + 1.2
    return a, b


def _frequency_magnitude(shape: tuple[int, ...], voxel: float) -> np.ndarray:
    """|k| in 1/Å on the rfftn grid of a map with cubic voxels."""
    freqs = [np.fft.fftfreq(n, voxel) for n in shape[:-1]]
    freqs.append(np.fft.rfftfreq(shape[-1], voxel))
    grids = np.meshgrid(*freqs, indexing="ij", sparse=True)
    return np.sqrt(sum(g**2 for g in grids))


# ---------------------------------------------------------------------------------- SSIM, PSNR


@pytest.mark.parametrize("shape", [(20, 22, 24), (40, 36)])
def test_ssim_uniform_window_matches_skimage(rng, shape):
    a, b = _correlated_pair(rng, shape)
    data_range = 5.0
    expected = structural_similarity(a, b, data_range=data_range)
    assert ssim(a, b, data_range=data_range) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("shape", [(20, 22, 24), (40, 36)])
@pytest.mark.parametrize("sample_covariance", [False, True])
def test_ssim_gaussian_window_matches_skimage(rng, shape, sample_covariance):
    a, b = _correlated_pair(rng, shape)
    options = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": sample_covariance}
    expected = structural_similarity(a, b, data_range=4.0, **options)
    assert ssim(a, b, data_range=4.0, **options) == pytest.approx(expected, abs=1e-6)


def test_ssim_default_data_range_is_joint_range(rng):
    a, b = _correlated_pair(rng, (16, 16, 16))
    joint = max(a.max(), b.max()) - min(a.min(), b.min())
    expected = structural_similarity(a, b, data_range=joint)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-6)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_psnr_matches_skimage(rng):
    reference, estimate = _correlated_pair(rng, (12, 14, 16))
    expected = peak_signal_noise_ratio(
        reference, estimate, data_range=reference.max() - reference.min()
    )
    assert psnr(estimate, reference) == pytest.approx(expected, abs=1e-9)
    assert psnr(estimate, reference, data_range=10.0) == pytest.approx(
        peak_signal_noise_ratio(reference, estimate, data_range=10.0), abs=1e-9
    )
    assert psnr(reference, reference) == float("inf")


# --------------------------------------------------------------------------------- correlation


def test_pcc_matches_corrcoef(rng):
    a, b = _correlated_pair(rng, (10, 11, 12))
    assert pcc(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)
    mask = a > 0.3
    expected = np.corrcoef(a[mask], b[mask])[0, 1]
    assert pcc(a, b, mask) == pytest.approx(expected, abs=1e-12)


def test_rscc_is_corrcoef_of_masked_values(rng):
    a, b = _correlated_pair(rng, (16, 16, 16))
    mask = model_mask(a.shape, 1.0, (0.0, 0.0, 0.0), [[8.0, 8.0, 8.0], [3.0, 12.0, 5.0]], 3.0)
    expected = np.corrcoef(a[mask], b[mask])[0, 1]
    assert rscc(a, b, mask) == pytest.approx(expected, abs=1e-12)
    # Outside the mask b is replaced by unrelated noise: only the masked score stays high.
    b_model = np.where(mask, a, rng.normal(size=a.shape))
    assert rscc(a, b_model, mask) == pytest.approx(1.0)
    assert pcc(a, b_model) < 0.5


def test_contour_level_leaves_one_percent_above(rng):
    reference = rng.normal(size=(20, 20, 25))
    level = contour_level(reference)
    assert np.count_nonzero(reference > level) == pytest.approx(0.01 * reference.size, abs=1)


def test_chimerax_correlation_against_numpy(rng):
    map_values, reference = _correlated_pair(rng, (18, 18, 18))
    level = 4.0
    above = reference > level
    u, v = map_values[above], reference[above]
    plain = np.sum(u * v) / np.sqrt(np.sum(u * u) * np.sum(v * v))
    du, dv = u - u.mean(), v - v.mean()
    centred = np.sum(du * dv) / np.sqrt(np.sum(du * du) * np.sum(dv * dv))

    assert chimerax_correlation(map_values, reference, level) == pytest.approx(plain, abs=1e-12)
    assert chimerax_correlation(map_values, reference, level, about_mean=True) == pytest.approx(
        centred, abs=1e-12
    )
    assert plain != pytest.approx(centred, abs=1e-3)


def test_chimerax_correlation_default_level_uses_top_percent(rng):
    map_values, reference = _correlated_pair(rng, (18, 18, 18))
    above = reference > np.quantile(reference, 0.99)
    u, v = map_values[above], reference[above]
    expected = np.sum(u * v) / np.sqrt(np.sum(u * u) * np.sum(v * v))
    assert chimerax_correlation(map_values, reference) == pytest.approx(expected, abs=1e-12)


def test_chimerax_about_mean_self_and_negative(rng):
    reference = rng.normal(size=(12, 12, 12))
    assert chimerax_correlation(reference, reference, 0.5, about_mean=True) == pytest.approx(1.0)
    assert chimerax_correlation(-reference, reference, 0.5, about_mean=True) == pytest.approx(-1.0)


# ---------------------------------------------------------------------------------- model mask


def test_model_mask_ball_volume_and_position():
    origin = (-10.0, 5.0, 20.0)  # (z, y, x) Å of voxel [0, 0, 0]
    atom_zyx_index = np.array([12, 15, 18])
    atom_xyz = (origin + atom_zyx_index * 1.0)[::-1]
    mask = model_mask((30, 31, 32), 1.0, origin, [atom_xyz], radius=5.0)

    ball = 4.0 / 3.0 * np.pi * 5.0**3
    assert mask.sum() == pytest.approx(ball, rel=0.10)
    np.testing.assert_allclose(np.argwhere(mask).mean(axis=0), atom_zyx_index)


def test_model_mask_anisotropic_voxels():
    voxel = (2.0, 1.0, 0.5)  # (z, y, x) Å
    centre = np.array([10, 10, 20])
    atom_xyz = (centre * np.array(voxel))[::-1]
    mask = model_mask((21, 21, 41), voxel, (0.0, 0.0, 0.0), [atom_xyz], radius=4.0)

    cz, cy, cx = centre
    assert mask[cz + 2, cy, cx] and not mask[cz + 3, cy, cx]  # 4 Å / 2 Å voxels
    assert mask[cz, cy + 4, cx] and not mask[cz, cy + 5, cx]  # 4 Å / 1 Å voxels
    assert mask[cz, cy, cx + 8] and not mask[cz, cy, cx + 9]  # 4 Å / 0.5 Å voxels
    ball_voxels = 4.0 / 3.0 * np.pi * 4.0**3 / np.prod(voxel)
    assert mask.sum() == pytest.approx(ball_voxels, rel=0.10)


def test_model_mask_ignores_atoms_outside_box():
    mask = model_mask((10, 10, 10), 1.0, (0.0, 0.0, 0.0), [[50.0, 5.0, 5.0]], radius=3.0)
    assert mask.shape == (10, 10, 10) and not mask.any()


# ------------------------------------------------------------------------------------------ FSC


def test_fsc_of_map_with_itself_is_one(rng):
    a = rng.normal(size=(24, 24, 24)) + 1.0
    curve = fsc(a, a, 1.2)
    np.testing.assert_allclose(curve.correlation, 1.0, atol=1e-9)
    np.testing.assert_allclose(curve.frequency, np.arange(13) / (24 * 1.2))
    assert curve.resolution() == pytest.approx(2.4)


def test_fsc_voxel_counts_cover_the_nyquist_ball():
    curve = fsc(np.ones((16, 16, 16)), np.ones((16, 16, 16)), 1.0)
    k = np.sqrt(sum(g**2 for g in np.meshgrid(*[np.fft.fftfreq(16) * 16] * 3, indexing="ij")))
    expected = np.bincount(np.rint(k).astype(int).ravel())[:9]
    np.testing.assert_array_equal(curve.n_voxels, expected)


def test_fsc_of_independent_noise_is_near_zero(rng):
    curve = fsc(rng.normal(size=(32, 32, 32)), rng.normal(size=(32, 32, 32)), 1.0)
    assert abs(np.mean(curve.correlation[1:])) < 0.1
    assert np.all(np.abs(curve.correlation[4:]) < 0.2)


@pytest.mark.parametrize("shape", [(48, 48, 48), (40, 48, 56)])
def test_fsc_hard_low_pass_crosses_at_cutoff(rng, shape):
    voxel, cutoff = 1.0, 1.0 / 6.0
    a = rng.normal(size=shape)
    keep = _frequency_magnitude(shape, voxel) <= cutoff
    low_pass = np.fft.irfftn(np.fft.rfftn(a) * keep, s=shape, axes=(0, 1, 2))
    resolution = fsc_resolution(a, low_pass, voxel)
    shell_width = 1.0 / (max(shape) * voxel)
    assert abs(1.0 / resolution - cutoff) <= shell_width


def test_fsc_gaussian_blur_plus_noise_follows_transfer_function(rng):
    # b = (a blurred by a Gaussian of std sigma) + white noise of std noise, a white with unit
    # variance. Per shell FSC(k) = H(k) / sqrt(H(k)^2 + noise^2), H(k) = exp(-2 pi^2 sigma^2 k^2),
    # so FSC = t where H = t noise / sqrt(1 - t^2).
    shape, voxel, sigma, noise, t = (48, 48, 48), 1.0, 2.0, 0.3, 0.143
    a = rng.normal(size=shape)
    k = _frequency_magnitude(shape, voxel)
    transfer = np.exp(-2.0 * np.pi**2 * sigma**2 * k**2)
    blurred = np.fft.irfftn(np.fft.rfftn(a) * transfer, s=shape, axes=(0, 1, 2))
    b = blurred + noise * rng.normal(size=shape)

    curve = fsc(a, b, voxel)
    h = np.exp(-2.0 * np.pi**2 * sigma**2 * curve.frequency**2)
    predicted_curve = h / np.sqrt(h**2 + noise**2)
    np.testing.assert_allclose(curve.correlation[3:], predicted_curve[3:], atol=0.1)

    h_cross = t * noise / np.sqrt(1.0 - t**2)
    k_cross = np.sqrt(-np.log(h_cross) / (2.0 * np.pi**2 * sigma**2))
    assert abs(1.0 / curve.resolution(t) - k_cross) <= 1.0 / (shape[0] * voxel)


def test_fsc_resolution_interpolates_and_thresholds():
    curve = FSCCurve(
        frequency=np.array([0.0, 0.1, 0.2, 0.3]),
        correlation=np.array([1.0, 0.9, 0.7, 0.1]),
        n_voxels=np.array([1, 6, 18, 38]),
        nyquist_resolution=1.0 / 0.3,
    )
    assert curve.resolution_05() == pytest.approx(1.0 / (0.2 + 0.2 / 0.6 * 0.1))
    assert curve.resolution(0.143) == pytest.approx(1.0 / (0.2 + 0.557 / 0.6 * 0.1))
    assert curve.resolution(0.05) == pytest.approx(1.0 / 0.3)


# --------------------------------------------------------------------------------- Dice and IoU


def test_dice_and_iou_hand_counted():
    pred = np.array([[1, 1, 0], [0, 1, 0]], dtype=bool)
    target = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    # |P| = 3, |T| = 3, |P & T| = 2, |P | T| = 4
    assert dice(pred, target) == pytest.approx(2 * 2 / 6)
    assert iou(pred, target) == pytest.approx(2 / 4)
    empty = np.zeros((2, 3), dtype=bool)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0


def test_dice_per_label():
    pred = np.array([0, 1, 1, 2, 2, 2])
    target = np.array([0, 1, 2, 2, 2, 0])
    # label 0: P={0}, T={0,5} -> 2/3; label 1: P={1,2}, T={1} -> 2/3; label 2: 2*2/(3+3)
    scores = dice(pred, target, labels=[0, 1, 2, 7])
    assert scores == pytest.approx({0: 2 / 3, 1: 2 / 3, 2: 4 / 6, 7: 1.0})


def test_iou_threshold_is_inclusive():
    prob = np.array([0.2, 0.5, 0.7, 0.4])
    target = np.array([False, True, True, True])
    assert iou(prob, target, threshold=0.5) == pytest.approx(2 / 3)
    assert iou(prob, target, threshold=0.3) == pytest.approx(1.0)


# -------------------------------------------------------------------------------- preprocessing


def test_struc2map_preprocess():
    a = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 0.0])
    # The median of the non-zero voxels is 5, which is kept; 1-4 and the zeros become 0.
    thresholded = threshold_percentile(a, q=50)
    np.testing.assert_array_equal(thresholded, [0, 0, 0, 0, 0, 5, 6, 7, 8, 9, 0])
    np.testing.assert_allclose(struc2map_preprocess(a, q=50), thresholded / 9.0)
    np.testing.assert_allclose(minmax([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])


# ----------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: pcc(a, b),
        lambda a, b: ssim(a, b),
        lambda a, b: psnr(a, b),
        lambda a, b: fsc(a, b, 1.0),
        lambda a, b: chimerax_correlation(a, b),
        lambda a, b: rscc(a, b, np.ones(a.shape, dtype=bool)),
    ],
)
def test_shape_mismatch_raises(call):
    with pytest.raises(ConfigError):
        call(np.ones((8, 8, 8)), np.ones((8, 8, 9)))


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: pcc(a, b),
        lambda a, b: ssim(a, b, data_range=1.0),
        lambda a, b: psnr(a, b, data_range=1.0),
        lambda a, b: fsc(a, b, 1.0),
        lambda a, b: chimerax_correlation(a, b, 0.0),
        lambda a, b: minmax(a),
    ],
)
def test_nan_input_raises(rng, call):
    a = rng.normal(size=(8, 8, 8))
    a[1, 2, 3] = np.nan
    with pytest.raises(FormatError):
        call(a, rng.normal(size=(8, 8, 8)))


def test_empty_mask_and_bad_options_raise(rng):
    a, b = _correlated_pair(rng, (8, 8, 8))
    with pytest.raises(ConfigError):
        rscc(a, b, np.zeros(a.shape, dtype=bool))
    with pytest.raises(ConfigError):
        chimerax_correlation(a, b, level=1e6)
    with pytest.raises(ConfigError):
        dice(a > 0, (b > 0).astype(int))
    with pytest.raises(ConfigError):
        model_mask((8, 8, 8), (1.0, 1.0), (0.0, 0.0, 0.0), [[1.0, 1.0, 1.0]], 2.0)
    with pytest.raises(ConfigError):
        threshold_percentile(np.zeros(5))
