"""Chapter glue for *simulating cryo-electron tomograms* (cryo-TomoSim, Purnell et al.).

The profile sets the specimen's size and contents and the sweeps the notebook runs. What the
figures measure lives in the core: Thon rings and CTF zeros in :mod:`cryolab.tomo.microscope`
(:func:`~cryolab.tomo.microscope.thon_rings`, :func:`~cryolab.tomo.microscope.ctf_zeros`,
:func:`~cryolab.tomo.microscope.first_zero`), the missing wedge in
:func:`cryolab.tomo.reconstruct.measured_tilt_range` and :func:`cryolab.fourier.angular_energy`,
spectra in :func:`cryolab.fourier.radial_power_spectrum`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ..metrics import pcc
from ..tomo.microscope import MicroscopeConfig
from ..tomo.particles import REAL_TOMOGRAMS, template_files
from ..tomo.reconstruct import ReconstructionConfig
from ..tomo.simulate import SimulationConfig
from ..tomo.specimen import Layer, SpecimenConfig, VesicleConfig

__all__ = [
    "data_files",
    "TomoSimProfile",
    "PROFILES",
    "REAL_TOMOGRAMS",
    "simulation_config",
    "microtubule_config",
    "correlation",
]



@dataclass(frozen=True)
class TomoSimProfile:
    """Sizes of one run of the chapter.

    Attributes:
        size: specimen (x, y, z) in Å. pixel_size: Å.
        layer_density, iterations: the particle layer's density cap and placement attempts.
        vesicles, microtubules, gold: counts.
        tilt_step: degrees between tilts of the main series (±60°).
        defoci: µm, the Thon-ring sweep. max_tilts: degrees, the missing-wedge sweep.
        doses: e⁻/Å², the dose sweep. steps: degrees, the tilt-increment sweep.
        thon_size, thon_pixel: image size (pixels) and pixel size (Å) of the Thon-ring images.
        mt_size: (x, y, z) Å of the microtubule specimen compared with real tomograms.
    """

    size: tuple[float, float, float]
    pixel_size: float
    layer_density: float
    iterations: int
    vesicles: int
    microtubules: int
    gold: int
    tilt_step: float
    defoci: tuple[float, ...]
    max_tilts: tuple[float, ...]
    doses: tuple[float, ...]
    steps: tuple[float, ...]
    thon_size: int
    thon_pixel: float
    mt_size: tuple[float, float, float]


PROFILES = {
    "smoke": TomoSimProfile(
        size=(1280.0, 1280.0, 400.0), pixel_size=10.0, layer_density=0.15, iterations=150,
        vesicles=1, microtubules=1, gold=2, tilt_step=3.0, defoci=(2.0, 5.0),
        max_tilts=(60.0, 30.0), doses=(3.0, 100.0), steps=(2.0, 8.0), thon_size=128,
        thon_pixel=5.0, mt_size=(800.0, 1200.0, 420.0),
    ),
    "book": TomoSimProfile(
        size=(4000.0, 4000.0, 500.0), pixel_size=10.0, layer_density=0.2, iterations=800,
        vesicles=3, microtubules=1, gold=6, tilt_step=2.0, defoci=(1.5, 3.0, 5.0, 8.0),
        max_tilts=(85.0, 60.0, 45.0, 30.0), doses=(1.0, 3.0, 10.0, 30.0, 100.0, 300.0),
        steps=(1.0, 2.0, 4.0, 8.0), thon_size=512, thon_pixel=5.0,
        mt_size=(1000.0, 2000.0, 460.0),
    ),
    "paper": TomoSimProfile(
        size=(8000.0, 8000.0, 800.0), pixel_size=8.0, layer_density=0.25, iterations=3000,
        vesicles=6, microtubules=3, gold=10, tilt_step=2.0, defoci=(1.5, 3.0, 5.0, 8.0),
        max_tilts=(85.0, 60.0, 45.0, 30.0), doses=(1.0, 3.0, 10.0, 30.0, 100.0, 300.0),
        steps=(1.0, 2.0, 4.0, 8.0), thon_size=1024, thon_pixel=4.0,
        mt_size=(2000.0, 2000.0, 600.0),
    ),
}


def simulation_config(cfg: TomoSimProfile, seed: int = 0, **microscope: float
                      ) -> SimulationConfig:
    """The chapter's crowded specimen (ribosomes, proteasomes, RuBisCO, vesicles with membrane
    proteins, a microtubule, gold, a carbon edge) imaged ±60° dose-symmetrically."""
    specimen = SpecimenConfig(
        size=cfg.size, pixel_size_a=cfg.pixel_size,
        layers=[Layer(["ribosome", "proteasome_20s"], cfg.layer_density, cfg.iterations),
                Layer(["rubisco"], cfg.layer_density / 3, cfg.iterations)],
        vesicles=VesicleConfig(count=cfg.vesicles, radius=(120.0, 160.0), irregularity=0.2,
                               proteins=["5gjv_mb"], protein_density=0.3),
        microtubules=cfg.microtubules, gold=cfg.gold, gold_radius=50.0, carbon=True,
    )
    mic = replace(MicroscopeConfig(step=cfg.tilt_step), **microscope)
    return SimulationConfig(specimen=specimen, microscope=mic,
                            reconstruction=ReconstructionConfig(), seed=seed)


def microtubule_config(cfg: TomoSimProfile, seed: int = 0) -> SimulationConfig:
    """A microtubule in plain ice at the real crops' 10.52 Å voxels, for a like-for-like look."""
    specimen = SpecimenConfig(size=cfg.mt_size, pixel_size_a=10.52, microtubules=1)
    return SimulationConfig(specimen=specimen, microscope=MicroscopeConfig(step=cfg.tilt_step),
                            seed=seed, prior=False)


# ---------------------------------------------------------------------------- analysis


def correlation(a: np.ndarray, b: np.ndarray, sigma: float = 0.0) -> float:
    """Pearson correlation of two volumes, after a Gaussian low-pass of ``sigma`` voxels when
    ``sigma`` > 0."""
    if sigma > 0:
        a = ndimage.gaussian_filter(np.asarray(a, np.float32), sigma)
        b = ndimage.gaussian_filter(np.asarray(b, np.float32), sigma)
    return float(pcc(a, b))


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``):
    every particle template and the real tomograms."""
    return sorted(template_files() | set(REAL_TOMOGRAMS))
