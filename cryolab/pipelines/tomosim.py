"""Chapter glue for *simulating cryo-electron tomograms* (cryo-TomoSim, Purnell et al.).

The profile sets the specimen's size and contents and the sweeps the notebook runs. What the
figures measure lives in the core: Thon rings and CTF zeros in :mod:`cryolab.tomo.microscope`
(:func:`~cryolab.tomo.microscope.thon_rings`, :func:`~cryolab.tomo.microscope.ctf_zeros`,
:func:`~cryolab.tomo.microscope.first_zero`), the missing wedge in
:func:`cryolab.tomo.reconstruct.measured_tilt_range` and :func:`cryolab.fourier.angular_energy`,
spectra in :func:`cryolab.fourier.radial_power_spectrum`. :class:`TomoSimRun` holds the
numbers of one run and the verdicts read from them; :meth:`TomoSimRun.to_dict` is the schema of
the chapter's ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import ndimage

from ..metrics import pcc
from ..tomo.microscope import MicroscopeConfig, electron_wavelength
from ..tomo.particles import REAL_TOMOGRAMS, template_files
from ..tomo.reconstruct import ReconstructionConfig
from ..tomo.simulate import Simulation, SimulationConfig
from ..tomo.specimen import Layer, SpecimenConfig, VesicleConfig

__all__ = [
    "data_files",
    "TomoSimProfile",
    "PROFILES",
    "REAL_TOMOGRAMS",
    "simulation_config",
    "microtubule_config",
    "correlation",
    "thon_table",
    "spectral_summary",
    "TomoSimRun",
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


def thon_table(thon: Mapping[float, Mapping[str, float]]) -> pd.DataFrame:
    """The Thon-ring table, one row per underfocus (µm): the first zero in theory
    (:func:`~cryolab.tomo.microscope.ctf_zeros`) and measured
    (:func:`~cryolab.tomo.microscope.first_zero`), 1/Å, and their ``relative error``."""
    table = pd.DataFrame(thon).T
    table["relative error"] = (table["first zero, measured (1/Å)"]
                               / table["first zero, theory (1/Å)"] - 1).abs()
    return table


def spectral_summary(similarity: Mapping[float, Mapping[str, float]]) -> dict:
    """The simulated dose (e⁻/Å²) whose spectrum is most like the real crops' (highest mean
    correlation of log spectra), with its correlations and those at 100 e⁻/Å²
    (``similarity``: ``{dose: {"vs <crop>": r}}``)."""
    best = max(similarity, key=lambda d: np.mean(list(similarity[d].values())))
    return {"best simulated dose": best,
            **{f"{k} at {best:g}": v for k, v in similarity[best].items()},
            **{f"{k} at 100": v for k, v in similarity[100.0].items()}}


@dataclass(frozen=True)
class TomoSimRun:
    """The numbers one run of the chapter produces, and the verdicts read from them;
    :meth:`to_dict` is the schema of its ``metrics.json`` (read by the tests and the results
    overview).

    Attributes:
        simulation: the chapter's simulation (specimen, tilt series, tomogram, prior, atlas).
        files: the MRC files :func:`~cryolab.tomo.simulate.simulate_to_directory` wrote, with
            the shape (z, y, x) each reads back with.
        n_tilts: angles in the written ``.tlt`` file.
        masks_match_atlas: the written class masks hold the atlas's voxels of each class.
        deterministic: the written atlas equals the in-memory run's.
        prior_correlation: correlation with the ideal reconstruction, by reconstruction
            (rows) and microscope setting (columns).
        thon: ``{underfocus µm: first zeros}`` (see :func:`thon_table`).
        wedge: ``{nominal ±θ: measured filled angle}``, degrees.
        dose_correlation: ``{total dose e⁻/Å²: correlation with the reference}``, doses rising.
        step_correlation: ``{tilt increment °: correlation with the reference}``.
        real_spectral_similarity: :func:`spectral_summary` against the real crops.
        timings: the notebook's seconds by step.
    """

    simulation: Simulation
    files: Mapping[str, list[int]]
    n_tilts: int
    masks_match_atlas: bool
    deterministic: bool
    prior_correlation: pd.DataFrame
    thon: Mapping[float, Mapping[str, float]]
    wedge: Mapping[float, float]
    dose_correlation: Mapping[float, float]
    step_correlation: Mapping[float, float]
    real_spectral_similarity: Mapping[str, float]
    timings: Mapping[str, float]

    @property
    def pipeline_seconds(self) -> float:
        """Seconds of the whole simulation, specimen to atlas."""
        return sum(self.simulation.timings.values())

    @property
    def shape_xyz(self) -> list[int]:
        """The tomogram's shape (x, y, z), voxels."""
        return list(self.simulation.tomogram.shape[::-1])

    @property
    def thon_max_relative_error(self) -> float:
        """The largest relative error of a measured first Thon zero."""
        return float(thon_table(self.thon)["relative error"].max())

    @property
    def dose_increase_low(self) -> bool:
        """More dose, closer to the reference: the correlation rises with every dose step up
        to 100 e⁻/Å²."""
        doses = list(self.dose_correlation)
        return bool(all(self.dose_correlation[a] < self.dose_correlation[b]
                        for a, b in zip(doses[:-1], doses[1:], strict=True) if b <= 100))

    def to_dict(self) -> dict:
        """The ``metrics.json`` record of the run."""
        summary = self.simulation.summary()
        return {
            "wavelength_300kV": electron_wavelength(300.0),
            "wavelength_200kV": electron_wavelength(200.0),
            "n_particles": summary["n_particles"],
            "placements": summary["placements"],
            "overlap_free": bool(self.simulation.specimen.overlap_free()),
            "class_voxels": summary["class_voxels"],
            "masks_match_atlas": bool(self.masks_match_atlas),
            "deterministic": bool(self.deterministic),
            "files": dict(self.files),
            "n_tilts": self.n_tilts,
            "shape_xyz": self.shape_xyz,
            "prior_correlation": self.prior_correlation.to_dict(),
            "thon": {str(k): v for k, v in self.thon.items()},
            "thon_max_relative_error": self.thon_max_relative_error,
            "wedge_measured": {str(k): v for k, v in self.wedge.items()},
            "dose_correlation": {str(k): v for k, v in self.dose_correlation.items()},
            "dose_increase_low": self.dose_increase_low,
            "step_correlation": {str(k): v for k, v in self.step_correlation.items()},
            "real_spectral_similarity": dict(self.real_spectral_similarity),
            "pipeline_seconds": self.pipeline_seconds,
            "timings": {**self.timings,
                        **{f"pipeline_{k}": v for k, v in self.simulation.timings.items()}},
        }


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``):
    every particle template and the real tomograms."""
    return sorted(template_files() | set(REAL_TOMOGRAMS))
