"""Chapter glue for *simulating cryo-electron tomograms* (cryo-TomoSim, Purnell et al.).

The profile sets the specimen's size and contents and the sweeps the notebook runs; the
analysis helpers measure what the figures show: Thon rings (first CTF zero), the missing wedge
(the tilt range seen in Fourier space), and how close a tomogram comes to its noise-free prior.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import fft, ndimage

from ..tomo.microscope import MicroscopeConfig, apply_ctf, ctf
from ..tomo.reconstruct import ReconstructionConfig
from ..tomo.simulate import SimulationConfig
from ..tomo.specimen import Layer, SpecimenConfig, VesicleConfig

__all__ = [
    "TomoSimProfile",
    "PROFILES",
    "REAL_TOMOGRAMS",
    "simulation_config",
    "microtubule_config",
    "radial_power_spectrum",
    "radial_power_spectrum_from_power",
    "thon_rings",
    "first_zero",
    "theoretical_zeros",
    "wedge_energy",
    "measured_tilt_range",
    "correlation",
    "normalise",
]

#: The real microtubule tomogram crops of the data mirror (10.52 Å voxels, uint8, inverted).
REAL_TOMOGRAMS = ("tomograms/cylindra_13pf_MT.mrc.gz", "tomograms/cylindra_14pf_MT.mrc.gz")


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
        size=cfg.size, pixel_size=cfg.pixel_size,
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
    specimen = SpecimenConfig(size=cfg.mt_size, pixel_size=10.52, microtubules=1)
    return SimulationConfig(specimen=specimen, microscope=MicroscopeConfig(step=cfg.tilt_step),
                            seed=seed, prior=False)


# ---------------------------------------------------------------------------- analysis


def normalise(a: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation."""
    a = np.asarray(a, dtype=np.float64)
    return (a - a.mean()) / (a.std() + 1e-12)


