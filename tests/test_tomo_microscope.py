"""Physics of the simulated microscope: wavelength, CTF zeros, projection geometry, dose."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryolab.errors import ConfigError
from cryolab.fourier import frequency_grid
from cryolab.io import Volume
from cryolab.tomo.microscope import (
    MicroscopeConfig,
    acquire,
    apply_ctf,
    ctf,
    damage_fade,
    detect,
    electron_wavelength,
    interaction_constant,
    project,
    tilt_angles,
)


def test_relativistic_wavelength_matches_published_values():
    assert electron_wavelength(300) == pytest.approx(0.01969, abs=5e-6)
    assert electron_wavelength(200) == pytest.approx(0.02508, abs=5e-6)
    assert electron_wavelength(100) == pytest.approx(0.03701, abs=5e-6)


def test_interaction_constant_at_300kv():
    # Kirkland: sigma = 6.53e-4 rad/(V·Å) at 300 kV
    assert interaction_constant(300) == pytest.approx(6.526e-4, rel=2e-3)


@pytest.mark.parametrize("defocus", [1.0, 2.5, 5.0, 8.0])
def test_ctf_zeros_solve_the_papers_equation(defocus):
    """Zeros of CTF sit where (1-Q) sin chi + Q cos chi = 0, i.e. chi = -atan(Q/(1-Q)) + n pi;
    chi is a quadratic in k², so each zero has a closed form."""
    q, cs, lam = 0.07, 2.7e7, electron_wavelength(300)
    k = np.linspace(1e-4, 0.25, 400_001)
    c = ctf(k, defocus, amplitude_contrast=q, cs=2.7, envelope=None, convention="paper")
    found = k[np.nonzero(np.sign(c[1:]) != np.sign(c[:-1]))[0]][:4]
    a, b = cs * lam**3, -2 * defocus * 1e4 * lam
    analytic = []
    for n in range(-40, 40):
        target = 2 / np.pi * (-math.atan(q / (1 - q)) + n * np.pi)
        disc = b * b + 4 * a * target
        if disc >= 0:
            for x in ((-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)):
                if x > 1e-8:
                    analytic.append(math.sqrt(x))
    analytic = np.sort([z for z in analytic if z < 0.25])[:4]
    np.testing.assert_allclose(found, analytic, atol=2e-6)


def test_underfocus_gives_usual_thon_rings():
    """Positive defocus = underfocus: the first phase-contrast zero sits near
    1/sqrt(lambda·dz) and moves to lower frequency as the defocus grows; the CTF is negative
    over its first lobe. (The paper's sign of the Q term adds one zero at very low frequency,
    where chi = -atan(Q/(1-Q)).)"""
    lam, q = electron_wavelength(300), 0.07
    firsts = []
    for dz in (1.0, 2.0, 4.0, 8.0):
        k = np.linspace(1e-5, 0.1, 200_001)
        c = ctf(k, dz, envelope=None, convention="paper")
        zeros = k[np.nonzero(np.sign(c[1:]) != np.sign(c[:-1]))[0]]
        amplitude_zero = math.sqrt(math.atan(q / (1 - q)) / (math.pi * lam * dz * 1e4))
        assert zeros[0] == pytest.approx(amplitude_zero, rel=0.02)
        assert zeros[1] == pytest.approx(1 / math.sqrt(lam * dz * 1e4), rel=0.05)
        lobe = (k > 2 * zeros[0]) & (k < zeros[1])
        assert np.all(c[lobe] < 0)
        firsts.append(zeros[1])
    assert np.all(np.diff(firsts) < 0)


def test_standard_convention_keeps_the_first_lobe_from_k_zero():
    """The usual weak-phase CTF (the default), -(1-Q) sin chi_s - Q cos chi_s: -Q at k = 0,
    no extra zero, and the same Thon rings as the paper's formula beyond the first few
    Fourier pixels."""
    k = np.linspace(0, 0.1, 100_001)
    std = ctf(k, 5.0, envelope=None)
    np.testing.assert_array_equal(std, ctf(k, 5.0, envelope=None, convention="standard"))
    assert MicroscopeConfig().ctf_convention == "standard"
    paper = ctf(k, 5.0, envelope=None, convention="paper")
    assert std[0] == pytest.approx(-0.07) and paper[0] == pytest.approx(0.07)
    z_std = k[np.nonzero(np.sign(std[1:]) != np.sign(std[:-1]))[0]]
    z_paper = k[np.nonzero(np.sign(paper[1:]) != np.sign(paper[:-1]))[0]]
    assert len(z_paper) == len(z_std) + 1
    np.testing.assert_allclose(z_std[:3], z_paper[1:4], rtol=0.03)
    with pytest.raises(ConfigError):
        ctf(k, 5.0, envelope=None, convention="mine")


@pytest.mark.parametrize("convention", ["standard", "paper"])
def test_phase_plate_at_90_degrees_turns_sine_into_cosine(convention):
    """chi -> chi - 90°: sin chi becomes -cos chi and cos chi becomes sin chi, so with Q = 0
    the CTF is -cos chi (full dark contrast at k = 0), and with Q the two terms trade places."""
    lam = electron_wavelength(300)
    k = np.linspace(0, 0.2, 2001)
    chi = np.pi / 2 * (2.7e7 * lam**3 * k**4 - 2 * 3.0e4 * lam * k**2)
    plate = ctf(k, 3.0, envelope=None, amplitude_contrast=0.0, phase_shift=90.0,
                convention=convention)
    np.testing.assert_allclose(plate, -np.cos(chi), atol=1e-12)
    assert plate[0] == pytest.approx(-1.0)
    q, sign = 0.07, (1.0 if convention == "paper" else -1.0)
    with_q = ctf(k, 3.0, envelope=None, amplitude_contrast=q, phase_shift=90.0,
                 convention=convention)
    np.testing.assert_allclose(with_q, -(1 - q) * np.cos(chi) + sign * q * np.sin(chi),
                               atol=1e-12)
    with pytest.raises(ConfigError, match="phase_shift_deg"):
        MicroscopeConfig(phase_shift_deg=270.0)


def test_ctf_envelope_value_at_nyquist():
    k = np.array([0.05])  # Nyquist at 10 Å
    full = ctf(k, 5.0, pixel_size=10.0, envelope=0.9)
    bare = ctf(k, 5.0, envelope=None)
    assert full[0] == pytest.approx(bare[0] * math.exp(-(1 / 0.9) ** 2))


@pytest.mark.parametrize("theta", [-60.0, -35.0, 0.0, 20.0, 45.0, 70.0])
def test_point_lands_at_x_cos_plus_z_sin(theta):
    nz, ny, nx = 21, 3, 65
    vol = np.zeros((nz, ny, nx), np.float32)
    z, x = 15, 40  # 5 and 8 voxels from the centre
    vol[z, 1, x] = 1.0
    proj = project(vol, [theta])[0, 1]
    u = np.arange(nx) - (nx - 1) / 2
    centroid = (proj * u).sum() / proj.sum()
    t = math.radians(theta)
    expected = (x - (nx - 1) / 2) * math.cos(t) + (z - (nz - 1) / 2) * math.sin(t)
    assert proj.sum() == pytest.approx(1.0)
    assert centroid == pytest.approx(expected, abs=1e-5)


def test_projection_of_a_slab_grows_as_one_over_cos():
    vol = np.ones((10, 4, 101), np.float32)
    proj = project(vol, [0.0, 60.0])
    assert proj[0, :, 50].mean() == pytest.approx(10.0, rel=1e-5)
    assert proj[1, :, 50].mean() == pytest.approx(20.0, rel=1e-3)


def test_poisson_detection_mean_equals_variance():
    rng = np.random.default_rng(0)
    expected = np.full((400, 500), 37.5)
    for dqe in (1.0, 0.84):
        counts = detect(expected, rng, dqe)
        lam = 37.5 * dqe
        assert counts.mean() == pytest.approx(lam, rel=0.01)
        assert counts.var() == pytest.approx(lam, rel=0.03)
        assert np.all(counts == np.round(counts))


def test_tilt_schemes_and_their_errors():
    np.testing.assert_array_equal(tilt_angles("dose-symmetric", -6, 6, 2),
                                  [0, 2, -2, 4, -4, 6, -6])
    np.testing.assert_array_equal(tilt_angles("dose-symmetric", -6, 6, 2, group=2),
                                  [0, 2, 4, -2, -4, 6, -6])
    np.testing.assert_array_equal(tilt_angles("unidirectional", -4, 4, 2), [-4, -2, 0, 2, 4])
    np.testing.assert_array_equal(tilt_angles("bidirectional", -4, 4, 2), [0, 2, 4, -2, -4])
    np.testing.assert_array_equal(tilt_angles([10, -5, 3]), [10, -5, 3])
    assert len(tilt_angles("dose-symmetric", -60, 60, 2)) == 61
    for bad in [dict(min_angle=10, max_angle=-10), dict(min_angle=-95), dict(step=0),
                dict(scheme="zigzag"), dict(scheme=[0, 95])]:
        kw = dict(scheme="dose-symmetric", min_angle=-60, max_angle=60, step=2) | bad
        with pytest.raises(ConfigError):
            tilt_angles(**kw)


def test_defocus_gradient_strips_blend_without_seams():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((64, 400)).astype(np.float32)
    px, tilt, step = 10.0, 60.0, 0.2
    out = apply_ctf(img, px, 5.0, tilt, step, envelope=None)
    flat = apply_ctf(img, px, 5.0, 0.0, step, envelope=None)
    x_um = (np.arange(400) - 199.5) * px * 1e-4
    n_strips = math.ceil(abs(math.tan(math.radians(tilt))) * (x_um[-1] - x_um[0]) / step) + 1
    assert n_strips > 3
    centres = np.linspace(x_um[0], x_um[-1], n_strips)
    # the first strip centre is the first column: defocus 5 + x tan(theta) there
    first = apply_ctf(img, px, 5.0 + centres[0] * math.tan(math.radians(tilt)), 0.0,
                      envelope=None)
    np.testing.assert_allclose(out[:, 0], first[:, 0], atol=1e-4)
    assert not np.allclose(out[:, 0], flat[:, 0], atol=1e-2)
    # no seams: neighbouring columns differ no more than they do in the untilted image
    jumps = np.abs(np.diff(out, axis=1)).mean(axis=0)
    ref = np.abs(np.diff(flat, axis=1)).mean(axis=0)
    assert jumps.max() < 1.5 * ref.max()


def test_damage_fades_high_frequencies_with_dose():
    f0 = damage_fade((64, 64), 5.0, 0.0)
    f1 = damage_fade((64, 64), 5.0, 20.0)
    f2 = damage_fade((64, 64), 5.0, 80.0)
    k = frequency_grid((64, 64), 5.0)
    hi = k > 0.05
    assert np.allclose(f0, 1)
    assert f2[hi].mean() < f1[hi].mean() < 1
    assert f1[k < 0.01].min() > f1[hi].max()


def test_transmission_follows_imfp_and_dose_split():
    """An empty specimen, no CTF, no noise: each image holds dose/n · px² · DQE ·
    exp(-T/(cos θ · IMFP)) electrons per pixel."""
    pot = np.zeros((30, 8, 16), np.float32)
    cfg = MicroscopeConfig(min_angle=-60, max_angle=60, step=30, dose=50.0, dqe=0.84,
                           apply_ctf=False, noise=False, damage_rate=0.0, damage_noise=0.0)
    series = acquire(Volume(pot, 10.0, 0.0), cfg, np.random.default_rng(0))
    t = np.radians(series.true_angles)
    expected = 50.0 / 5 * 100 * 0.84 * np.exp(-300.0 / (np.cos(t) * 3800.0))
    np.testing.assert_allclose(series.images.mean(axis=(1, 2)), expected, rtol=1e-5)
    np.testing.assert_array_equal(series.angles, [-60, -30, 0, 30, 60])
    # dose-symmetric: 0 first, then +30, -30, +60, -60
    np.testing.assert_allclose(series.cumulative_dose, [40, 20, 0, 10, 30])


def test_tilt_error_changes_true_angles_only():
    pot = np.zeros((10, 4, 16), np.float32)
    cfg = MicroscopeConfig(min_angle=-30, max_angle=30, step=10, angle_error=0.5)
    series = acquire(Volume(pot, 10.0, 0.0), cfg, np.random.default_rng(3))
    np.testing.assert_array_equal(series.angles, np.arange(-30, 31, 10))
    assert 0 < np.abs(series.true_angles - series.angles).max() < 3


def test_acquire_takes_the_voxel_size_from_the_volume():
    """An empty specimen at two voxel sizes: the counts per pixel follow the pixel area px²
    and the thickness (10 voxels of px Å); non-cubic voxels are refused."""
    pot = np.zeros((10, 4, 16), np.float32)
    cfg = MicroscopeConfig(min_angle=-1, max_angle=1, step=1, dose=30.0, dqe=1.0,
                           apply_ctf=False, noise=False, damage_rate=0.0, damage_noise=0.0)
    for px in (5.0, 10.0):
        series = acquire(Volume(pot, px, 0.0), cfg, np.random.default_rng(0))
        t = np.radians(series.true_angles)
        expected = 10.0 * px**2 * np.exp(-10 * px / (np.cos(t) * 3800.0))
        np.testing.assert_allclose(series.images.mean(axis=(1, 2)), expected, rtol=1e-5)
    with pytest.raises(ConfigError, match="cubic"):
        acquire(Volume(pot, (10.0, 5.0, 5.0), 0.0), cfg, np.random.default_rng(0))
