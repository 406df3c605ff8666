"""Particles for the tomogram simulator, from the data mirror: density templates and structures.

:mod:`cryolab.tomo.specimen` builds specimens from :class:`~cryolab.tomo.specimen.Particle`
objects and reads no files; this module is where they come from. A particle is named by a key
of :data:`TEMPLATES` (polnet's 10 Å and 5 Å maps, cylindra's tubulin), a mirror path
(``templates/...mrc.gz`` or a structure such as ``structures/...pdb.gz``) or a local PDB/mmCIF
file; :func:`load_particle` resolves the name, fetches the file once and caches the result.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..data import fetch
from ..density import resample
from ..errors import ConfigError
from ..io import atoms_of, read_map, read_structure
from .specimen import PROTEIN_DENSITY, Particle, _pad_to_sphere, voxelize_atoms

__all__ = [
    "TEMPLATES",
    "REAL_TOMOGRAMS",
    "template_files",
    "MASSES_KDA",
    "ELECTRONS_PER_DALTON",
    "particle_from_structure",
    "particle_from_template",
    "load_particle",
]

#: Short names for the density templates of the data mirror (polnet's 10 Å and 5 Å maps,
#: cylindra's tubulin). A name ending in ``_mb`` is a membrane protein: its template is aligned
#: with the membrane normal along z and centred on the membrane.
TEMPLATES: dict[str, dict[int, str]] = {
    "ribosome": {10: "templates/polnet/templates/mrcs_10A/4v4r.mrc.gz",
                 5: "templates/polnet/templates/mrcs_5A/4v4r.mrc.gz"},
    "ribosome_80s": {10: "templates/polnet/templates/mrcs_10A/6qzp.mrc.gz"},
    "ribosome_50s": {10: "templates/polnet/templates/mrcs_10A/4v4r_50S.mrc.gz",
                     5: "templates/polnet/templates/mrcs_5A/4v4r_50S.mrc.gz"},
    "proteasome_20s": {10: "templates/polnet/templates/mrcs_10A/3j9i.mrc.gz",
                       5: "templates/polnet/templates/mrcs_5A/3j9i.mrc.gz"},
    "proteasome_26s": {10: "templates/polnet/templates/mrcs_10A/4cr2.mrc.gz",
                       5: "templates/polnet/templates/mrcs_5A/4cr2.mrc.gz"},
    "rubisco": {10: "templates/polnet/templates/mrcs_10A/1bxn.mrc.gz",
                5: "templates/polnet/templates/mrcs_5A/1bxn.mrc.gz"},
    "thermosome": {10: "templates/polnet/templates/mrcs_10A/1qvr.mrc.gz",
                   5: "templates/polnet/templates/mrcs_5A/1qvr.mrc.gz"},
    "tubulin": {5: "templates/cylindra/beta-tubulin.mrc.gz"},
    **{
        f"{pdb}_mb": {10: f"templates/polnet/templates/mb_mrcs_10A/{pdb}_mbz_align_shift.mrc.gz"}
        for pdb in ("4pe5", "5gjv", "5ide", "5kxi", "5tj6", "5tqq", "5vai", "5wek", "6rd4")
    },
}

#: The real microtubule tomogram crops of the data mirror (10.52 Å voxels, uint8, inverted),
#: which chapters 4 and 5 compare the simulator and the networks with.
REAL_TOMOGRAMS = ("tomograms/cylindra_13pf_MT.mrc.gz", "tomograms/cylindra_14pf_MT.mrc.gz")


def template_files() -> set[str]:
    """The registered files of every template in :data:`TEMPLATES`."""
    return {path for choices in TEMPLATES.values() for path in choices.values()}


#: Masses (kDa) of the templated complexes, used to scale their densities.
MASSES_KDA = {"ribosome": 2500.0, "ribosome_80s": 4300.0, "ribosome_50s": 1500.0,
              "proteasome_20s": 700.0, "proteasome_26s": 2500.0, "rubisco": 550.0,
              "tubulin": 50.0}
#: Electrons (sum of atomic numbers, hydrogens included) per dalton of protein.
ELECTRONS_PER_DALTON = 0.534


def particle_from_structure(
    path: str | Path, pixel_size: float, name: str | None = None
) -> Particle:
    """A particle from a PDB/mmCIF file: atomic numbers voxelised at ``pixel_size`` Å."""
    atoms = atoms_of(read_structure(path))
    density = voxelize_atoms(atoms.xyz, atoms.atomic_number, pixel_size)
    label = name or Path(path).name.split(".")[0]
    return Particle(label, density, float(pixel_size))


def particle_from_template(name: str, pixel_size: float) -> Particle:
    """A particle from a density template of the data mirror (a key of :data:`TEMPLATES`, or a
    mirror path ``templates/...mrc.gz``), resampled to ``pixel_size`` Å
    (:func:`cryolab.density.resample`, trilinear).

    Template densities come in arbitrary units; they are scaled to the same unit as voxelised
    atoms by their total: 0.534 e⁻ per Da of the complex's mass where :data:`MASSES_KDA` knows
    it, else :data:`PROTEIN_DENSITY` times the volume of the voxels that hold 90 % of the
    density (within a factor of about 1.5 of the true volume for the templates with known
    masses).
    """
    if name in TEMPLATES:
        choices = TEMPLATES[name]
        sampling = min(choices, key=lambda s: (s > pixel_size, abs(s - pixel_size)))
        path = choices[sampling]
    elif name.startswith("templates/"):
        path = name
    else:
        raise ConfigError(
            f"unknown particle {name!r}: use one of {sorted(TEMPLATES)}, a mirror path "
            "'templates/...mrc.gz' or a PDB/mmCIF file"
        )
    vol = read_map(fetch(path))
    vol = vol.with_data(np.clip(vol.data, 0, None))
    native = float(vol.voxel_size[0])
    label = name if name in TEMPLATES else Path(name).name.split(".")[0]
    if label in MASSES_KDA:
        total = ELECTRONS_PER_DALTON * MASSES_KDA[label] * 1e3
    else:
        ranked = np.sort(vol.data.ravel())[::-1]
        n90 = int(np.searchsorted(np.cumsum(ranked), 0.9 * ranked.sum())) + 1
        total = PROTEIN_DENSITY * n90 * native**3
    data = resample(vol, pixel_size).data  # trilinear, as for every map of cryolab
    data *= total / max(float(data.sum()), 1e-12)
    return Particle(label, _pad_to_sphere(data), float(pixel_size), membrane=label.endswith("_mb"))


@functools.lru_cache(maxsize=64)
def _cached_particle(name: str, pixel_size: float) -> Particle:
    path = Path(name)
    if path.suffix.lower() in {".pdb", ".cif", ".ent", ".gz", ".mmcif"} and path.is_file():
        return particle_from_structure(path, pixel_size)
    if name.startswith("structures/") or (name.startswith("templates/") and ".pdb" in name):
        return particle_from_structure(fetch(name), pixel_size)
    return particle_from_template(name, pixel_size)


def load_particle(name: str, pixel_size: float) -> Particle:
    """A particle by name: a :data:`TEMPLATES` key, a mirror path (``templates/...mrc.gz`` or a
    structure such as ``structures/...pdb.gz``), or a local PDB/mmCIF file. Cached."""
    return _cached_particle(name, float(pixel_size))
