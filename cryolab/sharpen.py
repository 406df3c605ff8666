"""Classical map sharpening: the Guinier B-factor and global B-factor sharpening.

A cryo-EM map's Fourier amplitudes fall off with spatial frequency ``s = 1/d`` (1/Å) roughly as
``|F(s)| ∝ exp(−B s²/4)``: an overall temperature factor ``B`` (Å²) that lumps together atomic
motion, beam-induced blurring and alignment errors (Rosenthal & Henderson). In a *Guinier plot*
— ``ln |F|`` against ``s²`` — that fall-off is a straight line of slope ``−B/4``. Fitting the
line over the range where the map has signal (from about 10 Å, past the low-resolution bumps
of the solvent contrast, to the map's resolution) estimates ``B``; multiplying the transform by
``exp(+B s²/4)`` undoes the fall-off (the spectrum becomes flat over the fitted range) and a
low-pass at the map's resolution stops the boost from amplifying pure noise.

- :func:`radial_amplitude`: radially averaged ``|F|`` in shells of one Fourier voxel;
- :func:`guinier_fit`: B from the slope of ``ln |F|`` vs ``s²`` over a resolution range;
- :func:`apply_bfactor`: multiply by ``exp(B s²/4)`` and low-pass at a resolution;
- :func:`bfactor_sharpen`: fit and apply in one call;
- :func:`match_fall_off`: sharpen to a target B without the low-pass, the gain held constant
  beyond the resolution — for a network's output, whose noise the network has already
  removed;
- :func:`keep_low_resolution`: a network's output with the low-resolution content (beyond
  about 10 Å: the molecule's envelope and the solvent) put back from the map it was given.

Shells and filters come from :mod:`cryolab.fourier`, as for :func:`cryolab.degrade.bfactor_blur`
(the inverse of :func:`apply_bfactor` up to the low-pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .fourier import filter_volume, frequency_grid, raised_cosine, shell_index, shell_sums
from .io import Volume

__all__ = ["GuinierFit", "radial_amplitude", "guinier_fit", "apply_bfactor", "bfactor_sharpen",
           "match_fall_off", "keep_low_resolution"]


@dataclass(frozen=True)
class GuinierFit:
    """A straight-line fit ``ln |F| = intercept − (B/4)·s²``.

    Attributes:
        bfactor: B in Å² (positive for a map whose amplitudes fall off).
        intercept: ``ln |F|`` at s = 0 of the fitted line.
        low, high: the fitted resolution range, Å (``low`` > ``high``).
        s2: s² (1/Å²) of every shell of the curve; ``ln_amplitude``: ln of its mean ``|F|``.
        fitted: which shells were used.
    """

    bfactor: float
    intercept: float
    low: float
    high: float
    s2: np.ndarray
    ln_amplitude: np.ndarray
    fitted: np.ndarray

    def line(self, s2: np.ndarray) -> np.ndarray:
        """The fitted ``ln |F|`` at ``s2`` (1/Å²)."""
        return self.intercept - self.bfactor / 4.0 * np.asarray(s2)


def radial_amplitude(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Shell centres ``s`` (1/Å) and mean Fourier amplitude ``|F|`` of each shell, to Nyquist.

    Shells are one Fourier voxel of the longest box edge wide, ``1/L`` with ``L`` in Å
    (:func:`cryolab.fourier.shell_sums`, the shells of :func:`cryolab.metrics.fsc`); the
    zero-frequency shell is left out. The mean is over the full transform.
    """
    amplitude = np.abs(np.fft.rfftn(volume.data.astype(np.float64)))
    (sums,), counts, centres = shell_sums([amplitude], volume.shape, volume.voxel_size)
    mean = np.divide(sums, counts, out=np.zeros(len(sums)), where=counts > 0)
    return centres[1:], mean[1:]


