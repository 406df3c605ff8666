"""Map and volume comparison metrics used throughout the course.

Every function takes numpy arrays with axis order ``(z, y, x)`` and lengths in ångström (Å).
Bad input (shapes that differ, NaN or infinite values, an empty mask, an impossible option)
raises :class:`~cryolab.errors.ConfigError` or :class:`~cryolab.errors.FormatError` with a
one-line message instead of silently returning ``nan``.

Groups of metrics:

* correlation: :func:`pcc`, :func:`rscc`, :func:`chimerax_correlation` (with
  :func:`contour_level`) and the model mask :func:`model_mask`;
* image similarity: :func:`ssim` and :func:`psnr`, which reproduce scikit-image;
* resolution: :func:`fsc` (returning an :class:`FSCCurve`) and :func:`fsc_resolution`;
* segmentation overlap: :func:`dice` and :func:`iou`;
* preprocessing: :func:`threshold_percentile` and :func:`struc2map_preprocess`
  (rescaling itself lives in :mod:`cryolab.normalise`);
* comparing estimates: :func:`calibrate` (least-squares ``a·x + b`` onto a reference) and
  :func:`confusion_matrix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from cryolab import fourier
from cryolab.errors import ConfigError, FormatError
from cryolab.normalise import minmax

__all__ = [
    "FSCCurve",
    "calibrate",
    "confusion_matrix",
    "chimerax_correlation",
    "contour_level",
    "dice",
    "fsc",
    "fsc_resolution",
    "iou",
    "model_mask",
    "pcc",
    "psnr",
    "rscc",
    "ssim",
    "struc2map_preprocess",
    "threshold_percentile",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Radius of the Gaussian window in standard deviations, as in scikit-image's SSIM.
_SSIM_GAUSSIAN_TRUNCATE = 3.5


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _finite_array(a: ArrayLike, name: str) -> FloatArray:
    """Return ``a`` as a float64 array, raising FormatError if it holds NaN or inf."""
    arr = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise FormatError(f"{name} contains NaN or infinite values; clean the map first")
    return arr


def _finite_pair(
    a: ArrayLike, b: ArrayLike, names: tuple[str, str]
) -> tuple[FloatArray, FloatArray]:
    """Return two finite float64 arrays of the same shape, or raise."""
    arr_a = _finite_array(a, names[0])
    arr_b = _finite_array(b, names[1])
    if arr_a.shape != arr_b.shape:
        raise ConfigError(
            f"{names[0]} has shape {arr_a.shape} but {names[1]} has shape {arr_b.shape}; "
            "resample them onto the same grid"
        )
    if arr_a.size == 0:
        raise ConfigError(f"{names[0]} and {names[1]} are empty")
    return arr_a, arr_b


def _bool_volume(a: ArrayLike, name: str) -> BoolArray:
    """Return ``a`` as a boolean array, raising ConfigError for any other dtype."""
    arr = np.asarray(a)
    if arr.dtype != np.bool_:
        raise ConfigError(f"{name} must be a boolean array, got dtype {arr.dtype}")
    return arr


def _mask_for(mask: ArrayLike, shape: tuple[int, ...]) -> BoolArray:
    """Return a non-empty boolean mask of the given shape, or raise ConfigError."""
    arr = _bool_volume(mask, "mask")
    if arr.shape != shape:
        raise ConfigError(f"mask has shape {arr.shape} but the maps have shape {shape}")
    if not arr.any():
        raise ConfigError("mask selects no voxels")
    return arr


def _per_axis(value: float | Sequence[float], ndim: int, name: str) -> FloatArray:
    """Broadcast a scalar or per-axis (z, y, x) length in Å to ``ndim`` positive values."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ConfigError(f"{name} must be a positive number or {ndim} positive numbers (z, y, x)")
    return arr


# --------------------------------------------------------------------------------------------
# Correlation
# --------------------------------------------------------------------------------------------


