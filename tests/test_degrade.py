"""Tests of cryolab.degrade: the noise model and the Fourier filters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cryolab.degrade import (
    NoiseParams,
    bfactor_blur,
    degrade,
    grey_dilate,
    lowpass,
)
from cryolab.errors import ConfigError
from cryolab.fourier import fourier_filter, frequency_grid
from cryolab.io import Volume
from cryolab.metrics import fsc


def _blob(n: int = 32, voxel: float = 1.0, sigma_a: float = 1.5) -> Volume:
    z, y, x = np.mgrid[:n, :n, :n] - n / 2
    data = np.exp(-(x**2 + y**2 + z**2) / (2 * (sigma_a / voxel) ** 2))
    return Volume(data, voxel, (5.0, -3.0, 2.0))


def test_bfactor_blur_of_a_gaussian_is_the_analytical_wider_gaussian():
    # A Gaussian of variance s0² blurred by exp(-B s²/4) becomes one of variance
    # s0² + B/(8π²) (the Fourier transform of exp(-x²/2σ²) is exp(-2π²σ²s²)).
    vol = _blob(48, 1.0, 1.5)
    bfac = 60.0
    out = bfactor_blur(vol, bfac)
    var = 1.5**2 + bfac / (8 * np.pi**2)
    z, y, x = np.mgrid[:48, :48, :48] - 24
    expected = (1.5**2 / var) ** 1.5 * np.exp(-(x**2 + y**2 + z**2) / (2 * var))
    np.testing.assert_allclose(out.data, expected, atol=2e-4)
    np.testing.assert_array_equal(out.origin, vol.origin)


def test_bfactor_blur_honours_the_voxel_size():
    # the same physical blob sampled at 0.5 Å and 1 Å gets the same physical blur
    fine, coarse = _blob(64, 0.5, 2.0), _blob(32, 1.0, 2.0)
    a, b = bfactor_blur(fine, 80.0), bfactor_blur(coarse, 80.0)
    assert a.data.max() == pytest.approx(b.data.max(), rel=1e-3)
    with pytest.raises(ConfigError, match="sharpening"):
        bfactor_blur(coarse, -10.0)


def test_lowpass_removes_exactly_the_frequencies_beyond_the_cutoff():
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(size=(32, 32, 32)), 1.0, 0.0)
    out = lowpass(vol, 4.0)
    spec = np.abs(np.fft.rfftn(out.data))
    s = frequency_grid(vol.shape, vol.voxel_size)
    assert spec[s > 0.25 + 1e-9].max() < 1e-3
    np.testing.assert_allclose(spec[s <= 0.25], np.abs(np.fft.rfftn(vol.data))[s <= 0.25],
                               rtol=1e-4, atol=1e-3)
    # a soft edge keeps low frequencies and leaves nothing beyond cutoff + edge/2
    soft = np.abs(np.fft.rfftn(lowpass(vol, 4.0, edge=0.05).data))
    assert soft[s > 0.275 + 1e-9].max() < 1e-3


def test_frequency_grid_matches_numpy_for_anisotropic_voxels():
    s = frequency_grid((4, 6, 8), np.array([2.0, 1.0, 0.5]))
    assert s.shape == (4, 6, 5)
    assert s[1, 0, 0] == pytest.approx(1 / 8)  # 1/(4 * 2 Å)
    assert s[0, 0, 4] == pytest.approx(1.0)  # Nyquist of 0.5 Å voxels
    identity = fourier_filter(_blob(16).data, lambda k: np.ones_like(k))
    np.testing.assert_allclose(identity, _blob(16).data, atol=1e-6)


def test_grey_dilation_is_the_maximum_over_a_ball():
    data = np.zeros((9, 9, 9), np.float32)
    data[4, 4, 4] = 1.0
    out = grey_dilate(data, 1)
    assert out.sum() == 7  # a radius-1 ball: the centre and its 6 face neighbours
    ref = ndimage.maximum_filter(data, footprint=ndimage.generate_binary_structure(3, 1))
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(grey_dilate(data, 0), data)


def test_degrade_is_reproducible_and_lowers_the_resolution():
    vol = _blob(32, 1.0, 1.0)
    params = NoiseParams(ball_radius=1, sigma=1.5, noise=0.3)
    a = degrade(vol, params, np.random.default_rng(1))
    b = degrade(vol, params, np.random.default_rng(1))
    np.testing.assert_array_equal(a.data, b.data)
    assert a.shape == vol.shape
    np.testing.assert_array_equal(a.voxel_size, vol.voxel_size)
    clean = degrade(vol, NoiseParams(1, 1.5, 0.0), np.random.default_rng(1))
    noise = a.data - clean.data
    assert noise.std() == pytest.approx(0.3 * clean.data.std(), rel=0.05)
    # the FSC against the original falls at high frequency and stays high at low frequency
    curve = fsc(a.data, vol.data, 1.0)
    assert curve.correlation[1] > 0.9
    assert curve.correlation[-1] < 0.5
    with pytest.raises(ConfigError):
        NoiseParams(ball_radius=-1)


# ------------------------------------------------------------- realistic degradation


def _atoms(n: int = 40, seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    data = np.zeros((n, n, n))
    idx = rng.integers(10, n - 10, size=(300, 3))
    np.add.at(data, tuple(idx.T), 1.0)
    return Volume(ndimage.gaussian_filter(data, 0.6).astype(np.float32), 1.0, (0.0, 0.0, 0.0))


@pytest.mark.parametrize("bfactor", [0.0, 60.0])
def test_coloured_noise_has_unit_std_and_the_asked_fall_off(bfactor):
    from cryolab.degrade import coloured_noise
    from cryolab.sharpen import guinier_fit

    noise = coloured_noise((48, 48, 48), 1.0, bfactor, np.random.default_rng(0))
    assert noise.dtype == np.float32 and noise.std() == pytest.approx(1.0, rel=1e-5)
    # the Guinier slope of its amplitudes (an independent fit) is the B it was made with
    fit = guinier_fit(Volume(noise, 1.0, (0, 0, 0)), high=2.5, low=12.0)
    assert fit.bfactor == pytest.approx(bfactor, abs=6.0)
    with pytest.raises(ConfigError, match="noise B-factor"):
        coloured_noise((8, 8, 8), 1.0, -1.0, np.random.default_rng(0))


def test_realistic_degrade_draws_within_its_ranges_and_is_reproducible():
    from cryolab.degrade import RealisticParams, realistic_degrade

    truth = _atoms()
    params = RealisticParams()
    a, drawn = realistic_degrade(truth, params, np.random.default_rng(3))
    b, again = realistic_degrade(truth, params, np.random.default_rng(3))
    np.testing.assert_array_equal(a.data, b.data)
    assert drawn == again
    for name in ("resolution", "bfactor", "noise", "noise_bfactor", "voxel"):
        low, high = getattr(params, name)
        assert low <= drawn[name] <= high
    assert a.shape == truth.shape and np.allclose(a.origin, truth.origin)
    # worse than the truth, but still related to it
    curve = fsc(a.data, truth.data, 1.0)
    assert 0.3 < curve.correlation[1:4].mean() and curve.resolution(0.5) > 2.5


def test_realistic_degrade_low_passes_and_masks_as_asked():
    from cryolab.degrade import RealisticParams, realistic_degrade

    truth = _atoms(48)
    params = RealisticParams(resolution=(4.0, 4.0), voxel=(1.0, 1.0), mask_probability=1.0,
                             mask_distance=3.0)
    out, drawn = realistic_degrade(truth, params, np.random.default_rng(0))
    assert drawn["masked"] == 1.0 and drawn["resolution"] == 4.0
    # no amplitude beyond the raised-cosine edge (1/4 Å + 0.015/Å) before masking: the mask
    # multiplies in real space, so check the masked-out corner instead
    assert np.all(out.data[:3, :3, :3] == 0)  # far from every atom: exact zeros
    unmasked, _ = realistic_degrade(truth, RealisticParams(resolution=(4.0, 4.0),
                                                           voxel=(1.0, 1.0),
                                                           mask_probability=0.0),
                                    np.random.default_rng(0))
    s = frequency_grid(truth.shape, 1.0)
    spectrum = np.abs(np.fft.rfftn(unmasked.data))
    assert spectrum[s > 0.25 + 0.015 + 1e-6].max() < 1e-4 * spectrum.max()


def test_realistic_params_refuse_inverted_ranges():
    from cryolab.degrade import RealisticParams

    with pytest.raises(ConfigError, match="resolution"):
        RealisticParams(resolution=(4.0, 3.0))
    with pytest.raises(ConfigError, match="mask_probability"):
        RealisticParams(mask_probability=1.5)
