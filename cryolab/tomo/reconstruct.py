"""Tomogram reconstruction by weighted back-projection (WBP), IMOD-style.

Each tilt image is filtered along x (perpendicular to the tilt axis y) by a radial filter and
smeared back through the volume along its rays. The back-projector is the transpose of the
voxel-driven projector of :mod:`cryolab.tomo.microscope`: one sparse matrix product
back-projects every y slice of a group of tilts at once.

Filters (frequencies in cycles/pixel):

- ``"ramp"``: ``|k|`` up to ``cutoff``, then a Gaussian fall-off
  ``|k|·exp(−((|k| − cutoff)/falloff)²)`` — IMOD's RADIAL option (defaults 0.35, 0.035).
- ``"sirt"``: the SIRT-like filter (Zeng 2012, IMOD's ``FakeSIRTiterations``):
  ``|k|·(1 − (1 − k₀/|k|)ⁿ)`` with ``k₀ = 1/N``, which behaves like ``n`` SIRT iterations: a
  ramp at low frequencies that flattens at high ones, so noise is damped.

CTF correction: ``ctf_correction="phase-flip"`` multiplies each tilt image by ``−sign(CTF)``
(with the defocus gradient of the tilted specimen) before back-projection (:func:`phase_flip`),
so every Thon lobe adds with the polarity of the first: the image has then been filtered by
``−|CTF|`` rather than by the CTF, and dense matter stays dark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import fft

from ..errors import ConfigError
from ..fourier import angular_energy, frequency_grid
from ..validation import number
from .microscope import (
    MicroscopeConfig,
    _slab_rows,
    _sparse_matmul,
    _torch_device,
    apply_ctf,
    project,
    projection_matrix,
)

__all__ = [
    "ReconstructionConfig",
    "radial_filter",
    "sirt_like_filter",
    "filter_projections",
    "backproject",
    "weighted_backprojection",
    "phase_flip",
    "reconstruct_tilt_series",
    "ideal_reconstruction",
    "measured_tilt_range",
]


@dataclass
class ReconstructionConfig:
    """Reconstruction settings.

    Attributes:
        filter: ``"ramp"`` (IMOD radial filter) or ``"sirt"`` (SIRT-like).
        cutoff, falloff: radial filter cutoff and Gaussian fall-off in cycles/pixel.
        sirt_iterations: iterations the SIRT-like filter imitates.
        thickness: tomogram thickness in voxels (default: the specimen's).
        prior_max_angle, prior_step: the ideal reconstruction's tilt range (±, degrees) and
            increment.
        ctf_correction: ``"none"`` or ``"phase-flip"`` (:func:`phase_flip` before WBP).
    """

    filter: str = "ramp"
    cutoff: float = 0.35
    falloff: float = 0.035
    sirt_iterations: int = 10
    thickness: int | None = None
    prior_max_angle: float = 89.0
    prior_step: float = 1.0
    ctf_correction: str = "none"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """:class:`ConfigError` for a value of the wrong type, not finite, or out of range
        (checked when the configuration is made)."""
        if self.filter not in ("ramp", "sirt"):
            raise ConfigError(f"filter must be 'ramp' or 'sirt', got {self.filter!r}")
        number(self.cutoff, "cutoff", "cycles/pixel", gt=0, le=0.5)
        number(self.falloff, "falloff", "cycles/pixel", ge=0)
        number(self.sirt_iterations, "sirt_iterations", integer=True, ge=1)
        if self.thickness is not None:
            number(self.thickness, "thickness", "voxels", integer=True, ge=1)
        number(self.prior_max_angle, "prior_max_angle", "°", gt=0, lt=90)
        number(self.prior_step, "prior_step", "°", gt=0, lt=90)
        if self.ctf_correction not in ("none", "phase-flip"):
            raise ConfigError(f"ctf_correction must be 'none' or 'phase-flip', got "
                              f"{self.ctf_correction!r}")


def radial_filter(n: int, cutoff: float | None = 0.35, falloff: float = 0.035) -> np.ndarray:
    """IMOD's radial weighting on the ``rfft`` frequencies of length ``n``: ramp ``|k|`` up to
    ``cutoff`` (cycles/pixel), Gaussian fall-off of width ``falloff`` beyond (None: plain
    ramp). The zero frequency gets a quarter of the first bin's weight, as a discrete ramp
    filter's DC term should."""
    k = frequency_grid((n,))
    w = k.copy()
    w[0] = 0.25 / n
    if cutoff is not None:
        beyond = k > cutoff
        w[beyond] *= np.exp(-(((k[beyond] - cutoff) / max(falloff, 1e-9)) ** 2))
    return w


def sirt_like_filter(n: int, iterations: int = 10, cutoff: float | None = 0.35,
                     falloff: float = 0.035) -> np.ndarray:
    """The SIRT-like filter ``|k|·(1 − (1 − k₀/|k|)ⁿ)`` (k₀ = 1/n), times the radial fall-off."""
    k = frequency_grid((n,))
    k0 = 1.0 / n
    w = radial_filter(n, cutoff, falloff)
    safe = np.maximum(k, k0)
    w[1:] *= 1 - (1 - k0 / safe[1:]) ** iterations
    return w


def filter_projections(images: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Filter each row (along x) of (n, y, x) images by ``weights`` on the rfft grid of the
    zero-padded length (2·x); returns the unpadded filtered images."""
    nx = images.shape[-1]
    padded = np.zeros((*images.shape[:-1], 2 * nx), np.float32)
    padded[..., :nx] = images
    spec = fft.rfft(padded, axis=-1, workers=-1)
    spec *= np.asarray(weights, np.float32)
    return fft.irfft(spec, n=2 * nx, axis=-1, workers=-1)[..., :nx].astype(np.float32)


def _angle_weights(angles: np.ndarray) -> np.ndarray:
    """Angular spacing (radians) each view stands for (half-gaps on either side)."""
    theta = np.radians(np.asarray(angles, dtype=np.float64))
    order = np.argsort(theta)
    s = theta[order]
    if len(s) == 1:
        return np.array([np.pi])
    gaps = np.diff(s)
    w = np.empty_like(s)
    w[1:-1] = (gaps[:-1] + gaps[1:]) / 2
    w[0], w[-1] = gaps[0], gaps[-1]
    out = np.empty_like(w)
    out[order] = w
    return out


def backproject(images: np.ndarray, angles: Sequence[float], thickness: int,
                weights: np.ndarray | None = None, radial: np.ndarray | None = None,
                chunk: int = 32, use_gpu: bool | None = None, out: np.ndarray | None = None
                ) -> np.ndarray:
    """Back-project (n, y, x) images into a (thickness, y, x) volume: the transpose of
    :func:`~cryolab.tomo.microscope.project`, each view scaled by ``weights`` (default 1) and,
    when given, filtered first by ``radial`` (see :func:`filter_projections`); tilts are
    processed ``chunk`` at a time, and each group of tilts a slab of y rows at a time (every
    row along the tilt axis y is its own 2D problem), so the only whole-volume array is the
    result. With ``out`` the views are added to it (float32, (thickness, y, x)) instead."""
    n, ny, nx = images.shape
    weights = np.ones(n) if weights is None else np.asarray(weights)
    device = _torch_device(use_gpu)
    if out is None:
        out = np.zeros((thickness, ny, nx), np.float32)
    for s in range(0, n, chunk):
        sel = slice(s, min(s + chunk, n))
        a = projection_matrix(thickness, nx, list(np.asarray(angles)[sel]), nx)
        scale = weights[sel, None, None].astype(np.float32)
        rows = _slab_rows(ny, (min(s + chunk, n) - s) * nx, device)
        for y in range(0, ny, rows):
            ys = slice(y, min(y + rows, ny))
            part = images[sel, ys] if radial is None else filter_projections(images[sel, ys],
                                                                             radial)
            cols = (part * scale).transpose(0, 2, 1)  # (tilts, x, y rows)
            k = cols.shape[-1]
            back = _sparse_matmul(a, cols.reshape(-1, k), True, device)  # (thickness·x, rows)
            out[:, ys, :] += back.reshape(thickness, nx, k).transpose(0, 2, 1)
    return out


def weighted_backprojection(
    images: np.ndarray,
    angles: Sequence[float],
    thickness: int,
    filter: str = "ramp",
    cutoff: float | None = 0.35,
    falloff: float = 0.035,
    sirt_iterations: int = 10,
    use_gpu: bool | None = None,
) -> np.ndarray:
    """Weighted back-projection of a tilt series (n, y, x) at ``angles`` (degrees) into a
    (thickness, y, x) tomogram. Each view is weighted by the angular gap it covers, so that
    a full ±90° series of a slice reproduces its values (filtered back-projection).

    Examples:
        >>> import numpy as np
        >>> from cryolab.tomo.microscope import project
        >>> from cryolab.tomo.reconstruct import weighted_backprojection
        >>> slab = np.zeros((16, 4, 16), np.float32)
        >>> slab[6:10, :, 6:10] = 1.0
        >>> angles = np.arange(-89.0, 90.0, 1.0)
        >>> tomogram = weighted_backprojection(project(slab, angles), angles, 16, cutoff=None)
        >>> bool(tomogram[8, 2, 8] > 0.8 and abs(tomogram[1, 2, 1]) < 0.1)   # back where it was
        True
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[0] != len(angles):
        raise ConfigError(f"tilt series of shape {images.shape} does not match "
                          f"{len(angles)} angles")
    nx = images.shape[-1]
    if filter == "ramp":
        w = radial_filter(2 * nx, cutoff, falloff)
    elif filter == "sirt":
        w = sirt_like_filter(2 * nx, sirt_iterations, cutoff, falloff)
    else:
        raise ConfigError(f"unknown filter {filter!r}; use 'ramp' or 'sirt'")
    return backproject(images, angles, thickness, _angle_weights(np.asarray(angles)), w,
                       use_gpu=use_gpu)


def phase_flip(images: np.ndarray, angles: Sequence[float], pixel_size: float,
               microscope: MicroscopeConfig) -> np.ndarray:
    """CTF correction by phase flipping: each (y, x) image of a tilt series (n, y, x) at
    ``angles`` (degrees) filtered by ``−sign(CTF)`` of the ``microscope`` settings (defocus in
    µm at the tilt axis, its gradient across x, phase plate), via
    :func:`~cryolab.tomo.microscope.apply_ctf` with ``flip=True``; ``pixel_size`` in Å."""
    m = microscope
    step = m.strip_defocus_step
    return np.stack([
        apply_ctf(image, pixel_size, m.defocus_um, float(angle) if step else 0.0, step or 1.0,
                  flip=True, voltage=m.voltage_kv, cs=m.cs_mm,
                  amplitude_contrast=m.amplitude_contrast, envelope=None,
                  convention=m.ctf_convention, phase_shift=m.phase_shift_deg)
        for image, angle in zip(np.asarray(images, np.float32), angles, strict=True)
    ])


def reconstruct_tilt_series(images: np.ndarray, angles: Sequence[float], thickness: int,
                            config: ReconstructionConfig | None = None,
                            use_gpu: bool | None = None, pixel_size: float | None = None,
                            microscope: MicroscopeConfig | None = None,
                            overwrite: bool = False) -> np.ndarray:
    """The tomogram of a detected tilt series (n, y, x): each image is normalised to its mean
    (``I / mean(I) − 1``, the contrast), phase-flipped when ``config.ctf_correction`` asks
    for it (:func:`phase_flip`, which needs ``pixel_size`` in Å and the ``microscope``) and
    reconstructed by :func:`weighted_backprojection` with the settings of ``config`` into
    (thickness, y, x). With ``overwrite`` the contrast is computed in place of ``images``
    (float32), which saves a copy of the series."""
    rc = ReconstructionConfig() if config is None else config
    images = np.asarray(images)
    mean = images.mean(axis=(1, 2), keepdims=True)
    contrast = np.divide(images, mean, out=images if overwrite else None)
    contrast -= 1
    if rc.ctf_correction == "phase-flip":
        if pixel_size is None or microscope is None:
            raise ConfigError("phase flipping needs the pixel size and the microscope settings")
        contrast = phase_flip(contrast, angles, pixel_size, microscope)
    return weighted_backprojection(contrast, angles, thickness, rc.filter, rc.cutoff,
                                   rc.falloff, rc.sirt_iterations, use_gpu=use_gpu)


def ideal_reconstruction(potential: np.ndarray, max_angle: float = 89.0, step: float = 1.0,
                         thickness: int | None = None, use_gpu: bool | None = None
                         ) -> np.ndarray:
    """The noise-free prior: WBP of contrast-inverted projections (−ray sums) at
    −max_angle..+max_angle in ``step`` increments, without CTF, noise or damage, in the
    potential's units (atomic-number sums per voxel, mean removed, sign inverted). The
    views are projected and back-projected 32 at a time, so the series is never held whole."""
    n = int(round(max_angle / step))
    angles = step * np.arange(-n, n + 1)
    thickness = potential.shape[0] if thickness is None else thickness
    weights = _angle_weights(angles)
    ramp = radial_filter(2 * potential.shape[-1], None)
    out = np.zeros((thickness, *potential.shape[1:]), np.float32)
    chunk = 32  # tilts projected and back-projected together: never the whole series at once
    for s in range(0, len(angles), chunk):
        sums = project(potential, angles[s:s + chunk], chunk=chunk, use_gpu=use_gpu)
        sums -= sums.mean(axis=(1, 2), keepdims=True)
        np.negative(sums, out=sums)
        backproject(sums, angles[s:s + chunk], thickness, weights[s:s + chunk], ramp,
                    chunk=chunk, use_gpu=use_gpu, out=out)
        del sums  # before the next group is projected: one group's views held at a time
    return out


def measured_tilt_range(volume: np.ndarray, threshold: float = 0.1) -> float:
    """The tilt range (degrees) seen in a (z, y, x) tomogram: the angle of the first frequency
    direction (scanning up from the k_x axis in 2° bins of
    :func:`cryolab.fourier.angular_energy`) whose Fourier energy falls below ``threshold`` ×
    the median energy of the well-sampled directions (< 20°); 90 if none does."""
    angle, energy = angular_energy(volume, bins=45)
    ref = np.median(energy[angle < 20])
    low = np.nonzero((energy < threshold * ref) & (angle >= 20))[0]
    return float(angle[low[0]] - 1.0) if len(low) else 90.0
