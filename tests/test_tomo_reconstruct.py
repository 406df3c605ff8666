"""Weighted back-projection against scikit-image, adjointness, filters and the ideal prior."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from cryolab.errors import ConfigError
from cryolab.tomo.microscope import project
from cryolab.tomo.reconstruct import (
    backproject,
    ideal_reconstruction,
    radial_filter,
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