def pcc(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Pearson correlation coefficient between two maps.

    Args:
        a: First map, any shape (density in arbitrary units).
        b: Second map, same shape as ``a``.
        mask: Optional boolean array of the same shape; only voxels where it is True are used.

    Returns:
        The correlation in [-1, 1] (dimensionless).

    Raises:
        ConfigError: shapes differ, the mask is empty or not boolean, or either map is constant
            over the selected voxels (the correlation is undefined).
        FormatError: either map contains NaN or inf.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import pcc
        >>> a = np.arange(8.0).reshape(2, 2, 2)
        >>> pcc(a, 3 * a + 1), pcc(a, -a)
        (1.0, -1.0)
    """
    arr_a, arr_b = _finite_pair(a, b, ("a", "b"))
    if mask is not None:
        selected = _mask_for(mask, arr_a.shape)
        arr_a, arr_b = arr_a[selected], arr_b[selected]
    da = arr_a - arr_a.mean()
    db = arr_b - arr_b.mean()
    norm = np.sqrt(np.sum(da * da) * np.sum(db * db))
    if norm == 0:
        raise ConfigError("pcc is undefined: a map is constant over the selected voxels")
    return float(np.sum(da * db) / norm)


def rscc(a: ArrayLike, b: ArrayLike, mask: ArrayLike) -> float:
    """Real-space correlation coefficient (Phenix's CC_mask) within a mask.

    This is the Pearson correlation of the voxels inside ``mask``, typically a
    :func:`model_mask` around the atoms of a model, between an experimental map and a map
    simulated from that model.

    Args:
        a: First map (arbitrary units), axis order (z, y, x).
        b: Second map on the same grid.
        mask: Boolean array of the same shape selecting the voxels to compare.

    Returns:
        The correlation in [-1, 1] (dimensionless).

    Raises:
        ConfigError: shapes differ, the mask is empty or not boolean, or a map is constant in
            the mask.
        FormatError: either map contains NaN or inf.
    """
    return pcc(a, b, mask)


def contour_level(reference: ArrayLike, fraction: float = 0.01) -> float:
    """Density value exceeded by a given fraction of the voxels of a map.

    Args:
        reference: Map (arbitrary units).
        fraction: Fraction of voxels, in (0, 1), that should lie above the returned level.

    Returns:
        The ``1 - fraction`` quantile of the map values (same units as the map).

    Raises:
        ConfigError: ``fraction`` is outside (0, 1) or the map is empty.
        FormatError: the map contains NaN or inf.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction must lie in (0, 1), got {fraction}")
    arr = _finite_array(reference, "reference")
    if arr.size == 0:
        raise ConfigError("reference is empty")
    return float(np.quantile(arr, 1.0 - fraction))


def chimerax_correlation(
    map_values: ArrayLike,
    reference: ArrayLike,
    level: float | None = None,
    about_mean: bool = False,
) -> float:
    """Correlation as reported by ChimeraX ``measure correlation`` / ``fitmap``.

    The voxels used are those where ``reference`` is strictly above ``level`` (its contour
    level). With ``u`` the values of ``map_values`` and ``v`` those of ``reference`` at these
    voxels, the plain correlation is ``<u, v> / (|u| |v|)``; with ``about_mean=True`` the means
    of ``u`` and ``v`` over those voxels are subtracted first. Both maps must already lie on the
    same grid (ChimeraX would interpolate; here no interpolation is done). As in ChimeraX, a
    zero denominator gives a correlation of 0.

    Args:
        map_values: Map being compared (arbitrary units), axis order (z, y, x).
        reference: Map whose contour selects the voxels, same shape.
        level: Contour level of ``reference``; ``None`` uses
            ``contour_level(reference, fraction=0.01)``, the value exceeded by 1 % of voxels.
        about_mean: Subtract the means over the selected voxels before correlating.

    Returns:
        The correlation in [-1, 1] (dimensionless).

    Raises:
        ConfigError: shapes differ or no reference voxel lies above ``level``.
        FormatError: either map contains NaN or inf.
    """
    u_map, v_map = _finite_pair(map_values, reference, ("map_values", "reference"))
    threshold = contour_level(v_map) if level is None else float(level)
    above = v_map > threshold
    if not above.any():
        raise ConfigError(f"no reference voxel lies above the contour level {threshold:g}")
    u, v = u_map[above], v_map[above]
    if about_mean:
        u = u - u.mean()
        v = v - v.mean()
    norm = np.sqrt(np.dot(u, u) * np.dot(v, v))
    return float(np.dot(u, v) / norm) if norm > 0 else 0.0


def model_mask(
    shape: Sequence[int],
    voxel_size: float | Sequence[float],
    origin: Sequence[float],
    xyz: ArrayLike,
    radius: float,
) -> BoolArray:
    """Boolean mask of the voxels within ``radius`` Å of any atom.

    Each atom is assigned to the voxel whose centre is nearest to it; the Euclidean distance
    transform (with ``sampling=voxel_size``, so anisotropic voxels are handled) then gives every
    voxel's distance to the nearest such atom voxel centre. Distances are therefore measured
    between voxel centres, an approximation of at most half a voxel diagonal. Atoms whose
    nearest voxel lies outside the box are ignored.

    Args:
        shape: Grid shape (nz, ny, nx).
        voxel_size: Voxel size in Å, a scalar or (z, y, x).
        origin: World position in Å of the centre of voxel [0, 0, 0], in (z, y, x) order.
        xyz: Atom coordinates in Å, shape (N, 3), in (x, y, z) order as in PDB/mmCIF files.
        radius: Mask radius around each atom in Å.

    Returns:
        Boolean array of the given shape; all False if no atom lies in the box.

    Raises:
        ConfigError: bad shape, voxel size, origin, radius or coordinate array shape.
        FormatError: coordinates contain NaN or inf.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import model_mask
        >>> mask = model_mask((5, 5, 5), 1.0, (0.0, 0.0, 0.0), np.array([[2.0, 2.0, 2.0]]), 1.0)
        >>> int(mask.sum())      # the atom's voxel and its six neighbours
        7
    """
    grid_shape = tuple(int(n) for n in shape)
    if len(grid_shape) != 3 or min(grid_shape) < 1:
        raise ConfigError(f"shape must be three positive integers (z, y, x), got {shape}")
    spacing = _per_axis(voxel_size, 3, "voxel_size")
    start = np.asarray(origin, dtype=np.float64)
    if start.shape != (3,) or not np.all(np.isfinite(start)):
        raise ConfigError(f"origin must be three finite numbers (z, y, x) in Å, got {origin}")
    if not radius > 0:
        raise ConfigError(f"radius must be positive (Å), got {radius}")
    coords = _finite_array(xyz, "xyz")
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ConfigError(f"xyz must have shape (N, 3) in (x, y, z) order, got {coords.shape}")

    index = np.rint((coords[:, ::-1] - start) / spacing).astype(np.int64)
    inside = np.all((index >= 0) & (index < np.asarray(grid_shape)), axis=1)
    atom_voxels = np.zeros(grid_shape, dtype=bool)
    atom_voxels[tuple(index[inside].T)] = True
    if not atom_voxels.any():
        return atom_voxels
    distance = ndimage.distance_transform_edt(~atom_voxels, sampling=spacing)
    return distance <= radius


# --------------------------------------------------------------------------------------------
# Image similarity
# --------------------------------------------------------------------------------------------


def _joint_data_range(a: FloatArray, b: FloatArray) -> float:
    """Range spanned by the values of both arrays, ``max(a, b) - min(a, b)``."""
    return float(max(a.max(), b.max()) - min(a.min(), b.min()))


def ssim(
    a: ArrayLike,
    b: ArrayLike,
    data_range: float | None = None,
    win_size: int | None = None,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    use_sample_covariance: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Mean structural similarity index of two 2D images or 3D maps.

    A hand-written copy of ``skimage.metrics.structural_similarity`` (same defaults, same
    result to rounding): local means, variances and covariance come from a uniform filter over
    ``win_size``-wide windows (or a Gaussian of width ``sigma`` truncated at 3.5 sigma), with
    the sample-covariance factor ``NP / (NP - 1)`` (``NP = win_size ** ndim``) unless
    ``use_sample_covariance`` is False; the SSIM map is averaged after cropping
    ``(win_size - 1) // 2`` voxels from every border. Filters use ``mode="reflect"``.

    To reproduce Wang et al. (2004) use ``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False``.

    Args:
        a: First image/map (arbitrary units), 2D (y, x) or 3D (z, y, x).
        b: Second image/map, same shape.
        data_range: Dynamic range of the data (same units as the maps), setting the stabilising
            constants ``C1 = (k1 * data_range)**2`` and ``C2 = (k2 * data_range)**2``.
            ``None`` uses the range spanned by both inputs together,
            ``max(a.max(), b.max()) - min(a.min(), b.min())``: scikit-image refuses to guess
            for float data, and the joint range is symmetric in ``a`` and ``b``. Pass it
            explicitly to compare scores across maps.
        win_size: Odd window width in voxels; ``None`` gives 7 for the uniform window and
            ``2 * int(3.5 * sigma + 0.5) + 1`` (11 for sigma 1.5) for the Gaussian one.
        gaussian_weights: Weight each window with a Gaussian instead of uniformly.
        sigma: Standard deviation of the Gaussian window in voxels.
        use_sample_covariance: Normalise (co)variances by ``NP - 1`` instead of ``NP``.
        k1: Luminance stabilising constant (dimensionless).
        k2: Contrast stabilising constant (dimensionless).

    Returns:
        The mean SSIM (dimensionless, at most 1).

    Raises:
        ConfigError: shapes differ, the arrays are not 2D/3D, the window is even or larger than
            the image, the constants are negative or the data range is not positive.
        FormatError: either array contains NaN or inf.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import ssim
        >>> a = np.random.default_rng(0).random((16, 16))
        >>> ssim(a, a)
        1.0
        >>> bool(ssim(a, a + 0.1 * np.random.default_rng(1).random((16, 16))) < 1)
        True
    """
    im1, im2 = _finite_pair(a, b, ("a", "b"))
    if im1.ndim not in (2, 3):
        raise ConfigError(f"ssim needs 2D or 3D arrays, got {im1.ndim} dimensions")
    if k1 < 0 or k2 < 0 or sigma <= 0:
        raise ConfigError("ssim needs k1 >= 0, k2 >= 0 and sigma > 0")
    if win_size is None:
        radius = int(_SSIM_GAUSSIAN_TRUNCATE * sigma + 0.5)
        win_size = 2 * radius + 1 if gaussian_weights else 7
    if win_size % 2 != 1 or win_size > min(im1.shape):
        raise ConfigError(
            f"win_size must be odd and at most the smallest side {min(im1.shape)}, got {win_size}"
        )
    value_range = _joint_data_range(im1, im2) if data_range is None else float(data_range)
    if not value_range > 0:
        raise ConfigError(f"data_range must be positive, got {value_range:g}")

    def local_mean(x: FloatArray) -> FloatArray:
        if gaussian_weights:
            return ndimage.gaussian_filter(
                x, sigma=sigma, truncate=_SSIM_GAUSSIAN_TRUNCATE, mode="reflect"
            )
        return ndimage.uniform_filter(x, size=win_size)

    n_window = win_size**im1.ndim
    cov_norm = n_window / (n_window - 1) if use_sample_covariance else 1.0
    ux, uy = local_mean(im1), local_mean(im2)
    vx = cov_norm * (local_mean(im1 * im1) - ux * ux)
    vy = cov_norm * (local_mean(im2 * im2) - uy * uy)
    vxy = cov_norm * (local_mean(im1 * im2) - ux * uy)

    c1 = (k1 * value_range) ** 2
    c2 = (k2 * value_range) ** 2
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win_size - 1) // 2
    interior = tuple(slice(pad, n - pad) for n in ssim_map.shape)
    return float(ssim_map[interior].mean(dtype=np.float64))


def psnr(estimate: ArrayLike, reference: ArrayLike, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio of an estimate against a reference, in dB.

    ``10 * log10(data_range**2 / MSE)``, equal to
    ``skimage.metrics.peak_signal_noise_ratio(reference, estimate, data_range=data_range)``.

    Args:
        estimate: Reconstructed map (arbitrary units).
        reference: Ground-truth map, same shape.
        data_range: Peak-to-peak range (same units as the maps); ``None`` uses
            ``reference.max() - reference.min()``.

    Returns:
        The PSNR in dB; ``inf`` when the two maps are identical.

    Raises:
        ConfigError: shapes differ or the data range is not positive.
        FormatError: either map contains NaN or inf.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import psnr
        >>> reference = np.array([0.0, 1.0, 0.0, 1.0])
        >>> round(psnr(reference + 0.1, reference), 3)      # 10·log10(1 / 0.01)
        20.0
    """
    est, ref = _finite_pair(estimate, reference, ("estimate", "reference"))
    value_range = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    if not value_range > 0:
        raise ConfigError(f"data_range must be positive, got {value_range:g}")
    mse = float(np.mean((ref - est) ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(value_range**2 / mse))


# --------------------------------------------------------------------------------------------
# Fourier shell correlation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FSCCurve:
    """Fourier shell correlation curve.

    Attributes:
        frequency: Shell centres in 1/Å, starting with the zero-frequency shell.
        correlation: FSC value of each shell (dimensionless); 0 where a map has no power.
        n_voxels: Number of Fourier voxels (full transform, both Friedel mates) in each shell.
        nyquist_resolution: Resolution at the Nyquist limit, 2 × the coarsest voxel size, in Å.
    """

    frequency: FloatArray
    correlation: FloatArray
    n_voxels: NDArray[np.int64]
    nyquist_resolution: float

    def resolution(self, threshold: float = 0.143) -> float:
        """Resolution in Å where the FSC first falls below ``threshold``.

        Shells are scanned from the first non-zero frequency. The crossing frequency is
        linearly interpolated between the last shell at or above the threshold and the first
        shell below it, and the resolution is its inverse. If the first non-zero shell is
        already below the threshold its frequency is used; if the curve never falls below the
        threshold the Nyquist resolution is returned.

        Args:
            threshold: FSC threshold in (0, 1): 0.143 for half maps (gold standard), 0.5 for a
                map against a model map.

        Returns:
            The resolution in Å.

        Raises:
            ConfigError: the threshold is outside (0, 1).
        """
        if not 0 < threshold < 1:
            raise ConfigError(f"FSC threshold must lie in (0, 1), got {threshold}")
        below = np.flatnonzero(self.correlation[1:] < threshold) + 1
        if below.size == 0:
            return self.nyquist_resolution
        i = int(below[0])
        if i == 1:
            return float(1.0 / self.frequency[1])
        c_hi, c_lo = self.correlation[i - 1], self.correlation[i]
        f_hi, f_lo = self.frequency[i - 1], self.frequency[i]
        crossing = f_hi + (c_hi - threshold) / (c_hi - c_lo) * (f_lo - f_hi)
        return float(1.0 / crossing)

    def resolution_05(self) -> float:
        """Resolution in Å at the FSC = 0.5 threshold (map against model map)."""
        return self.resolution(0.5)


def fsc(a: ArrayLike, b: ArrayLike, voxel_size: float | Sequence[float]) -> FSCCurve:
    """Fourier shell correlation between two maps on the same grid.

    For each shell, ``FSC = Re(sum F_a conj(F_b)) / sqrt(sum |F_a|^2 sum |F_b|^2)``. Shells
    are binned by physical spatial frequency ``|k|`` in 1/Å with width ``1 / L`` where ``L`` is
    the largest box extent in Å (``n * voxel_size`` along the longest axis); on a cubic grid
    this is one Fourier pixel. Shell ``i`` collects ``|k|`` in ``[(i - 0.5) / L, (i + 0.5) / L)``
    and shells stop at the Nyquist frequency of the coarsest axis, so corners beyond it are not
    used. The half-spectrum from ``numpy.fft.rfftn`` is weighted so that sums and voxel counts
    equal those over the full transform.

    Args:
        a: First map (e.g. half map 1), axis order (z, y, x).
        b: Second map, same shape.
        voxel_size: Voxel size in Å, a scalar or per axis (z, y, x).

    Returns:
        The :class:`FSCCurve`.

    Raises:
        ConfigError: shapes differ, fewer than two dimensions or a bad voxel size.
        FormatError: either map contains NaN or inf.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import fsc
        >>> a = np.random.default_rng(0).normal(size=(16, 16, 16))
        >>> curve = fsc(a, a, voxel_size=2.0)
        >>> round(float(curve.correlation.min()), 6), curve.resolution(0.143)  # same maps: Nyquist
        (1.0, 4.0)
    """
    map_a, map_b = _finite_pair(a, b, ("a", "b"))
    if map_a.ndim < 2:
        raise ConfigError(f"fsc needs 2D or 3D maps, got {map_a.ndim} dimension(s)")
    spacing = _per_axis(voxel_size, map_a.ndim, "voxel_size")
    fa, fb = np.fft.rfftn(map_a), np.fft.rfftn(map_b)
    (cross, power_a, power_b), counts, frequency = fourier.shell_sums(
        [np.real(fa * np.conj(fb)), np.abs(fa) ** 2, np.abs(fb) ** 2], map_a.shape, spacing)
    power = np.sqrt(power_a * power_b)
    nyquist = 1.0 / (2.0 * float(spacing.max()))  # 1/Å, of the coarsest axis
    correlation = np.divide(cross, power, out=np.zeros(len(cross)), where=power > 0)
    return FSCCurve(
        frequency=frequency,
        correlation=correlation,
        n_voxels=np.rint(counts).astype(np.int64),
        nyquist_resolution=1.0 / nyquist,
    )


def fsc_resolution(
    a: ArrayLike, b: ArrayLike, voxel_size: float | Sequence[float], threshold: float = 0.143
) -> float:
    """Resolution in Å at which the FSC of two maps first falls below ``threshold``.

    Shorthand for ``fsc(a, b, voxel_size).resolution(threshold)``; see :func:`fsc` and
    :meth:`FSCCurve.resolution`.
    """
    return fsc(a, b, voxel_size).resolution(threshold)


# --------------------------------------------------------------------------------------------
# Segmentation overlap
# --------------------------------------------------------------------------------------------


def _dice_of(pred: BoolArray, target: BoolArray) -> float:
    """Dice coefficient of two boolean arrays; 1.0 when both are empty."""
    total = int(pred.sum()) + int(target.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred & target)) / total


def dice(
    pred: ArrayLike, target: ArrayLike, labels: Sequence[int] | None = None
) -> float | dict[int, float]:
    """Dice coefficient ``2 |P ∩ T| / (|P| + |T|)`` of a predicted and a target segmentation.

    When both the prediction and the target are empty the two agree perfectly and the Dice
    coefficient is defined as 1.0 (rather than the undefined 0/0).

    Args:
        pred: Predicted segmentation: a boolean array, or an integer label array if ``labels``
            is given.
        target: Target segmentation of the same shape and kind.
        labels: Label values to score in integer label arrays; ``None`` means the inputs are
            boolean masks.

    Returns:
        A float in [0, 1] for boolean inputs, or a dict mapping each label to its Dice.

    Raises:
        ConfigError: shapes differ, boolean inputs were expected but other dtypes given, or
            label arrays are not integers.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import dice
        >>> dice(np.array([True, True, False]), np.array([True, False, False]))
        0.6666666666666666
        >>> dice(np.array([0, 1, 2]), np.array([0, 1, 1]), labels=[1, 2])
        {1: 0.6666666666666666, 2: 0.0}
    """
    p, t = np.asarray(pred), np.asarray(target)
    if p.shape != t.shape:
        raise ConfigError(f"pred has shape {p.shape} but target has shape {t.shape}")
    if labels is None:
        return _dice_of(_bool_volume(p, "pred"), _bool_volume(t, "target"))
    if not (np.issubdtype(p.dtype, np.integer) and np.issubdtype(t.dtype, np.integer)):
        raise ConfigError(f"label arrays must be integers, got {p.dtype} and {t.dtype}")
    return {int(label): _dice_of(p == label, t == label) for label in labels}


def iou(pred: ArrayLike, target: ArrayLike, threshold: float | None = None) -> float:
    """Intersection over union ``|P ∩ T| / |P ∪ T|`` of two occupancy volumes.

    If ``threshold`` is given, ``pred`` (e.g. occupancy probabilities) is binarised as
    ``pred >= threshold``, as Pix2Vox does (``torch.ge``). When both volumes are empty the IoU
    is defined as 1.0.

    Args:
        pred: Predicted volume: boolean, or real-valued if ``threshold`` is given.
        target: Boolean target volume of the same shape.
        threshold: Binarisation threshold for ``pred`` (same units as ``pred``).

    Returns:
        The IoU in [0, 1] (dimensionless).

    Raises:
        ConfigError: shapes differ or an input is not boolean where it must be.
        FormatError: ``pred`` contains NaN or inf when a threshold is given.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import iou
        >>> iou(np.array([0.9, 0.6, 0.1]), np.array([True, False, False]), threshold=0.5)
        0.5
    """
    if threshold is None:
        occupied = _bool_volume(pred, "pred")
    else:
        occupied = _finite_array(pred, "pred") >= threshold
    truth = _bool_volume(target, "target")
    if occupied.shape != truth.shape:
        raise ConfigError(f"pred has shape {occupied.shape} but target has shape {truth.shape}")
    union = int(np.count_nonzero(occupied | truth))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(occupied & truth)) / union


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def threshold_percentile(a: ArrayLike, q: float = 90) -> FloatArray:
    """Zero every voxel below the ``q``-th percentile of the non-zero voxels.

    Args:
        a: Map (arbitrary units).
        q: Percentile in [0, 100] computed over the voxels that are not exactly zero.

    Returns:
        A new float64 array, same units as ``a``.

    Raises:
        ConfigError: ``q`` is outside [0, 100] or the map has no non-zero voxel.
        FormatError: the map contains NaN or inf.
    """
    if not 0 <= q <= 100:
        raise ConfigError(f"percentile q must lie in [0, 100], got {q}")
    arr = _finite_array(a, "a")
    nonzero = arr[arr != 0]
    if nonzero.size == 0:
        raise ConfigError("threshold_percentile needs a map with non-zero voxels")
    cutoff = np.percentile(nonzero, q)
    return np.where(arr < cutoff, 0.0, arr)


def struc2map_preprocess(a: ArrayLike, q: float = 90) -> FloatArray:
    """Preprocessing applied before struc2mapGAN's map metrics.

    Voxels below the ``q``-th percentile of the non-zero voxels are zeroed
    (:func:`threshold_percentile`), then the map is min–max scaled to [0, 1]
    (:func:`cryolab.normalise.minmax`).

    Args:
        a: Map (arbitrary units).
        q: Percentile in [0, 100].

    Returns:
        A new float64 array with values in [0, 1] (dimensionless).

    Raises:
        ConfigError: bad ``q``, no non-zero voxel, or a constant map after thresholding.
        FormatError: the map contains NaN or inf.
    """
    return minmax(threshold_percentile(a, q))


# --------------------------------------------------------------------------------------------
# Comparing estimates
# --------------------------------------------------------------------------------------------


def calibrate(estimate: ArrayLike, reference: ArrayLike) -> NDArray[np.float32]:
    """``a·estimate + b`` with ``a`` and ``b`` fitted by least squares to ``reference``.

    Filtering, denoising and the CTF change a map's scale and offset; putting every method on
    the reference's scale first makes PSNR and SSIM compare structure, not units.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import calibrate
        >>> calibrate(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0])).round(6).tolist()
        [1.0, 3.0, 5.0]
    """
    e = np.asarray(estimate, np.float64).ravel()
    r = np.asarray(reference, np.float64).ravel()
    a, b = np.polyfit(e, r, 1)
    return (a * np.asarray(estimate, np.float64) + b).astype(np.float32)


def confusion_matrix(pred: ArrayLike, target: ArrayLike, n_classes: int) -> FloatArray:
    """Row-normalised confusion matrix of two integer label arrays: entry ``[t, p]`` is the
    fraction of the voxels of true class ``t`` that were labelled ``p``.

    Examples:
        >>> import numpy as np
        >>> from cryolab.metrics import confusion_matrix
        >>> confusion_matrix(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]), 2).tolist()
        [[0.5, 0.5], [0.0, 1.0]]
    """
    counts = np.bincount(np.asarray(target, np.int64).ravel() * n_classes
                         + np.asarray(pred, np.int64).ravel(),
                         minlength=n_classes**2).reshape(n_classes, n_classes)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