def guinier_fit(volume: Volume, high: float, low: float = 10.0) -> GuinierFit:
    """Estimate B (Å²) from the Guinier slope of the radially averaged amplitudes.

    Args:
        volume: the map.
        high: the high-resolution end of the fit in Å (usually the map's resolution).
        low: the low-resolution end in Å (default 10 Å).
    Raises:
        ConfigError: a range that is empty, inverted, or holds fewer than 3 shells.
    """
    if not 0 < high < low:
        raise ConfigError(f"the Guinier fit needs 0 < high < low (Å); got high {high}, low {low}")
    s, amplitude = radial_amplitude(volume)
    s2 = s**2
    with np.errstate(divide="ignore"):
        ln_amp = np.log(amplitude)
    fitted = (s >= 1.0 / low) & (s <= 1.0 / high) & np.isfinite(ln_amp)
    if fitted.sum() < 3:
        nyquist = 2.0 * float(np.max(volume.voxel_size))
        raise ConfigError(
            f"only {int(fitted.sum())} Fourier shells between {low} and {high} Å (Nyquist "
            f"{nyquist:.2f} Å, box {volume.extent.max():.0f} Å); widen the range or use a "
            "larger box"
        )
    slope, intercept = np.polyfit(s2[fitted], ln_amp[fitted], 1)
    return GuinierFit(float(-4.0 * slope), float(intercept), float(low), float(high), s2,
                      ln_amp, fitted)


def apply_bfactor(volume: Volume, bfactor: float, resolution: float | None = None,
                  edge: float = 0.02) -> Volume:
    """Multiply the transform by ``exp(B s²/4)`` and low-pass at ``resolution`` Å.

    A positive ``bfactor`` sharpens (the inverse of :func:`cryolab.degrade.bfactor_blur`), a
    negative one blurs. The low-pass keeps every frequency up to ``1/resolution`` and rolls off
    beyond it over ``edge`` (1/Å) with a raised cosine (``edge=0``: a hard cut);
    ``resolution=None`` keeps every frequency.
    """
    if resolution is not None and resolution <= 0:
        raise ConfigError(f"resolution must be positive (Å), got {resolution}")
    if edge < 0:
        raise ConfigError(f"edge must be ≥ 0 (1/Å), got {edge}")

    def transfer(s: np.ndarray) -> np.ndarray:
        gain = np.exp(bfactor * s**2 / 4.0)
        return gain if resolution is None else gain * raised_cosine(s, 1.0 / resolution, edge)

    return filter_volume(volume, transfer)


def bfactor_sharpen(volume: Volume, resolution: float, low: float = 10.0,
                    edge: float = 0.02) -> tuple[Volume, GuinierFit]:
    """Global B-factor sharpening: fit B between ``low`` and ``resolution`` Å, apply
    ``exp(B s²/4)`` with a low-pass at ``resolution``; returns the map and the fit.

    A fitted B below zero (amplitudes that rise with frequency: nothing to undo) is not
    applied; the map is then only low-passed.

    Examples:
        >>> import numpy as np
        >>> from cryolab.degrade import bfactor_blur
        >>> from cryolab.io import Volume
        >>> from cryolab.sharpen import bfactor_sharpen
        >>> noise = Volume(np.random.default_rng(0).normal(size=(32, 32, 32)), 1.0, 0.0)
        >>> blurred = bfactor_blur(noise, 80.0)
        >>> sharp, fit = bfactor_sharpen(blurred, resolution=3.0, low=8.0)
        >>> 60 < fit.bfactor < 100         # the B that blurred it, found again (Å²)
        True
    """
    fit = guinier_fit(volume, high=resolution, low=low)
    return apply_bfactor(volume, max(fit.bfactor, 0.0), resolution, edge), fit


