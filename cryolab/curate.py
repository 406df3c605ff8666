"""Curating experimental maps into struc2mapGAN training targets.

A deposited cryo-EM map is not yet a target a network can learn from: it covers a large box
of solvent, it holds density the model does not explain (detergent, other copies, noise), its
voxel size differs from entry to entry, and its values are in arbitrary units. struc2mapGAN's
preprocessing, which :func:`curate_pair` reproduces step by step:

1. **Box and mask around the model** (``phenix.map_box mask_atoms=True``): keep the voxels
   within ``mask_radius`` Å (3 Å, phenix's default atom radius) of an atom, zero elsewhere, and
   crop the box to the masked region plus ``margin`` Å. The network is then asked to explain
   only density the model accounts for. Variant ``mask="none"`` keeps the whole box.
2. **Resample to 1.0 Å voxels** (ChimeraX ``volume resample … spacing 1.0``), trilinearly
   (``scipy.ndimage.map_coordinates``, order 1), so every map has the same physical sampling.
   We mask *after* resampling, on the new grid, which keeps the mask edge sharp.
3. **Scale to [0, 1]**. The paper's code offers two ways: min–max over the box, and dividing
   by the 99.9th percentile of the non-zero voxels and clipping to [0, 1]. We default to the
   percentile variant (``scale="percentile"``; ``"minmax"`` is the option). Why: a masked
   experimental map has negative noise inside the mask, so min–max lifts the masked-out
   background to a map-dependent level — 0.32 and 0.34 on our two training maps, against a
   mean of 0.40 inside the mask — which no structure can predict. Clipping at zero keeps the
   background at 0 in every map, as in the inputs.
4. **The input**: molmap of the model at 2.0 Å on the same grid (``molmap #2 2.0 onGrid``),
   scaled the same way (without a mask: a simulated map has no solvent to remove).
"""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np

from .density import molmap, resample
from .errors import ConfigError
from .io import Volume, atoms_of
from .metrics import model_mask
from .normalise import minmax, percentile_scale

__all__ = ["CuratedPair", "curate_pair", "scale_unit", "box_to_mask", "TARGET_PERCENTILE"]

#: struc2mapGAN scales maps by this percentile of their non-zero voxels.
TARGET_PERCENTILE = 99.9


@dataclass
class CuratedPair:
    """One training example: ``input`` (molmap) and ``target`` (experimental), same grid.

    Attributes:
        input: molmap at ``input_resolution`` scaled to [0, 1].
        target: the curated experimental map scaled to [0, 1].
        mask: voxels within the mask radius of an atom (all True with ``mask="none"``).
        name: a label (e.g. the EMDB id).
    """

    input: Volume
    target: Volume
    mask: np.ndarray
    name: str = ""


def scale_unit(data: np.ndarray, scale: str = "minmax", percentile: float = TARGET_PERCENTILE
               ) -> np.ndarray:
    """A map scaled to [0, 1] as struc2mapGAN scales maps (float32): ``"minmax"`` is
    :func:`cryolab.normalise.minmax`; ``"percentile"`` divides by the ``percentile``-th
    percentile of the non-zero voxels and clips (:func:`cryolab.normalise.percentile_scale`)."""
    data = np.asarray(data, dtype=np.float32)
    if scale == "minmax":
        return minmax(data)
    if scale == "percentile":
        return percentile_scale(data, percentile, nonzero=True, clip=(0.0, 1.0))
    raise ConfigError(f"unknown scaling {scale!r}; use 'minmax' or 'percentile'")


def box_to_mask(volume: Volume, mask: np.ndarray, margin: int) -> tuple[Volume, np.ndarray]:
    """Crop ``volume`` (and ``mask``) to the bounding box of ``mask`` plus ``margin`` voxels."""
    if not mask.any():
        raise ConfigError("the model mask is empty: does the model lie inside the map?")
    where = np.argwhere(mask)
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = np.minimum(where.max(axis=0) + margin + 1, volume.shape)
    region = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
    origin = volume.origin + low * volume.voxel_size
    cropped = Volume(volume.data[region], volume.voxel_size, origin)
    return cropped, mask[region]


def curate_pair(
    experimental: Volume,
    structure: gemmi.Structure,
    voxel_size: float = 1.0,
    mask: str = "model",
    mask_radius: float = 3.0,
    margin: float = 4.0,
    scale: str = "percentile",
    input_resolution: float = 2.0,
    name: str = "",
) -> CuratedPair:
    """Curate an experimental map and its deposited model into a (molmap, target) pair.

    Args:
        experimental: the deposited map.
        structure: its fitted model (gemmi).
        voxel_size: voxel size of the curated grid in Å (paper: 1.0).
        mask: ``"model"`` (zero voxels farther than ``mask_radius`` from every atom, crop) or
            ``"none"``.
        mask_radius: Å (phenix.map_box's default atom radius is 3 Å).
        margin: Å of box kept around the mask when cropping.
        scale: ``"percentile"`` (default) or ``"minmax"`` (see :func:`scale_unit` and the
            module docstring).
        input_resolution: resolution of the molmap input in Å (paper: 2.0).
        name: label stored in the pair.
    """
    if mask not in ("model", "none"):
        raise ConfigError(f"unknown mask {mask!r}; use 'model' or 'none'")
    fine = resample(experimental, voxel_size)
    xyz = atoms_of(structure).xyz
    if mask == "model":
        keep = model_mask(fine.shape, fine.voxel_size, fine.origin, xyz, mask_radius)
        fine, keep = box_to_mask(fine, keep, int(np.ceil(margin / voxel_size)))
        target = np.where(keep, fine.data, 0.0)
    else:
        keep = np.ones(fine.shape, dtype=bool)
        target = fine.data
    simulated = molmap(structure, input_resolution, on_grid=fine)
    return CuratedPair(
        input=simulated.with_data(scale_unit(simulated.data, scale)),
        target=fine.with_data(scale_unit(target, scale)),
        mask=keep,
        name=name,
    )
