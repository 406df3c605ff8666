"""EMRinger: side-chain-directed validation of a model in a cryo-EM map (Barad et al. 2015).

A clean-room implementation following the conventions of cctbx's ``mmtbx.ringer`` (the
``phenix.emringer`` program), so that the same map and model give the same score:

1. For every residue whose side chain has a γ atom (ARG ASN ASP CYS GLU GLN HIS LEU LYS MET
   PHE SER TRP TYR; first conformer only) the γ atom is rotated about the CA→CB axis. Like
   Ringer, the scan first turns it back to χ1 = 0° and then samples 72 positions at
   χ1 = 5°, 10°, …, 360° (trilinear interpolation; ``densities[i]`` is the value at
   ``5·(i+1)`` degrees). A residue with any sample outside the map is skipped, as in cctbx.
2. Each residue's *peak* is its first maximum. The thresholds are 20 values evenly spaced
   from the mean of all samples up to (not including) the largest peak: ``t_i = m + i(M−m)/20``.
3. At each threshold the peaks above it are counted; a peak at index ``i`` is *rotameric* when
   ``i`` falls in one of the windows 6–17, 30–41, 54–65 (cctbx bins the 72 indices into six
   60° bins of 12 starting 30° below 60°, 180° and 300°, and counts bins 0, 2, 4).
4. The z-score of the rotameric count ``r`` among ``n`` peaks uses cctbx's binomial null with
   p = 39/72: ``z = (r − 39n/72) / sqrt(n · 39/72 · 33/72)``. Thresholds are scanned from the
   lowest up and the scan stops at the first one with no rotameric peak.
5. Score = 10 · max(z) / sqrt(number of residues scanned).

Because the sample index is used as the angle (an offset of 5° relative to the true χ1 of the
sample, inherited from cctbx), the windows in true χ1 are 35–90°, 155–210° and 275–330°. We
keep that on purpose: matching ``phenix.emringer`` matters more than the cosmetic offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import gemmi
import numpy as np
import pandas as pd

from .errors import ConfigError, FormatError
from .io import Volume

__all__ = [
    "GAMMA_ATOMS",
    "EMRingerResult",
    "RingerScan",
    "dihedral",
    "rotate_about_axis",
    "ringer_scan",
    "score_scan",
    "emringer",
    "EMRingerChange",
    "emringer_change",
    "mean_change",
]

#: The γ atom whose χ1 rotation EMRinger scans, per residue type.
GAMMA_ATOMS: dict[str, str] = {
    "ARG": "CG", "ASN": "CG", "ASP": "CG", "CYS": "SG", "GLU": "CG", "GLN": "CG",
    "HIS": "CG", "LEU": "CG", "LYS": "CG", "MET": "CG", "PHE": "CG", "SER": "OG",
    "TRP": "CG", "TYR": "CG",
}
STEP_DEG = 5.0
N_ANGLES = 72
N_THRESHOLDS = 20
#: cctbx's null probability that a peak is rotameric (39 of 72 angles).
P_ROTAMERIC = 39.0 / 72.0
_ROTAMERIC_INDEX = np.zeros(N_ANGLES, dtype=bool)
for _start in (6, 30, 54):
    _ROTAMERIC_INDEX[_start : _start + 12] = True


def dihedral(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Dihedral angles in degrees (−180, 180] of points (..., 3), IUPAC sign convention."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, axis=-1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, axis=-1, keepdims=True) * b1n
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1n, v) * w, axis=-1)
    return np.degrees(np.arctan2(y, x))


def rotate_about_axis(
    points: np.ndarray, axis_from: np.ndarray, axis_to: np.ndarray, angles_deg: np.ndarray
) -> np.ndarray:
    """Rotate points about the axis ``axis_from → axis_to`` (right-handed) by each angle.

    Args:
        points, axis_from, axis_to: arrays (R, 3) in Å (one point and axis per residue).
        angles_deg: (A,) angles in degrees, or (R, A) per residue.
    Returns:
        (R, A, 3) rotated positions (Rodrigues' formula, vectorised over residues and angles).
    """
    k = axis_to - axis_from
    k = k / np.linalg.norm(k, axis=-1, keepdims=True)
    v = points - axis_from
    theta = np.radians(np.broadcast_to(angles_deg, (len(points), np.shape(angles_deg)[-1])))
    cos, sin = np.cos(theta)[..., None], np.sin(theta)[..., None]
    kv = np.sum(k * v, axis=-1, keepdims=True)
    rotated = (
        v[:, None] * cos
        + np.cross(k, v)[:, None] * sin
        + (k * kv)[:, None] * (1.0 - cos)
    )
    return rotated + axis_from[:, None]


@dataclass
class RingerScan:
    """Map values around χ1 for each scanned residue.

    Attributes:
        residues: one row per residue (chain, resseq, icode, resname, chi1).
        densities: (R, 72) map values at χ1 = 5°, 10°, …, 360°.
        skipped: residues with a γ atom that could not be scanned, with the reason.
    """

    residues: pd.DataFrame
    densities: np.ndarray
    skipped: pd.DataFrame


def _side_chain_atoms(structure: gemmi.Structure, model: int):
    """Yield (chain, residue, N, CA, CB, γ positions or None, missing-atom name)."""
    for chain in structure[model]:
        for residue in chain:
            gamma = GAMMA_ATOMS.get(residue.name)
            if gamma is None:
                continue
            positions, missing = [], None
            for name in ("N", "CA", "CB", gamma):
                atoms = residue.find_atom(name, "*")  # first conformer
                if atoms is None:
                    missing = name
                    break
                positions.append(atoms.pos.tolist())
            yield chain.name, residue, positions if missing is None else None, missing


def ringer_scan(volume: Volume, structure: gemmi.Structure, model: int = 0) -> RingerScan:
    """Sample the map around χ1 of every residue with a γ atom (all residues × 72 at once).

    Raises :class:`FormatError` when the model has no residue with a γ atom (e.g. a poly-Ala
    or Cα-only model).
    """
    rows, quads, skipped = [], [], []
    for chain, residue, positions, missing in _side_chain_atoms(structure, model):
        ident = {
            "chain": chain, "resseq": residue.seqid.num, "icode": residue.seqid.icode.strip(),
            "resname": residue.name,
        }
        if positions is None:
            skipped.append({**ident, "reason": f"no {missing} atom"})
            continue
        rows.append(ident)
        quads.append(positions)
    if not rows:
        raise FormatError(
            f"{structure.name}: no residue with a side-chain γ atom "
            f"({', '.join(GAMMA_ATOMS)}); EMRinger needs a model with side chains"
        )
    quads_arr = np.asarray(quads, dtype=np.float64)  # (R, 4, 3): N, CA, CB, γ
    n, ca, cb, g = (quads_arr[:, i] for i in range(4))
    chi1 = dihedral(n, ca, cb, g)
    angles = STEP_DEG * np.arange(1, N_ANGLES + 1)  # 5..360, relative to χ1 = 0
    points = rotate_about_axis(g, ca, cb, angles[None, :] - chi1[:, None])  # (R, 72, 3)
    idx = volume.index_of(points.reshape(-1, 3)).reshape(len(rows), N_ANGLES, 3)
    upper = np.array(volume.shape) - 1
    inside = np.all((idx >= 0) & (idx <= upper), axis=(1, 2))
    densities = volume.interpolate(points.reshape(-1, 3)).reshape(len(rows), N_ANGLES)
    residues = pd.DataFrame(rows)
    residues["chi1"] = chi1
    for i in np.flatnonzero(~inside):
        skipped.append({**rows[i], "reason": "outside the map"})
    skipped_df = pd.DataFrame(skipped, columns=["chain", "resseq", "icode", "resname", "reason"])
    return RingerScan(
        residues[inside].reset_index(drop=True), densities[inside].astype(np.float64), skipped_df
    )


@dataclass
class EMRingerResult:
    """An EMRinger score and how it was reached.

    Attributes:
        score: 10 · max z-score / sqrt(residues scanned).
        optimal_threshold: the map value at which the z-score peaks.
        rotamer_ratio: fraction of peaks above that threshold that are rotameric.
        zscore: the maximum z-score.
        n_residues: residues scanned.
        thresholds: the 20 thresholds; ``zscores`` and ``ratios`` (NaN after the scan stopped).
        table: one row per residue (chain, resseq, resname, chi1, peak angle, peak value,
            rotameric, above optimal threshold).
        skipped: residues with a γ atom that were not scanned.
    """

    score: float
    optimal_threshold: float
    rotamer_ratio: float
    zscore: float
    n_residues: int
    thresholds: np.ndarray
    zscores: np.ndarray
    ratios: np.ndarray
    table: pd.DataFrame
    skipped: pd.DataFrame

    def summary(self) -> dict[str, float]:
        """The headline numbers as a plain dict."""
        return {
            "emringer": self.score,
            "optimal_threshold": self.optimal_threshold,
            "rotamer_ratio": self.rotamer_ratio,
            "max_zscore": self.zscore,
            "residues": self.n_residues,
        }


def _scan_peaks(peak_value: np.ndarray, rotameric: np.ndarray, lowest: np.ndarray,
                highest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2–4 of the module docstring for ``D`` sets of residues at once: ``peak_value``
    and ``rotameric`` (D, R) of each set's peaks, ``lowest`` and ``highest`` (D,) the ends of
    its thresholds. Returns its thresholds, their z-scores and rotameric ratios, and whether
    each threshold comes before the scan stopped (the first ratio of 0), each (D, T)."""
    steps = np.arange(N_THRESHOLDS)[None, :]
    thresholds = lowest[:, None] + steps * (highest - lowest)[:, None] / N_THRESHOLDS
    above = peak_value[:, None, :] > thresholds[:, :, None]  # (D, T, R)
    total = above.sum(axis=2).astype(np.float64)
    hits = (above & rotameric[:, None, :]).sum(axis=2).astype(np.float64)
    mean = total * P_ROTAMERIC
    std = np.sqrt(total * P_ROTAMERIC * (1.0 - P_ROTAMERIC))
    tiny = 1e-21  # cctbx's guard against 0/0 (no peaks above a threshold)
    zscores = (hits - mean) / (std + tiny)
    ratios = hits / (total + tiny)
    valid = np.cumsum(ratios == 0, axis=1) == 0
    return thresholds, zscores, ratios, valid


def _threshold_scan(densities: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_scan_peaks` of one map's ``(R, 72)`` densities: the thresholds, their z-scores
    and rotameric ratios (NaN after the scan stopped), and each residue's peak index and
    value."""
    n_res = len(densities)
    if n_res == 0:
        raise ConfigError(
            "no residue could be scanned: the map and the model do not overlap "
            "(check that they are in the same frame: origin and voxel size)"
        )
    peak_index = np.argmax(densities, axis=1)
    peak_value = densities[np.arange(n_res), peak_index]
    lowest = float(densities.mean(axis=1).mean())
    highest = float(peak_value.max())
    if highest == lowest:
        raise ConfigError("the map is flat around the model; EMRinger cannot find features")
    thresholds, zscores, ratios, valid = (a[0] for a in _scan_peaks(
        peak_value[None], _ROTAMERIC_INDEX[peak_index][None], np.array([lowest]),
        np.array([highest])))
    if not valid.any():
        raise ConfigError("no rotameric peak at any threshold: the map shows no side chains")
    return (thresholds, np.where(valid, zscores, np.nan), np.where(valid, ratios, np.nan),
            peak_index, peak_value)


def score_scan(scan: RingerScan) -> EMRingerResult:
    """Turn a :class:`RingerScan` into the EMRinger statistics (cctbx conventions)."""
    densities = scan.densities
    thresholds, zscores, ratios, peak_index, peak_value = _threshold_scan(densities)
    n_res = len(densities)
    best = int(np.nanargmax(zscores))
    table = scan.residues.copy()
    table["peak_chi1"] = STEP_DEG * peak_index  # cctbx reports the index × 5°
    table["peak_value"] = peak_value
    table["rotameric"] = _ROTAMERIC_INDEX[peak_index]
    table["above_threshold"] = peak_value > thresholds[best]
    return EMRingerResult(
        score=float(10.0 * zscores[best] / np.sqrt(n_res)),
        optimal_threshold=float(thresholds[best]),
        rotamer_ratio=float(ratios[best]),
        zscore=float(zscores[best]),
        n_residues=n_res,
        thresholds=thresholds,
        zscores=zscores,
        ratios=ratios,
        table=table,
        skipped=scan.skipped,
    )


def _score(densities: np.ndarray) -> float:
    """The EMRinger score of ``(R, 72)`` densities alone (NaN where no threshold is valid)."""
    try:
        zscores = _threshold_scan(densities)[1]
    except ConfigError:
        return float("nan")
    return float(10.0 * np.nanmax(zscores) / np.sqrt(len(densities)))


def _scores_of_draws(densities: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """:func:`_score` of ``densities[draw]`` for every row of ``draws`` (D, n) at once
    (:func:`_scan_peaks` over the draws; NaN where a draw is flat or shows no rotameric
    peak)."""
    if draws.shape[1] == 0:
        return np.full(len(draws), np.nan)
    peak_index = np.argmax(densities, axis=1)
    peak_value = densities[np.arange(len(densities)), peak_index][draws]  # (D, n)
    lowest = densities.mean(axis=1)[draws].mean(axis=1)
    highest = peak_value.max(axis=1)
    _, zscores, _, valid = _scan_peaks(peak_value, _ROTAMERIC_INDEX[peak_index][draws],
                                       lowest, highest)
    best = np.where(valid, zscores, -np.inf).max(axis=1)
    ok = valid.any(axis=1) & (highest != lowest)
    return np.where(ok, 10.0 * best / np.sqrt(draws.shape[1]), np.nan)


@dataclass(frozen=True)
class EMRingerChange:
    """How EMRinger changes from one map to another of the same model, and how much of that a
    different draw of residues could give.

    Attributes:
        difference: score of the second map − score of the first.
        low, high: the 2.5th and 97.5th percentiles of that difference when the residues
            scanned in both maps are resampled with replacement, the same draw for both (a
            paired bootstrap, 95 %): an interval that excludes 0 says the change is no accident
            of which side chains the model happens to have.
        n_residues: residues scanned in both maps.
        draws: the bootstrap's differences, one per draw (NaN where a draw showed no
            rotameric peak): what :func:`mean_change` combines across maps.
    """

    difference: float
    low: float
    high: float
    n_residues: int
    draws: np.ndarray = field(repr=False, compare=False)


def emringer_change(before: RingerScan, after: RingerScan, n_boot: int = 500, seed: int = 0
                    ) -> EMRingerChange:
    """:class:`EMRingerChange` from the scans of two maps of one model (:func:`ringer_scan`):
    the residues scanned in both are paired, and ``n_boot`` draws of them with replacement
    give the interval (draws whose resampled residues show no rotameric peak are left out)."""
    keys = ["chain", "resseq", "icode"]
    pairs = before.residues[keys].reset_index().merge(
        after.residues[keys].reset_index(), on=keys, suffixes=("_a", "_b"))
    a = before.densities[pairs["index_a"].to_numpy()]
    b = after.densities[pairs["index_b"].to_numpy()]
    n = len(pairs)
    rng = np.random.default_rng(seed)
    draws = np.array([rng.integers(0, n, n) for _ in range(n_boot)]).reshape(n_boot, n)
    boot = _scores_of_draws(b, draws) - _scores_of_draws(a, draws)
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    return EMRingerChange(_score(b) - _score(a), float(low), float(high), n, boot)


def mean_change(changes: Sequence[EMRingerChange]) -> EMRingerChange:
    """The mean of several maps' :class:`EMRingerChange` (one model each), with its 95 %
    interval from a stratified bootstrap: the k-th draws of the maps, each of which resampled
    its own residues, are averaged into the k-th draw of the mean (draws where a map showed
    no rotameric peak are left out). Pooling the maps' residues this way tells a change that
    holds across maps from one that a few side chains of each map could give, which a single
    map of 100–400 residues cannot (``n_residues`` is the maps' total)."""
    if not changes:
        raise ConfigError("mean_change needs at least one map's change")
    if len({len(c.draws) for c in changes}) != 1:
        raise ConfigError("mean_change needs the same number of bootstrap draws for every map")
    boot = np.mean([c.draws for c in changes], axis=0)
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    return EMRingerChange(float(np.mean([c.difference for c in changes])), float(low),
                          float(high), sum(c.n_residues for c in changes), boot)


def emringer(volume: Volume, structure: gemmi.Structure, model: int = 0) -> EMRingerResult:
    """EMRinger score of ``structure`` (model ``model``) in ``volume``.

    The map's voxel size and origin place it in the model's frame. Raises
    :class:`FormatError` for a model without side chains and :class:`ConfigError` when no
    residue lies inside the map.
    """
    return score_scan(ringer_scan(volume, structure, model))
