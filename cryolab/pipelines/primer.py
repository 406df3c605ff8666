"""The primer chapter (``00_maps_and_models``): a real map, its model, contours and resolution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import Atoms, Volume

__all__ = ["PrimerProfile", "PROFILES", "atom_inclusion", "data_files"]


@dataclass(frozen=True)
class PrimerProfile:
    """Sizes of the primer's runs.

    Attributes:
        map_name: the EMDB map (catalogue name).
        model_name: the model deposited with it.
        resolutions: the low-pass resolutions in Å to compare.
        n_levels: number of contour levels scanned for the inclusion curve.
    """

    map_name: str = "maps/emd_3488.map.gz"
    model_name: str = "structures/ccpem/5me2.pdb.gz"
    resolutions: tuple[float, ...] = (4.0, 6.0, 8.0)
    n_levels: int = 60


PROFILES = {
    "smoke": PrimerProfile(n_levels=20),
    "book": PrimerProfile(),
    "paper": PrimerProfile(resolutions=(3.5, 4.0, 5.0, 6.0, 8.0, 10.0), n_levels=120),
}


def atom_inclusion(
    volume: Volume, atoms: Atoms, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each contour level: the fraction of atoms inside the contour (map value at the atom
    above the level) and the fraction of the box enclosed by it.

    The classic way to choose a contour: high enough to enclose little solvent, low enough to
    keep most atoms inside.
    """
    at_atoms = volume.interpolate(atoms.xyz)
    inside = (at_atoms[None, :] > levels[:, None]).mean(axis=1)
    enclosed = (volume.data.ravel()[None, :] > levels[:, None]).mean(axis=1)
    return inside, enclosed


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``)."""
    return sorted({n for p in PROFILES.values() for n in (p.map_name, p.model_name)})
