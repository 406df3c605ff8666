"""Putting maps on a common scale: one name per meaning.

A network or a metric needs maps whose values mean the same thing from map to map. Each way of
getting there has its own name here, and no other module rescales a map by hand:

=========================  ===============================================  =================
function                   result                                           used by
=========================  ===============================================  =================
:func:`minmax`             min → 0, max → 1                                 struc2map metrics
:func:`percentile_scale`   divide by a percentile (optionally of the        curation, U-Net
                           non-zero voxels, optionally clipped)             and GAN inputs
:func:`zscore`             mean 0, standard deviation 1                     VAE inputs, spectra
:func:`robust_zscore`      median 0, robust standard deviation              tomogram networks
                           (1.4826 × MAD) 1, clipped
=========================  ===============================================  =================

Each keeps the floating-point type of its input (float32 stays float32; integers become
float64), so a map normalised here is bit-for-bit what the function computed.

Examples:
    >>> import numpy as np
    >>> from cryolab.normalise import minmax, percentile_scale, robust_zscore, zscore
    >>> minmax(np.array([2.0, 4.0, 3.0])).tolist()
    [0.0, 1.0, 0.5]
    >>> percentile_scale(np.array([0.0, 1.0, 2.0, 4.0]), q=100).tolist()
    [0.0, 0.25, 0.5, 1.0]
    >>> z = zscore(np.array([1.0, 2.0, 3.0]))
    >>> round(float(z.mean()), 6), round(float(z.std()), 6)
    (0.0, 1.0)
    >>> robust_zscore(np.array([0.0, 1.0, 2.0, 100.0]), clip=4.0).round(3).tolist()
    [-1.012, -0.337, 0.337, 4.0]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .errors import ConfigError, FormatError

__all__ = ["minmax", "percentile_scale", "zscore", "robust_zscore", "MAD_TO_STD"]

#: 1 / Φ⁻¹(3/4): the median absolute deviation of a Gaussian times this is its σ.
MAD_TO_STD = 1.4826


def _floating(a: ArrayLike) -> np.ndarray:
    """``a`` as an array of its own floating type (float64 for integers and booleans)."""
    arr = np.asarray(a)
    return arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float64)


def minmax(a: ArrayLike) -> np.ndarray:
    """Scale linearly so that the minimum becomes 0 and the maximum 1.

    Raises:
        ConfigError: the array is empty or constant.
        FormatError: the array holds NaN or infinite values.
    """
    arr = _floating(a)
    if arr.size == 0:
        raise ConfigError("cannot normalise an empty array")
    low, high = arr.min(), arr.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise FormatError("the map contains NaN or infinite values; clean it first")
    if high <= low:
        raise ConfigError(f"cannot min-max normalise a constant array (all values {low:g})")
    return (arr - low) / (high - low)


def percentile_scale(a: ArrayLike, q: float = 99.9, nonzero: bool = False,
                     clip: tuple[float, float] | None = None) -> np.ndarray:
    """Divide by the ``q``-th percentile of the values, so that it becomes 1.

    Args:
        a: map (arbitrary units).
        q: percentile in [0, 100].
        nonzero: take the percentile over the voxels that are not exactly 0 (a masked map's
            background does not count).
        clip: clip the result to ``(low, high)`` afterwards (e.g. ``(0, 1)``).

    Raises:
        ConfigError: ``q`` outside [0, 100], or a percentile that is not positive.
    """
    if not 0 <= q <= 100:
        raise ConfigError(f"percentile q must lie in [0, 100], got {q}")
    arr = _floating(a)
    values = arr[arr != 0] if nonzero else arr
    top = float(np.percentile(values, q)) if values.size else 0.0
    if top <= 0:
        which = "non-zero voxels" if nonzero else "voxels"
        raise ConfigError(f"cannot percentile-scale a map whose {q}th percentile of {which} is "
                          f"{top:g} (not positive)")
    out = arr / top
    return np.clip(out, *clip) if clip is not None else out


def zscore(a: ArrayLike, eps: float = 0.0) -> np.ndarray:
    """``(x − mean) / (std + eps)``: mean 0 and standard deviation 1.

    ``eps`` > 0 lets a constant map through (it becomes all zeros) instead of raising.

    Raises:
        ConfigError: the array is constant and ``eps`` is 0.
    """
    arr = _floating(a)
    std = arr.std()
    if std + eps == 0:
        raise ConfigError("cannot z-score a constant map")
    return (arr - arr.mean()) / (std + eps)


def robust_zscore(a: ArrayLike, clip: float | None = None) -> np.ndarray:
    """Centre on the median, divide by the robust standard deviation
    (:data:`MAD_TO_STD` × the median absolute deviation, plus 1e-12) and clip to ±``clip``.

    Median and MAD ignore a few extreme voxels (gold beads in a tomogram), and normalising a
    second time changes nothing.
    """
    arr = _floating(a)
    centre = float(np.median(arr))
    scale = MAD_TO_STD * float(np.median(np.abs(arr - centre)))
    out = (arr - centre) / (scale + 1e-12)
    return np.clip(out, -clip, clip) if clip is not None else out
