"""Do tomogram networks trained on simulations work on real tomograms? Measured against Topaz.

Chapter 05's second question, answered with numbers:

- **Real microtubule crops** (no ground truth): :func:`fit_microtubule` fits a cylinder to
  the crop (axis by principal axes of its darkest voxels, radius from the radial profile);
  :func:`real_crop_scores` then measures, for each method's output, its *polarity* (the sign
  of its correlation with the low-passed input: dense matter must stay dark), the tubulin
  *layer lines* (:func:`layer_line_strength`: the power at the 4 nm monomer and 8 nm dimer
  repeats along the microtubule axis over the power of the neighbouring frequencies, kept
  vs the raw crop), the *power spectrum* against the raw crop's (:func:`band_power_ratios`),
  and, for a segmenter, the Dice of its microtubule label against the fitted cylinder's wall
  (:func:`wall_mask`).
- **A whole held-out simulated tomogram**
  (:func:`cryolab.pipelines.tomolearn.whole_tomogram`): scored against *both*
  truths, the ideal reconstruction (no CTF, noise or missing wedge) and the noise-free
  tomogram that keeps the CTF and the missing wedge (:func:`whole_tomogram_scores`).
- **Topaz-Denoise** (Bepler et al. 2020), what cryo-ET users denoise with, run with its own
  code in its own Python environment (:func:`run_topaz`): the interpreter named by the
  environment variable :data:`TOPAZ_ENV` (``CRYOLAB_TOPAZ_PYTHON``), through ``topaz
  denoise3d`` on an MRC file; :func:`topaz_available` says why it cannot run when it cannot.

Every result is a typed record (:class:`CylinderFit`, :class:`RealCropScore`,
:class:`WholeTomogramScore`) with ``to_dict`` for ``metrics.json``; :class:`TomoLearnRun`
gathers the whole chapter's numbers and the verdicts read from them, and its ``to_dict`` is the
schema of the chapter's ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import ConfigError, CryolabError
from ..fourier import frequency_grid
from ..metrics import calibrate, dice, fsc, psnr, ssim
from ..tomo.specimen import axis_distance

__all__ = [
    "TOPAZ_ENV",
    "TOPAZ_MODELS",
    "TOPAZ_WHOLE_VOXELS",
    "LATTICE_REPEATS_A",
    "CylinderFit",
    "fit_microtubule",
    "wall_mask",
    "polarity",
    "layer_line_strength",
    "band_power_ratios",
    "RealCropScore",
    "real_crop_scores",
    "wall_dice",
    "threshold_walls",
    "WholeTomogramScore",
    "whole_tomogram_scores",
    "topaz_margins",
    "topaz_available",
    "run_topaz",
    "gaussian_label",
    "psnr_gain",
    "dice_mean",
    "TomoLearnRun",
]

#: Environment variable naming the Python interpreter of a separate environment with
#: ``topaz-em`` installed (never installed beside cryolab: its dependencies differ).
TOPAZ_ENV = "CRYOLAB_TOPAZ_PYTHON"
#: Topaz's shipped 3D denoisers (trained with Noise2Noise on real cryo-ET tomograms).
TOPAZ_MODELS = ("unet-3d-10a", "unet-3d-20a")
#: Tubulin lattice repeats along a microtubule, Å: the monomer (≈ 4.1 nm in GDP lattices)
#: and the α/β dimer (≈ 8.2 nm).
LATTICE_REPEATS_A = {"4 nm": 41.0, "8 nm": 82.0}


# ------------------------------------------------------------------------- the cylinder


@dataclass(frozen=True)
class CylinderFit:
    """A straight microtubule in a crop.

    Attributes:
        centre: a point on the axis, voxels (z, y, x).
        axis: unit vector along the axis (z, y, x).
        radius: distance of the wall's centre from the axis, voxels.
        pixel_size: Å per voxel.
    """

    centre: tuple[float, float, float]
    axis: tuple[float, float, float]
    radius: float
    pixel_size: float

    @property
    def radius_a(self) -> float:
        """Wall radius in Å."""
        return self.radius * self.pixel_size

    def distance(self, shape: tuple[int, ...]) -> np.ndarray:
        """Distance (voxels) of every voxel of a grid of ``shape`` from the axis
        (:func:`cryolab.tomo.specimen.axis_distance`)."""
        return axis_distance(shape, self.centre, self.axis)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"radius_A": self.radius_a}


def fit_microtubule(volume: np.ndarray, pixel_size: float, sigma: float = 2.0,
                    dark_fraction: float = 0.05, radii_a: tuple[float, float] = (60.0, 160.0)
                    ) -> CylinderFit:
    """Fit a straight cylinder to a crop holding one microtubule (dense matter dark).

    The axis is the first principal axis of the darkest ``dark_fraction`` of the voxels after a
    Gaussian low-pass of ``sigma`` voxels (the walls), through their centroid; the radius is
    where the low-passed crop's mean, by distance from the axis, is darkest between
    ``radii_a`` Å (a microtubule's wall sits ≈ 110–125 Å from its axis)."""
    smooth = ndimage.gaussian_filter(np.asarray(volume, np.float32), sigma)
    dark = np.argwhere(smooth < np.quantile(smooth, dark_fraction)).astype(np.float64)
    if len(dark) < 10:
        raise ConfigError("fit_microtubule: too few dark voxels to fit an axis")
    centre = dark.mean(axis=0)
    axis = np.linalg.svd(dark - centre, full_matrices=False)[2][0]
    fit = CylinderFit(tuple(centre.tolist()), tuple(axis.tolist()), 0.0, pixel_size)
    dist = fit.distance(volume.shape)
    edges = np.arange(radii_a[0], radii_a[1] + pixel_size / 2, pixel_size / 2) / pixel_size
    means = [smooth[(dist >= a) & (dist < b)].mean() if ((dist >= a) & (dist < b)).any()
             else np.inf for a, b in zip(edges[:-1], edges[1:], strict=True)]
    best = int(np.argmin(means))
    return dataclasses.replace(fit, radius=float((edges[best] + edges[best + 1]) / 2))


def wall_mask(fit: CylinderFit, shape: tuple[int, ...], thickness_a: float = 50.0
              ) -> np.ndarray:
    """Boolean mask of the fitted microtubule's wall: voxels within ``thickness_a``/2 Å of the
    wall radius (a tubulin wall is ≈ 50 Å thick)."""
    half = thickness_a / 2 / fit.pixel_size
    return np.abs(fit.distance(shape) - fit.radius) <= half


# ---------------------------------------------------------------------- real-data measures


def polarity(output: np.ndarray, raw: np.ndarray, sigma: float = 2.0) -> float:
    """Correlation of ``output`` with the raw input low-passed by a Gaussian of ``sigma``
    voxels: positive when the output keeps the input's contrast (dense matter dark)."""
    a = np.asarray(output, np.float64).ravel()
    b = ndimage.gaussian_filter(np.asarray(raw, np.float64), sigma).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def _windowed_power(volume: np.ndarray) -> np.ndarray:
    v = np.asarray(volume, np.float64)
    v = v - v.mean()
    for ax, n in enumerate(v.shape):
        shape = [1] * v.ndim
        shape[ax] = n
        v = v * np.hanning(n).reshape(shape)
    return np.abs(np.fft.fftn(v)) ** 2


@functools.lru_cache(maxsize=8)
def _meridian(shape: tuple[int, ...], axis: tuple[float, ...], pixel_size: float,
              k_perp_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The Fourier voxels within ``k_perp_max`` (1/Å) of the ``axis`` direction, and their
    frequency along it (cached: every method's output of a crop shares them)."""
    grids = np.meshgrid(*[np.fft.fftfreq(n, d=pixel_size) for n in shape], indexing="ij")
    k_par = np.abs(sum(g * a for g, a in zip(grids, axis, strict=True)))
    k_all = np.sqrt(sum(g**2 for g in grids))
    near = np.sqrt(np.maximum(k_all**2 - k_par**2, 0)) < k_perp_max
    return near, k_par[near]


def layer_line_strength(volume: np.ndarray, axis: tuple[float, float, float],
                        pixel_size: float, repeat_a: float, tolerance: float = 0.05,
                        k_perp_max_a: float = 1 / 160.0) -> float:
    """How strongly a periodicity of ``repeat_a`` Å along ``axis`` shows in a crop.

    In the 3D power spectrum (Hann-windowed), take the frequencies near the meridian
    (``|k_⊥| < k_perp_max_a`` 1/Å, where a straight filament's layer lines sit); the
    strength is the largest mean power in a band of width 1/(200 Å) along the axis within
    ``tolerance`` (relative) of ``1/repeat_a``, divided by the mean power of the flanking
    frequencies ``0.1–0.25 × 1/repeat_a`` away on either side. 1 = no layer line."""
    target = 1.0 / repeat_a
    if target > 0.5 / pixel_size:
        raise ConfigError(f"a {repeat_a} Å repeat is beyond Nyquist at {pixel_size} Å/voxel")
    near, kp = _meridian(tuple(volume.shape), tuple(float(a) for a in axis), float(pixel_size),
                         float(k_perp_max_a))
    pw = _windowed_power(volume)[near]
    width = 1 / 200.0
    centres = np.linspace(target * (1 - tolerance), target * (1 + tolerance), 9)
    peak = max(pw[np.abs(kp - c) < width / 2].mean() for c in centres)
    off = np.abs(kp - target)
    flank = pw[(off > 0.1 * target) & (off < 0.25 * target)].mean()
    return float(peak / flank)


#: Frequency bands of :func:`band_power_ratios`, as resolutions (Å): low, middle, high.
BANDS_A = {"low (> 100 Å)": (np.inf, 100.0), "middle (100–40 Å)": (100.0, 40.0),
           "high (< 40 Å)": (40.0, 0.0)}


def band_power_ratios(output: np.ndarray, raw: np.ndarray, pixel_size: float
                      ) -> dict[str, float]:
    """The output's share of its power in each band of :data:`BANDS_A` over the raw crop's
    share (both standardised first): > 1 where the output has more of its power than the
    input there, < 1 where it removed power (noise, or lost detail)."""
    k = frequency_grid(raw.shape, pixel_size, half=False)

    def shares(v: np.ndarray) -> dict[str, float]:
        p = np.abs(np.fft.fftn((v - v.mean()) / v.std())) ** 2
        p[(0,) * v.ndim] = 0
        total = p.sum()
        return {name: float(p[(k >= 1 / lo) & (k < (1 / hi if hi else np.inf))].sum() / total)
                for name, (lo, hi) in BANDS_A.items()}

    out, ref = shares(np.asarray(output, np.float64)), shares(np.asarray(raw, np.float64))
    return {name: out[name] / ref[name] for name in BANDS_A}


@dataclass(frozen=True)
class RealCropScore:
    """One method's output on one real crop.

    Attributes:
        crop, method: names.
        polarity: :func:`polarity` (> 0: dense matter stays dark).
        layer_lines: :func:`layer_line_strength` at each repeat of
            :data:`LATTICE_REPEATS_A` (1 = none).
        layer_lines_kept: ``(strength − 1) / (raw strength − 1)`` per repeat: 1 = as strong as
            in the raw crop, 0 = erased (NaN where the raw crop shows none).
        band_power: :func:`band_power_ratios` against the raw crop.
        wall_dice: Dice of the method's wall voxels against the fitted cylinder's wall (for
            segmentations; None otherwise).
    """

    crop: str
    method: str
    polarity: float
    layer_lines: dict[str, float]
    layer_lines_kept: dict[str, float]
    band_power: dict[str, float]
    wall_dice: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def real_crop_scores(crop: str, raw: np.ndarray, outputs: Mapping[str, np.ndarray],
                     fit: CylinderFit) -> list[RealCropScore]:
    """:class:`RealCropScore` of the raw crop and of every denoised output (same grid)."""
    px = fit.pixel_size
    raw_lines = {n: layer_line_strength(raw, fit.axis, px, r)
                 for n, r in LATTICE_REPEATS_A.items()}
    rows = []
    for method, out in {"raw": raw, **outputs}.items():
        lines = (raw_lines if method == "raw" else
                 {n: layer_line_strength(out, fit.axis, px, r)
                  for n, r in LATTICE_REPEATS_A.items()})
        kept = {n: (lines[n] - 1) / (raw_lines[n] - 1) if raw_lines[n] > 1.2 else float("nan")
                for n in lines}
        rows.append(RealCropScore(crop, method, polarity(out, raw), lines, kept,
                                  band_power_ratios(out, raw, px)))
    return rows


def wall_dice(labels: np.ndarray, fit: CylinderFit, label: int) -> float:
    """Dice of ``labels == label`` against the fitted cylinder's :func:`wall_mask`, inside the
    slab of the crop within 2 wall radii of the axis (the cylinder says nothing farther out)."""
    near = fit.distance(labels.shape) <= 2 * fit.radius
    truth = wall_mask(fit, labels.shape) & near
    pred = (labels == label) & near
    return float(dice(pred, truth))


def threshold_walls(volume: np.ndarray, fit: CylinderFit, sigma: float = 1.0) -> np.ndarray:
    """The simple baseline segmentation of the walls: the darkest voxels of the crop after a
    Gaussian low-pass of ``sigma`` voxels, as many as the fitted wall holds within 2 wall
    radii of the axis (an oracle count, which flatters the baseline); 1 = wall."""
    smooth = ndimage.gaussian_filter(np.asarray(volume, np.float32), sigma)
    near = fit.distance(volume.shape) <= 2 * fit.radius
    n = int((wall_mask(fit, volume.shape) & near).sum())
    cut = np.sort(smooth[near])[max(n - 1, 0)]
    return ((smooth <= cut) & near).astype(np.int64)


# ------------------------------------------------------------- whole simulated tomograms


@dataclass(frozen=True)
class WholeTomogramScore:
    """One method against one truth of a whole tomogram (output calibrated to the truth by
    least squares first, :func:`cryolab.metrics.calibrate`).

    Attributes:
        method, truth: names (truth: ``"ideal"`` or ``"noise-free with CTF"``).
        psnr: dB, with the truth's range. ssim. correlation: Pearson r.
        fsc_0143: resolution (Å) where the FSC falls below 0.143 (the box size if never).
    """

    method: str
    truth: str
    psnr: float
    ssim: float
    correlation: float
    fsc_0143: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def whole_tomogram_scores(outputs: Mapping[str, np.ndarray], truths: Mapping[str, np.ndarray],
                          pixel_size: float) -> list[WholeTomogramScore]:
    """:class:`WholeTomogramScore` of every output against every truth."""
    rows = []
    for truth_name, truth in truths.items():
        t = np.asarray(truth, np.float32)
        rng = float(t.max() - t.min())
        for method, out in outputs.items():
            est = calibrate(np.asarray(out, np.float32), t)
            rows.append(WholeTomogramScore(
                method, truth_name, psnr(est, t, data_range=rng), ssim(est, t, data_range=rng),
                float(np.corrcoef(est.ravel(), t.ravel())[0, 1]),
                fsc(est, t, pixel_size).resolution(0.143)))
    return rows


def topaz_margins(scores: Sequence[WholeTomogramScore | Mapping],
                  method: str = "U-Net (shipped)") -> dict[tuple[str, str], float]:
    """``method``'s margin over the better Topaz model on a whole tomogram, by (truth,
    ``"psnr"`` | ``"correlation"``): positive where it beats both Topaz models. ``scores`` are
    :func:`whole_tomogram_scores` rows (or their ``to_dict``); empty when Topaz did not run."""
    rows = [r.to_dict() if isinstance(r, WholeTomogramScore) else dict(r) for r in scores]
    margins = {}
    for truth in dict.fromkeys(r["truth"] for r in rows):
        topaz = [r for r in rows if r["truth"] == truth and r["method"].startswith("Topaz")]
        if not topaz:
            continue
        ours = next(r for r in rows if r["truth"] == truth and r["method"] == method)
        for key in ("psnr", "correlation"):
            margins[truth, key] = ours[key] - max(r[key] for r in topaz)
    return margins


# ------------------------------------------------------------------------------ Topaz


def topaz_available() -> str | None:
    """None when Topaz can run, else the reason it cannot (one line)."""
    python = os.environ.get(TOPAZ_ENV)
    if not python:
        return (f"Topaz-Denoise is not run: set {TOPAZ_ENV} to the Python of an environment "
                f"with topaz-em installed")
    if not Path(python).is_file():
        return f"Topaz-Denoise is not run: {TOPAZ_ENV}={python} is not a file"
    return None


#: ``topaz`` has no ``__main__``: its console script's body, run by the other interpreter.
_TOPAZ_MAIN = "import sys; from topaz.main import main; sys.exit(main())"


#: The largest tomogram (voxels) :func:`run_topaz` gives Topaz whole by default; larger ones go
#: in Topaz's own tiles.
TOPAZ_WHOLE_VOXELS = 16_000_000


def run_topaz(volume: np.ndarray, pixel_size: float, model: str = "unet-3d-10a",
              patch: int | None = None, padding: int = 48, threads: int = 1,
              timeout: float = 3600) -> tuple[np.ndarray, float]:
    """Denoise a (z, y, x) tomogram with Topaz-Denoise's ``topaz denoise3d`` and one of its
    shipped models (:data:`TOPAZ_MODELS`), on the CPU, in the environment of
    :data:`TOPAZ_ENV`; the tomogram goes through an MRC file in a temporary folder.

    ``patch`` and ``padding`` (voxels) are Topaz's ``--patch-size`` and ``--patch-padding``.
    The default (None) runs the network over the whole tomogram at once (Topaz's
    ``--patch-size -1``) up to :data:`TOPAZ_WHOLE_VOXELS`, and in Topaz's default tiles (96
    voxels, 48 of padding) beyond. Topaz zero-pads every tile to a cube of ``patch + 2 ×
    padding`` = 192 voxels, so a 50-slice tomogram in tiles costs Topaz about 30 times the
    work of a whole pass (about 9 min instead of 25 s for 200 × 200 × 50 voxels on one
    thread), with tile edges besides.

    Returns:
        ``(denoised volume, wall seconds of the Topaz process)``.
    """
    import mrcfile

    reason = topaz_available()
    if reason:
        raise CryolabError(reason)
    if model not in TOPAZ_MODELS:
        raise ConfigError(f"unknown Topaz model {model!r}; choose from {TOPAZ_MODELS}")
    with tempfile.TemporaryDirectory(prefix="cryolab-topaz-") as tmp:
        src = Path(tmp) / "tomogram.mrc"
        with mrcfile.new(src) as mrc:
            mrc.set_data(np.ascontiguousarray(volume, dtype=np.float32))
            mrc.voxel_size = pixel_size
        out_dir = Path(tmp) / "out"
        if patch is None:
            patch = -1 if volume.size <= TOPAZ_WHOLE_VOXELS else 96
        cmd = [os.environ[TOPAZ_ENV], "-c", _TOPAZ_MAIN, "denoise3d", "-m", model, "-o",
               str(out_dir), "-d", "-1", "-j", str(threads), "-s", str(patch), "-p",
               str(padding), str(src)]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - start
        outputs = sorted(out_dir.glob("*.mrc")) if out_dir.is_dir() else []
        if done.returncode or not outputs:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CryolabError(f"topaz denoise3d failed ({done.returncode}): {tail[0]}")
        with mrcfile.open(outputs[0], permissive=True) as mrc:
            return np.asarray(mrc.data, np.float32).copy(), seconds


# ---------------------------------------------------------------------------- the run


def gaussian_label(sigma: float) -> str:
    """The name of the best Gaussian filter's row in the denoising table."""
    return f"Gaussian σ={sigma:g}"


def psnr_gain(denoising: pd.DataFrame, sigma: float) -> float:
    """PSNR (dB) of the supervised U-Net over the best Gaussian filter (σ = ``sigma`` voxels)
    in a denoising table (rows: methods; a ``"PSNR (dB)"`` column)."""
    psnr_db = denoising["PSNR (dB)"]
    return float(psnr_db["supervised U-Net"] - psnr_db[gaussian_label(sigma)])


def dice_mean(scores: Mapping[str, float]) -> float:
    """The mean Dice over the classes of ``{class: Dice}`` (background left out by the
    caller)."""
    return float(np.mean(list(scores.values())))


@dataclass(frozen=True)
class TomoLearnRun:
    """The numbers one run of chapter 05 produces, and the verdicts read from them;
    :meth:`to_dict` is the schema of its ``metrics.json`` (read by the tests and the results
    overview).

    Attributes:
        shape: the held-out test tomogram's shape (z, y, x); pixel_size: its voxel, Å.
        denoising: scores of each denoiser on the test tomogram (rows: methods; columns
            ``"PSNR (dB)"``, ``"SSIM"`` and the FSC resolutions).
        best_sigma: width (voxels) of the best Gaussian filter (row :func:`gaussian_label`).
        histories: training histories by network (``denoiser``, ``noise2noise``,
            ``segmenter``), each with a ``loss`` per epoch.
        dice: Dice of the segmenter on the test tomogram, by class (no background).
        confusion: row-normalised confusion matrix, true × predicted class.
        picking: particle-picking scores by class.
        real_scores, real_fits, real_wall_dice: the real microtubule crops
            (:func:`real_crop_scores`, :func:`fit_microtubule`, ``{crop: {method: wall
            Dice}}``).
        whole_scores: :func:`whole_tomogram_scores` of the whole held-out tomogram, simulated
            with ``whole_seed`` in ``whole_seconds`` s, of shape ``whole_shape``.
        topaz_skipped: why Topaz-Denoise did not run (None when it ran); topaz_seconds: its
            run times.
        missing_wedge: filament Dice, trained on (rows) × tested on (columns) orientations;
            None when the profile skips the experiment.
        robustness: Dice by class (and mean) by changed setting; None when skipped.
        cli_agreement: fraction of voxels where ``cryolab segment`` agrees with the
            whole-volume prediction.
        timings: seconds by step.
    """

    shape: tuple[int, ...]
    pixel_size: float
    denoising: pd.DataFrame
    best_sigma: float
    histories: Mapping[str, Mapping[str, Sequence[float]]]
    dice: Mapping[str, float]
    confusion: np.ndarray
    picking: pd.DataFrame
    real_scores: Sequence[RealCropScore]
    real_fits: Mapping[str, CylinderFit]
    real_wall_dice: Mapping[str, Mapping[str, float]]
    whole_scores: Sequence[WholeTomogramScore]
    whole_shape: tuple[int, ...]
    whole_seed: int
    whole_seconds: float
    topaz_skipped: str | None
    topaz_seconds: Mapping[str, float]
    missing_wedge: pd.DataFrame | None
    robustness: pd.DataFrame | None
    cli_agreement: float
    timings: Mapping[str, float]

    @property
    def psnr_gain_over_gaussian_db(self) -> float:
        """:func:`psnr_gain` of this run: the supervised U-Net over the best Gaussian, dB."""
        return psnr_gain(self.denoising, self.best_sigma)

    @property
    def mean_dice(self) -> float:
        """:func:`dice_mean` of the segmenter on the test tomogram."""
        return dice_mean(self.dice)

    def to_dict(self) -> dict:
        """The ``metrics.json`` record of the run."""
        robust = self.robustness
        return {
            "shape": list(self.shape),
            "pixel_size": self.pixel_size,
            "denoising": self.denoising.to_dict(orient="index"),
            "best_gaussian_sigma": self.best_sigma,
            "psnr_gain_over_gaussian_db": self.psnr_gain_over_gaussian_db,
            "losses": {net: {"first": h["loss"][0], "last": h["loss"][-1]}
                       for net, h in self.histories.items()},
            "dice": dict(self.dice),
            "mean_dice": self.mean_dice,
            "confusion": np.asarray(self.confusion).tolist(),
            "picking": self.picking.to_dict(orient="index"),
            "real_data": [r.to_dict() for r in self.real_scores],
            "real_fits": {n: f.to_dict() for n, f in self.real_fits.items()},
            "real_wall_dice": {n: dict(v) for n, v in self.real_wall_dice.items()},
            "whole_tomogram": {"shape": list(self.whole_shape), "seed": self.whole_seed,
                               "scores": [r.to_dict() for r in self.whole_scores],
                               "simulation_seconds": self.whole_seconds},
            "topaz": {"skipped": self.topaz_skipped, "seconds": dict(self.topaz_seconds)},
            "missing_wedge": (self.missing_wedge.to_dict(orient="index")
                              if self.missing_wedge is not None else None),
            "robustness": (robust.drop(columns=["setting", "test value"]).astype(float)
                           .to_dict(orient="index") if robust is not None else None),
            "cli_agreement": self.cli_agreement,
            "timings": dict(self.timings),
        }
