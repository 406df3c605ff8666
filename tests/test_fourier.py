"""cryolab.fourier against numpy's own transforms and analytical results."""

import numpy as np
import pytest

from cryolab.errors import ConfigError
from cryolab.fourier import (
    angular_energy,
    central_section,
    fourier_filter,
    frequency_grid,
    friedel_weights,
    radial_average,
    radial_power_spectrum,
    raised_cosine,
    shell_sums,
)


@pytest.mark.parametrize("shape", [(6, 7, 8), (5, 9)])
def test_frequency_grid_is_numpys_fftfreq(shape):
    spacing = np.array([2.0, 1.5, 0.5][: len(shape)])
    full = np.meshgrid(*[np.fft.fftfreq(n, d) for n, d in zip(shape, spacing, strict=True)],
                       indexing="ij")
    k_full = np.sqrt(sum(g**2 for g in full))
    np.testing.assert_allclose(frequency_grid(shape, spacing, half=False), k_full)
    np.testing.assert_allclose(frequency_grid(shape, spacing), k_full[..., : shape[-1] // 2 + 1])
    with pytest.raises(ConfigError, match="voxel size"):
        frequency_grid(shape, -1.0)


@pytest.mark.parametrize("n", [8, 9])
def test_friedel_weights_make_half_spectrum_sums_equal_full_ones(n):
    a = np.random.default_rng(0).normal(size=(6, 5, n))
    half = np.abs(np.fft.rfftn(a)) ** 2
    full = np.abs(np.fft.fftn(a)) ** 2
    assert np.sum(half * friedel_weights(a.shape)) == pytest.approx(full.sum())


def test_shell_sums_equal_a_brute_force_count_on_the_full_grid():
    shape, voxel = (10, 12, 14), (1.0, 1.5, 2.0)
    (ones,), counts, centres = shell_sums([np.ones((10, 12, 8))], shape, voxel)
    np.testing.assert_array_equal(ones, counts)
    k = frequency_grid(shape, voxel, half=False)
    width = 1.0 / max(n * d for n, d in zip(shape, voxel, strict=True))
    shell = np.rint(k / width).astype(int)
    expected = np.bincount(shell.ravel())[: len(counts)]
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_allclose(centres, np.arange(len(counts)) * width)
    assert centres[-1] <= 1 / (2 * max(voxel)) + 1e-12  # shells stop at Nyquist


def test_fourier_filter_of_a_gaussian_is_the_analytical_gaussian():
    n, s0 = 48, 2.0
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    r2 = x**2 + y**2 + z**2
    g = np.exp(-r2 / (2 * s0**2))
    # exp(-2π²σ²k²) is the transform of a Gaussian of width σ: widths add in quadrature
    out = fourier_filter(g, lambda k: np.exp(-2 * np.pi**2 * 1.5**2 * k**2))
    s1 = np.hypot(s0, 1.5)
    expected = (s0 / s1) ** 3 * np.exp(-r2 / (2 * s1**2))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(fourier_filter(g, np.ones_like), g, atol=1e-12)


def test_raised_cosine_edges():
    k = np.array([0.0, 0.1, 0.15, 0.2, 0.3])
    np.testing.assert_allclose(raised_cosine(k, 0.1, 0.1), [1, 1, 0.5, 0, 0], atol=1e-12)
    np.testing.assert_array_equal(raised_cosine(k, 0.15, 0.0), [1, 1, 1, 0, 0])


def test_radial_average_of_a_radial_function_recovers_it():
    n, px = 64, 2.0
    k = frequency_grid((n, n), px, half=False)
    centres, profile = radial_average(np.cos(40 * k), px)
    np.testing.assert_allclose(profile[1:], np.cos(40 * centres[1:]), atol=0.05)


def test_radial_power_spectrum_is_flat_for_white_noise_and_finds_a_sine():
    rng = np.random.default_rng(0)
    k, power = radial_power_spectrum(rng.normal(size=(128, 128)), 1.0, bins=16)
    assert k[-1] < 0.5 and power[2:].std() / power[2:].mean() < 0.2
    x = np.arange(128)
    wave = np.sin(2 * np.pi * 0.25 * x)[None, :] * np.ones((128, 1))
    k, power = radial_power_spectrum(wave, 1.0, bins=32)
    assert abs(k[np.argmax(power)] - 0.25) < 0.5 / 32


def test_angular_energy_and_central_section_show_a_missing_wedge():
    from cryolab.tomo.reconstruct import measured_tilt_range, weighted_backprojection

    images = np.random.default_rng(0).normal(size=(41, 8, 48)).astype(np.float32)
    volume = weighted_backprojection(images, np.linspace(-40, 40, 41), 48, cutoff=None)
    angle, energy = angular_energy(volume, bins=45)
    assert energy[angle > 60].mean() < 0.1 * energy[angle < 30].mean()
    assert 36 <= measured_tilt_range(volume) <= 48
    section = central_section(volume, "xz")
    assert section.shape == (48, 48)
    c = 24
    assert section[c + 8 : c + 20, c].mean() < 0.3 * section[c, c + 8 : c + 20].mean()