def match_fall_off(volume: Volume, resolution: float, target: float = 0.0, low: float = 10.0
                   ) -> tuple[Volume, GuinierFit]:
    """Sharpen a map until its Guinier B is ``target`` Å², without low-passing it: fit B
    between ``low`` and ``resolution`` Å and multiply the transform by
    ``exp((B − target) min(s, 1/resolution)² / 4)`` — the gain of :func:`apply_bfactor` up
    to the resolution, held at its value there beyond it. ``target=0`` flattens the
    spectrum. Returns the map and the fit of the map as it came.

    Meant for a network's output: trained with a voxel loss, a network predicts the mean of
    the maps its input could come from, whose amplitudes fall off faster than any one of its
    targets' (regression to the mean), and its noise is already gone, so the low-pass of
    :func:`bfactor_sharpen` is not needed. The transfer is positive and radial, so the
    Fourier shell correlation of the map with any other map is unchanged shell by shell: only
    how strongly each shell counts in real space changes. A map whose B is already at or
    below ``target`` is returned unchanged (it is never blurred).

    Examples:
        >>> import numpy as np
        >>> from cryolab.degrade import bfactor_blur
        >>> from cryolab.io import Volume
        >>> from cryolab.sharpen import guinier_fit, match_fall_off
        >>> noise = Volume(np.random.default_rng(0).normal(size=(32, 32, 32)), 1.0, 0.0)
        >>> out, fit = match_fall_off(bfactor_blur(noise, 80.0), 3.0, target=30.0, low=8.0)
        >>> 60 < fit.bfactor < 100 and 10 < guinier_fit(out, 3.0, 8.0).bfactor < 50
        True
    """
    fit = guinier_fit(volume, high=resolution, low=low)
    boost = max(fit.bfactor - target, 0.0)
    top = 1.0 / resolution
    return filter_volume(volume, lambda s: np.exp(boost * np.minimum(s, top) ** 2 / 4.0)), fit


def keep_low_resolution(volume: Volume, reference: Volume, resolution: float = 10.0,
                        edge: float = 0.02) -> Volume:
    """``volume`` with its Fourier components up to ``resolution`` Å taken from ``reference``.

    Each shell up to ``resolution`` gets ``reference``'s components multiplied by one number,
    the ratio of ``volume``'s mean amplitude in that shell to ``reference``'s, so the radial
    amplitude profile stays ``volume``'s and only the phases and the distribution within the
    shell come from ``reference``. Beyond ``resolution`` the two blend over ``edge`` (1/Å)
    with a raised cosine, and past it ``volume`` is unchanged; so is its mean.

    Meant for a network's output on an experimental map (``reference``): the network was
    trained to restore high-resolution detail on boxes fitted to a molecule, while the map's
    envelope and solvent — the shells below about 10 Å, before the Guinier regime — are what
    the experiment measures best. A network run over a large box of solvent can invent
    low-resolution density there (a whole deposited box of EMD-3488, chapter 02); this step
    puts the map's own back. Both maps must share a grid.

    Examples:
        >>> import numpy as np
        >>> from cryolab.io import Volume
        >>> from cryolab.sharpen import keep_low_resolution
        >>> ref = Volume(np.random.default_rng(0).normal(size=(24, 24, 24)), 1.0, 0.0)
        >>> out = keep_low_resolution(ref.with_data(3 * ref.data), ref)
        >>> bool(np.allclose(out.data, 3 * ref.data, atol=1e-5))  # same map, other scale
        True
    """
    if volume.shape != reference.shape or not np.allclose(volume.voxel_size,
                                                          reference.voxel_size):
        raise ConfigError(f"keep_low_resolution needs maps on one grid: {volume.shape} at "
                          f"{volume.voxel_size} Å and {reference.shape} at "
                          f"{reference.voxel_size} Å")
    if resolution <= 0 or edge < 0:
        raise ConfigError(f"resolution must be positive and edge non-negative, got "
                          f"{resolution} Å and {edge} 1/Å")
    ours = np.fft.rfftn(volume.data.astype(np.float64))
    theirs = np.fft.rfftn(reference.data.astype(np.float64))
    (a_ours, a_theirs), _, _ = shell_sums([np.abs(ours), np.abs(theirs)], volume.shape,
                                           volume.voxel_size)
    shell, n_shells, _ = shell_index(volume.shape, volume.voxel_size)
    ratio = np.zeros(int(shell.max()) + 1)
    ratio[:n_shells] = np.divide(a_ours, a_theirs, out=np.zeros(n_shells), where=a_theirs > 0)
    weight = raised_cosine(frequency_grid(volume.shape, volume.voxel_size), 1.0 / resolution,
                           edge)
    weight[0, 0, 0] = 0.0  # the mean (zero frequency) stays volume's
    mixed = weight * ratio[shell] * theirs + (1.0 - weight) * ours
    out = np.fft.irfftn(mixed, s=volume.shape, axes=(0, 1, 2))
    return volume.with_data(out.astype(np.float32))
