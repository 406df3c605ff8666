"""Fourier space: frequency grids, radial and shell averages, and filters — the one place for them.

Every map, image and tomogram in cryolab is an array in (z, y, x) order with a voxel size in Å
per axis; its discrete Fourier transform lives on a grid of spatial frequencies ``k`` in 1/Å.
This module builds that grid once (:func:`frequency_grid`) and everything that reads or
changes a spectrum uses it:

* grids: :func:`frequency_grid` (``|k|`` on the full or the ``rfftn`` half spectrum) and
  :func:`friedel_weights` (how many Fourier voxels each ``rfftn`` column stands for);
* shell averages over a whole box: :func:`shell_index` and :func:`shell_sums` (one shell per
  Fourier voxel of the longest edge, up to Nyquist; :func:`cryolab.metrics.fsc`,
  :func:`cryolab.sharpen.radial_amplitude`), :func:`radial_power_spectrum` (a windowed 2D
  image, linear bins up to Nyquist) and :func:`radial_average` (one bin per Fourier pixel);
* filters: :func:`fourier_filter` (multiply a map's transform by any radial ``H(|k|)``;
  :func:`filter_volume` on a :class:`~cryolab.io.Volume`) and
  :func:`raised_cosine` (the smooth low-pass edge both :func:`cryolab.degrade.lowpass` and
  :func:`cryolab.sharpen.apply_bfactor` use);
* spectra of tomograms: :func:`central_section` and :func:`angular_energy` (Fourier energy
  against direction, where the missing wedge shows).

Examples:
    >>> import numpy as np
    >>> from cryolab.fourier import frequency_grid
    >>> k = frequency_grid((4, 4, 4), 2.0)     # rfftn half spectrum of a 4³ box of 2 Å voxels
    >>> k.shape
    (4, 4, 3)
    >>> float(k[0, 0, 2])                       # Nyquist along x: 1 / (2 × 2 Å)
    0.25
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import fft

from .errors import ConfigError
from .io import Volume

__all__ = [
    "frequency_grid",
    "friedel_weights",
    "shell_index",
    "shell_sums",
    "fourier_filter",
    "filter_volume",
    "raised_cosine",
    "radial_power_spectrum",
    "radial_average",
    "central_section",
    "angular_energy",
]

FloatArray = NDArray[np.float64]


def _spacing(voxel_size: float | Sequence[float], ndim: int) -> np.ndarray:
    """A scalar or per-axis voxel size (Å) as ``ndim`` positive numbers."""
    arr = np.asarray(voxel_size, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ConfigError(f"voxel size must be a positive number or {ndim} positive numbers, "
                          f"got {voxel_size}")
    return arr


def frequency_grid(shape: Sequence[int], voxel_size: float | Sequence[float] = 1.0,
                   half: bool = True) -> FloatArray:
    """``|k|`` in 1/Å at every Fourier voxel of an array of ``shape``.

    Args:
        shape: the array's shape, (z, y, x) or (y, x).
        voxel_size: Å per voxel, a scalar or one per axis (1 gives cycles per voxel).
        half: the ``numpy.fft.rfftn`` half spectrum (last axis ``n // 2 + 1`` long); False for
            the full ``fftn`` grid.

    Returns:
        float64 array of the spectrum's shape.
    """
    shape = tuple(int(n) for n in shape)
    spacing = _spacing(voxel_size, len(shape))
    freqs = [np.fft.fftfreq(n, d) for n, d in zip(shape[:-1], spacing[:-1], strict=True)]
    last = np.fft.rfftfreq if half else np.fft.fftfreq
    freqs.append(last(shape[-1], spacing[-1]))
    grids = np.meshgrid(*freqs, indexing="ij", sparse=True)
    return np.sqrt(sum(g**2 for g in grids))


def friedel_weights(shape: Sequence[int]) -> FloatArray:
    """Weight of each ``rfftn`` column: 2 for a column that also stands for its Friedel mate,
    1 for column 0 and (even ``n``) the Nyquist column; broadcastable to the half spectrum."""
    n = int(shape[-1])
    weight = np.full(n // 2 + 1, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    return weight


def shell_index(shape: Sequence[int], voxel_size: float | Sequence[float]
                ) -> tuple[NDArray[np.int64], int, float]:
    """Fourier shell of every voxel of the ``rfftn`` half spectrum.

    Shells are ``1 / L`` wide, ``L`` the longest box edge in Å (one Fourier voxel on a cubic
    grid); shell ``i`` holds ``|k|`` in ``[(i − ½)/L, (i + ½)/L)``. Shells stop at the Nyquist
    frequency of the coarsest axis.

    Returns:
        ``(shell of each voxel, number of shells up to Nyquist, shell width in 1/Å)``.
    """
    spacing = _spacing(voxel_size, len(shape))
    width = 1.0 / float(np.max(np.asarray(shape) * spacing))
    shell = np.rint(frequency_grid(shape, spacing) / width).astype(np.int64)
    nyquist = 1.0 / (2.0 * float(spacing.max()))
    return shell, int(np.floor(nyquist / width + 1e-9)) + 1, width


def shell_sums(values: Sequence[np.ndarray], shape: Sequence[int],
               voxel_size: float | Sequence[float]) -> tuple[list[FloatArray], FloatArray,
                                                             FloatArray]:
    """Sums over the Fourier shells of :func:`shell_index` of arrays on the ``rfftn`` half
    spectrum of a real array of ``shape``, each column weighted by :func:`friedel_weights` so
    that sums and counts equal those over the full transform.

    Returns:
        ``(one array of shell sums per input, number of Fourier voxels per shell, shell
        centres in 1/Å)``, shells from 0 to Nyquist.
    """
    shell, n_shells, width = shell_index(shape, voxel_size)
    weight = np.broadcast_to(friedel_weights(shape), shell.shape)
    keep = shell < n_shells
    bins = shell[keep]

    def total(v: np.ndarray) -> FloatArray:
        return np.bincount(bins, weights=(v * weight)[keep], minlength=n_shells)

    return [total(v) for v in values], total(np.ones(shell.shape)), np.arange(n_shells) * width


def fourier_filter(data: np.ndarray, transfer: Callable[[np.ndarray], np.ndarray],
                   voxel_size: float | Sequence[float] = 1.0) -> FloatArray:
    """Multiply an array's Fourier transform by ``transfer(|k|)`` (``|k|`` in 1/Å) and return
    the real result (float64, same shape); voxel sizes may differ per axis."""
    data = np.asarray(data)
    k = frequency_grid(data.shape, voxel_size)
    spectrum = np.fft.rfftn(data.astype(np.float64))
    return np.fft.irfftn(spectrum * transfer(k), s=data.shape, axes=tuple(range(data.ndim)))


def filter_volume(volume: Volume, transfer: Callable[[np.ndarray], np.ndarray]) -> Volume:
    """:func:`fourier_filter` of a map on its own grid (its voxel sizes; float32 out)."""
    out = fourier_filter(volume.data, transfer, volume.voxel_size)
    return volume.with_data(out.astype(np.float32))


def raised_cosine(k: np.ndarray, start: float, width: float) -> FloatArray:
    """A low-pass edge: 1 up to ``start``, ``½(1 + cos(π t))`` over ``width`` beyond it
    (``t`` from 0 to 1), 0 after; ``width = 0`` is a hard cut (1 where ``k <= start``).
    Frequencies in 1/Å."""
    k = np.asarray(k, dtype=np.float64)
    if width == 0:
        return (k <= start).astype(np.float64)
    t = np.clip((k - start) / width, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def radial_power_spectrum(image: np.ndarray, pixel_size: float, bins: int | None = None
                          ) -> tuple[FloatArray, FloatArray]:
    """Rotationally averaged power spectrum of a 2D image: ``(k in 1/Å, mean |F|²)``.

    The image is z-scored and multiplied by a Hann window before the transform (so the box
    edges add no cross); ``bins`` equal bins from 0 to Nyquist (default half the shorter
    side). Averages are over the full ``fft2`` grid.
    """
    from .normalise import zscore

    img = zscore(np.asarray(image, dtype=np.float64), eps=1e-12)
    window = np.outer(np.hanning(img.shape[0]), np.hanning(img.shape[1]))
    power = np.abs(fft.fft2(img * window)) ** 2
    k = frequency_grid(img.shape, pixel_size, half=False)
    nyq = 0.5 / pixel_size
    bins = bins or min(img.shape) // 2
    edges = np.linspace(0, nyq, bins + 1)
    idx = np.digitize(k.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < bins)
    total = np.bincount(idx[ok], weights=power.ravel()[ok], minlength=bins)
    count = np.bincount(idx[ok], minlength=bins)
    return (edges[:-1] + edges[1:]) / 2, total / np.maximum(count, 1)


def radial_average(power: np.ndarray, pixel_size: float) -> tuple[FloatArray, FloatArray]:
    """Rotational average of an uncentred 2D spectrum (``fft2`` order), one bin per Fourier
    pixel of the first axis, up to Nyquist: ``(k in 1/Å, mean value)``."""
    n = power.shape[0]
    k = frequency_grid(power.shape, pixel_size, half=False)
    r = np.rint(k * n * pixel_size).astype(int)
    total = np.bincount(r.ravel(), weights=power.ravel())
    count = np.bincount(r.ravel())
    keep = slice(0, n // 2)
    return np.arange(n // 2) / (n * pixel_size), (total / np.maximum(count, 1))[keep]


def central_section(volume: np.ndarray, plane: str = "xz") -> FloatArray:
    """``log(1 + |F| / mean)`` of a central section of a (z, y, x) volume's 3D transform,
    centred: ``"xz"`` (k_y = 0), where a tomogram's missing wedge shows as two empty sectors
    about k_z, or ``"xy"`` (k_z = 0), the in-plane spectrum."""
    f = np.abs(np.fft.fftshift(np.fft.fftn(volume - volume.mean())))
    nz, ny, nx = f.shape
    section = f[:, ny // 2, :] if plane == "xz" else f[nz // 2]
    return np.log1p(section / (section.mean() + 1e-12))


def angular_energy(volume: np.ndarray, bins: int = 90, band: tuple[float, float] = (0.05, 0.45)
                   ) -> tuple[FloatArray, FloatArray]:
    """Fourier energy of a (z, y, x) volume in the (k_x, k_z) plane against the angle of the
    frequency direction from the k_x axis (degrees, 0–90, ``bins`` bins), summed over y and
    averaged over ``|k|`` in ``band`` (cycles per voxel). The volume is z-scored first.

    For a tomogram tilted about y to ±θ, directions up to θ hold energy and the missing wedge
    is the empty band above it.
    """
    from .normalise import zscore

    vol = zscore(np.asarray(volume, dtype=np.float64), eps=1e-12)
    plane = (np.abs(fft.fftn(vol)) ** 2).sum(axis=1)  # (kz, kx)
    kz = np.fft.fftfreq(vol.shape[0])[:, None]
    kx = np.fft.fftfreq(vol.shape[2])[None, :]
    k = np.sqrt(kz**2 + kx**2)
    angle = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))
    ok = (k > band[0]) & (k < band[1])
    edges = np.linspace(0, 90, bins + 1)
    idx = np.clip(np.digitize(angle[ok], edges) - 1, 0, bins - 1)
    total = np.bincount(idx, weights=plane[ok], minlength=bins)
    count = np.bincount(idx, minlength=bins)
    return (edges[:-1] + edges[1:]) / 2, total / np.maximum(count, 1)