def radial_power_spectrum(image: np.ndarray, pixel_size: float, bins: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Rotationally averaged power spectrum of a 2D image: (k in 1/Å, mean |F|²)."""
    img = normalise(image)
    power = np.abs(fft.fft2(img * np.outer(np.hanning(img.shape[0]),
                                           np.hanning(img.shape[1])))) ** 2
    ky = fft.fftfreq(img.shape[0], pixel_size)[:, None]
    kx = fft.fftfreq(img.shape[1], pixel_size)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    nyq = 0.5 / pixel_size
    bins = bins or min(img.shape) // 2
    edges = np.linspace(0, nyq, bins + 1)
    idx = np.digitize(k.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < bins)
    total = np.bincount(idx[ok], weights=power.ravel()[ok], minlength=bins)
    count = np.bincount(idx[ok], minlength=bins)
    return (edges[:-1] + edges[1:]) / 2, total / np.maximum(count, 1)


def thon_rings(defocus: float, size: int, pixel_size: float, n_images: int = 4,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The power spectrum of CTF-filtered amorphous phase images (white noise, as from thin
    carbon), averaged over ``n_images``: (2D log power, centred; and the 2D CTF²)."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((size, size))
    for _ in range(n_images):
        img = apply_ctf(rng.standard_normal((size, size)).astype(np.float32), pixel_size,
                        defocus, envelope=None)
        acc += np.abs(fft.fft2(img)) ** 2
    ky = fft.fftfreq(size, pixel_size)[:, None]
    kx = fft.fftfreq(size, pixel_size)[None, :]
    model = ctf(np.sqrt(ky**2 + kx**2), defocus, envelope=None) ** 2
    return fft.fftshift(np.log(acc / n_images + 1e-9)), fft.fftshift(model)


def theoretical_zeros(defocus: float, k_max: float, n: int = 3, k_min: float = 1e-4,
                      **ctf_kw: float) -> np.ndarray:
    """The first ``n`` zeros (1/Å) of the CTF between ``k_min`` and ``k_max`` (bracketed on a
    fine grid). ``k_min`` ≈ 0.015 skips the very-low-frequency zero of the Q term."""
    k = np.linspace(k_min, k_max, 200_000)
    c = ctf(k, defocus, envelope=None, **ctf_kw)
    crossing = np.nonzero(np.sign(c[1:]) != np.sign(c[:-1]))[0][:n]
    return (k[crossing] + k[crossing + 1]) / 2


def first_zero(log_power_2d: np.ndarray, pixel_size: float, k_min: float = 0.005,
               depth: float = 0.25) -> float:
    """The first deep minimum (1/Å) of a centred 2D log power spectrum's rotational average:
    the first local minimum beyond ``k_min`` that falls below ``depth`` × the largest power
    seen between ``k_min`` and it (shallow dips from noise are skipped)."""
    power = fft.ifftshift(np.exp(log_power_2d))
    k, prof = radial_power_spectrum_from_power(power, pixel_size)
    start = max(int(np.searchsorted(k, k_min)), 1)
    peak = 0.0
    for i in range(start, len(prof) - 1):
        peak = max(peak, prof[i])
        if prof[i] <= prof[i - 1] and prof[i] <= prof[i + 1] and prof[i] < depth * peak:
            return float(k[i])
    return float("nan")


def radial_power_spectrum_from_power(power: np.ndarray, pixel_size: float
                                     ) -> tuple[np.ndarray, np.ndarray]:
    """Rotational average of an (uncentred) 2D power spectrum, one bin per Fourier pixel."""
    n = power.shape[0]
    ky = fft.fftfreq(n, pixel_size)[:, None]
    kx = fft.fftfreq(power.shape[1], pixel_size)[None, :]
    r = np.rint(np.sqrt(ky**2 + kx**2) * n * pixel_size).astype(int)
    total = np.bincount(r.ravel(), weights=power.ravel())
    count = np.bincount(r.ravel())
    keep = slice(0, n // 2)
    return np.arange(n // 2) / (n * pixel_size), (total / np.maximum(count, 1))[keep]


def wedge_energy(volume: np.ndarray, bins: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """Fourier energy of a (z, y, x) tomogram in the (k_x, k_z) plane versus the angle of the
    frequency direction from the k_x axis (degrees, 0–90), summed over y and over |k| in
    (0.05, 0.45) cycles/voxel. A tilt series to ±θ fills angles up to θ; the missing wedge
    is the empty band above it."""
    vol = normalise(volume)
    f = np.abs(fft.fftn(vol)) ** 2
    plane = f.sum(axis=1)  # (kz, kx)
    kz = fft.fftfreq(vol.shape[0])[:, None]
    kx = fft.fftfreq(vol.shape[2])[None, :]
    k = np.sqrt(kz**2 + kx**2)
    angle = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))
    ok = (k > 0.05) & (k < 0.45)
    edges = np.linspace(0, 90, bins + 1)
    idx = np.clip(np.digitize(angle[ok], edges) - 1, 0, bins - 1)
    total = np.bincount(idx, weights=plane[ok], minlength=bins)
    count = np.bincount(idx, minlength=bins)
    return (edges[:-1] + edges[1:]) / 2, total / np.maximum(count, 1)


def measured_tilt_range(volume: np.ndarray, threshold: float = 0.1) -> float:
    """The tilt range seen in the data: the angle of the first frequency direction (scanning
    up from the k_x axis in 2° bins) whose Fourier energy falls below ``threshold`` × the
    median energy of the well-sampled directions (< 20°)."""
    angle, energy = wedge_energy(volume, bins=45)
    ref = np.median(energy[angle < 20])
    low = np.nonzero((energy < threshold * ref) & (angle >= 20))[0]
    return float(angle[low[0]] - 1.0) if len(low) else 90.0


def correlation(a: np.ndarray, b: np.ndarray, sigma: float = 0.0) -> float:
    """Pearson correlation of two volumes, after a Gaussian low-pass of ``sigma`` voxels when
    ``sigma`` > 0."""
    from ..metrics import pcc

    if sigma > 0:
        a = ndimage.gaussian_filter(np.asarray(a, np.float32), sigma)
        b = ndimage.gaussian_filter(np.asarray(b, np.float32), sigma)
    return float(pcc(a, b))


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``):
    every particle template of :data:`cryolab.tomo.specimen.TEMPLATES` and the real tomograms."""
    from ..tomo.specimen import TEMPLATES

    templates = {path for choices in TEMPLATES.values() for path in choices.values()}
    return sorted(templates | set(REAL_TOMOGRAMS))
