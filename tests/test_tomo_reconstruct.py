"""Weighted back-projection against scikit-image, adjointness, filters and the ideal prior."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from cryolab.errors import ConfigError
from cryolab.fourier import frequency_grid
from cryolab.tomo.microscope import MicroscopeConfig, apply_ctf, ctf, project
from cryolab.tomo.reconstruct import (
    ReconstructionConfig,
    backproject,
    ideal_reconstruction,
    phase_flip,
    radial_filter,
    reconstruct_tilt_series,
    sirt_like_filter,
    weighted_backprojection,
)


@pytest.fixture(scope="module")
def phantom():
    return resize(shepp_logan_phantom(), (127, 127), anti_aliasing=True).astype(np.float32)


def test_backprojection_agrees_with_skimage_iradon(phantom):
    """Same sinogram (skimage's radon), ramp filter: ours vs iradon, correlation > 0.99.
    skimage's angle theta is our -theta (it rotates the image by -theta)."""
    theta = np.arange(-90.0, 90.0, 1.0)
    sino = radon(phantom, theta=theta)  # (detector, angle)
    ref = iradon(sino, theta=theta, filter_name="ramp")
    ours = weighted_backprojection(sino.T[:, None, :], -theta, 127, cutoff=None)[:, 0, :]
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99
    # both reproduce the phantom's values (scale included) inside the reconstruction circle
    yy, xx = np.mgrid[:127, :127] - 63
    inside = yy**2 + xx**2 < 60**2
    assert np.corrcoef(ours[inside], phantom[inside])[0, 1] > 0.97
    assert np.std(ours[inside]) == pytest.approx(np.std(ref[inside]), rel=0.05)


def test_our_projector_agrees_with_skimage_radon(phantom):
    theta = np.arange(-90.0, 90.0, 3.0)
    sino = radon(phantom, theta=theta)
    ours = project(phantom[:, None, :], -theta)[:, 0, :]
    assert np.corrcoef(ours.ravel(), sino.T.ravel())[0, 1] > 0.995


def test_backprojection_is_the_adjoint_of_projection():
    rng = np.random.default_rng(0)
    vol = rng.standard_normal((9, 5, 31)).astype(np.float32)
    angles = [-50.0, -10.0, 0.0, 33.0, 61.0]
    imgs = rng.standard_normal((5, 5, 31)).astype(np.float32)
    lhs = float((project(vol, angles) * imgs).sum())
    rhs = float((vol * backproject(imgs, angles, 9)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-4)


def test_radial_filter_cutoff_and_falloff():
    n = 400
    w = radial_filter(n, cutoff=0.35, falloff=0.035)
    k = np.fft.rfftfreq(n)
    below = (k > 0) & (k <= 0.35)
    np.testing.assert_allclose(w[below], k[below])
    i = np.argmin(np.abs(k - 0.385))
    assert w[i] == pytest.approx(k[i] * np.exp(-(((k[i] - 0.35) / 0.035) ** 2)), rel=1e-6)
    assert w[-1] < 1e-3 * 0.5


def test_sirt_like_filter_is_a_flattened_ramp():
    n = 256
    ramp = radial_filter(n, None)
    sirt = sirt_like_filter(n, iterations=10, cutoff=None)
    assert np.all(sirt <= ramp + 1e-12)
    assert sirt[1] == pytest.approx(ramp[1])  # like the ramp at the lowest frequency
    assert sirt[-1] < 0.2 * ramp[-1]  # much flatter at high frequency
    # more iterations -> closer to the ramp
    assert np.all(sirt_like_filter(n, 50, None)[1:] >= sirt[1:] - 1e-12)


def test_sirt_like_filter_damps_noise():
    rng = np.random.default_rng(2)
    imgs = rng.standard_normal((41, 4, 64)).astype(np.float32)
    angles = np.linspace(-60, 60, 41)
    ramp = weighted_backprojection(imgs, angles, 32, "ramp")
    sirt = weighted_backprojection(imgs, angles, 32, "sirt", sirt_iterations=10)
    assert sirt.std() < 0.5 * ramp.std()
    with pytest.raises(ConfigError):
        weighted_backprojection(imgs, angles, 32, "art")
    with pytest.raises(ConfigError):
        weighted_backprojection(imgs[:3], angles, 32)


def test_ideal_reconstruction_recovers_the_inverted_potential():
    rng = np.random.default_rng(3)
    pot = np.zeros((24, 6, 48), np.float32)
    for _ in range(12):
        z, x = rng.integers(5, 19), rng.integers(6, 42)
        pot[z - 2:z + 3, :, x - 2:x + 3] += rng.uniform(1, 3)
    prior = ideal_reconstruction(pot)
    assert prior.shape == pot.shape
    r = np.corrcoef(prior[:, :, 8:-8].ravel(), -pot[:, :, 8:-8].ravel())[0, 1]
    assert r > 0.95


def test_torch_sparse_path_matches_scipy():
    """The GPU code path (torch sparse CSR) gives the scipy result; run here on the CPU."""
    torch = pytest.importorskip("torch")
    from cryolab.tomo.microscope import _sparse_matmul, projection_matrix

    rng = np.random.default_rng(4)
    a = projection_matrix(7, 19, [-40.0, 0.0, 25.0], 19)
    dense = rng.standard_normal((7 * 19, 5)).astype(np.float32)
    np.testing.assert_allclose(_sparse_matmul(a, dense, False, torch.device("cpu")),
                               a @ dense, rtol=1e-5, atol=1e-5)
    back = rng.standard_normal((3 * 19, 5)).astype(np.float32)
    np.testing.assert_allclose(_sparse_matmul(a, back, True, torch.device("cpu")),
                               a.T @ back, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("convention,phase_shift", [("standard", 0.0), ("paper", 0.0),
                                                   ("standard", 90.0)])
def test_phase_flip_of_a_ctf_filtered_image_is_filtered_by_its_modulus(convention,
                                                                      phase_shift):
    """Phase flipping multiplies by -sign(CTF): an image filtered by the CTF comes out
    filtered by -|CTF| (checked against |CTF| applied directly in Fourier space), so every
    lobe of a point's image has the first lobe's sign and dense matter stays dark."""
    rng = np.random.default_rng(0)
    px, dz = 4.0, 3.0
    img = rng.standard_normal((64, 96)).astype(np.float32)
    m = MicroscopeConfig(defocus_um=dz, ctf_convention=convention, phase_shift_deg=phase_shift,
                         envelope=0.9, strip_defocus_step=None)
    kw = dict(amplitude_contrast=m.amplitude_contrast, envelope=None, convention=convention,
              phase_shift=phase_shift)
    filtered = apply_ctf(img, px, dz, **kw)
    flipped = phase_flip(filtered[None], [0.0], px, m)[0]
    modulus = np.abs(ctf(frequency_grid(img.shape, px), dz, **kw))
    expected = np.fft.irfft2(np.fft.rfft2(img) * -modulus, s=img.shape)
    np.testing.assert_allclose(flipped, expected, atol=1e-4)
    # a flipped point spread function is the -|CTF| kernel: its darkest value at the point
    point = np.zeros((64, 96), np.float32)
    point[32, 48] = 1
    psf = phase_flip(apply_ctf(point, px, dz, **kw)[None], [0.0], px, m)[0]
    assert psf[32, 48] < 0 and psf[32, 48] == psf.min()


def test_phase_flip_follows_the_defocus_gradient_of_a_tilted_image():
    """At 45° the defocus changes across x; phase_flip undoes the CTF's sign strip by strip
    (as apply_ctf's own flip with the gradient), unlike a flip at the axis defocus only."""
    rng = np.random.default_rng(1)
    px, dz, tilt = 4.0, 5.0, 45.0
    img = rng.standard_normal((16, 512)).astype(np.float32)
    m = MicroscopeConfig(defocus_um=dz, strip_defocus_step=0.2)
    kw = dict(amplitude_contrast=m.amplitude_contrast, envelope=None)
    filtered = apply_ctf(img, px, dz, tilt, 0.2, **kw)
    with_gradient = phase_flip(filtered[None], [tilt], px, m)[0]
    axis_only = phase_flip(filtered[None], [tilt], px,
                           MicroscopeConfig(defocus_um=dz, strip_defocus_step=None))[0]
    ideal = apply_ctf(filtered, px, dz, tilt, 0.2, flip=True, **kw)
    np.testing.assert_allclose(with_gradient, ideal, atol=1e-5)
    # the far edges of a 2 µm-wide image sit ±1 µm from the axis defocus: flipping with
    # the axis defocus alone gets their outer Thon lobes wrong
    edge = slice(0, 64)
    assert np.abs(with_gradient[:, edge] - axis_only[:, edge]).mean() > 0.1 * np.abs(
        with_gradient[:, edge]).mean()


def test_reconstruction_with_phase_flip_needs_the_microscope():
    images = np.ones((3, 8, 8), np.float32)
    rc = ReconstructionConfig(ctf_correction="phase-flip")
    with pytest.raises(ConfigError, match="pixel size and the microscope"):
        reconstruct_tilt_series(images, [-10.0, 0.0, 10.0], 8, rc)
    with pytest.raises(ConfigError, match="ctf_correction"):
        ReconstructionConfig(ctf_correction="wiener")
