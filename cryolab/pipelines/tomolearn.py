"""Chapter glue for *learning from simulated tomograms* (cryo-TomoSim, second half).

Every training and test tomogram comes from :mod:`cryolab.tomo` (never from disk): a
specimen of ribosomes, 26S proteasomes, a vesicle and gold beads is imaged through a tilt
series and reconstructed by WBP; the simulator also returns the noise-free *prior* (the
regression target) and the class *atlas* (the segmentation target). This module turns those
into training slabs for the 2.5D U-Nets of :mod:`cryolab.nn.unet`, trains them with
:class:`cryolab.train.Trainer`, and scores them.

Pieces:

- :class:`TomoLearnProfile` / :data:`PROFILES`: sizes per profile (smoke, book, paper).
- :func:`simulate_sample`: one simulated tomogram with its prior, atlas (on the fixed class
  table :data:`CLASSES`), particle instances and, on request, the *even/odd* half-tilt-series
  reconstructions Noise2Noise trains on.
- :func:`add_filaments`: straight hollow filaments at a chosen angle to the tilt axis, for the
  missing-wedge experiment (added to a simulator specimen before imaging).
- :func:`sample_slabs`, :func:`train_unet`: training on random k-slice slabs.
- :func:`gaussian_baseline`, :func:`calibrate`, :func:`denoise_scores`, :func:`dice_scores`,
  :func:`confusion_matrix`, :func:`central_spectrum`: evaluation.
- :func:`real_tomogram`: a real tomogram crop of the data mirror on the training grid.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import ConfigError

__all__ = [
    "CLASSES",
    "INPUT_CLIP",
    "TomoLearnProfile",
    "PROFILES",
    "TomoSample",
    "simulation_config",
    "simulate_sample",
    "add_filaments",
    "standardise",
    "normalise_input",
    "sample_slabs",
    "train_unet",
    "gaussian_baseline",
    "calibrate",
    "denoise_scores",
    "dice_scores",
    "confusion_matrix",
    "central_spectrum",
    "real_tomogram",
]

#: The segmentation classes, in label order (0 = background / ice).
CLASSES: tuple[str, ...] = ("background", "ribosome", "proteasome_26s", "membrane", "gold")
#: Network inputs are normalised (median, robust standard deviation) and clipped to ±this many
#: standard deviations, so that the gold beads' extreme values do not set the scale.
INPUT_CLIP = 4.0
#: Label of the filaments of the missing-wedge experiment (their own two-class problem).
FILAMENT_CLASSES: tuple[str, ...] = ("background", "filament")


@dataclass(frozen=True)
class TomoLearnProfile:
    """Sizes of one run of the chapter (lengths in Å, angles in degrees, dose in e⁻/Å²).

    Attributes:
        size: specimen (x, y, z) in Å; z is the ice thickness.
        pixel_size: voxel edge in Å.
        particle_density: fraction of the ice the particle layer fills.
        vesicles, gold: vesicles and gold beads per tomogram.
        max_tilt, tilt_step, defocus, dose: acquisition (µm underfocus, total dose).
        n_train: training tomograms (a separate one, never trained on, is the test).
        slices: z-slices a 2.5D network sees (the paper's 5).
        patch: training slab edge in voxels.
        base, depth: U-Net width and number of poolings.
        batch_size, steps: slabs per batch, batches per epoch.
        epochs_denoise, epochs_n2n, epochs_segment: epochs of each network.
        lr: Adam learning rate.
        filaments: filaments per tomogram of the missing-wedge experiment (0 = skip it).
        mw_train: training tomograms per orientation in that experiment.
        epochs_mw: epochs of each missing-wedge network.
        robustness: (setting, test value) pairs of the robustness sweep (empty = skip).
        real_data: apply the denoiser to the real microtubule crops.
        sigmas: Gaussian filter widths (voxels) searched for the best baseline.
        threads: torch CPU threads (None = torch's default). Small 2D networks gain little
            from several threads and lose much when the cores are shared, so the CPU
            profiles use one.
    """

    size: tuple[float, float, float] = (960.0, 960.0, 400.0)
    pixel_size: float = 10.0
    particle_density: float = 0.15
    vesicles: int = 1
    gold: int = 3
    max_tilt: float = 60.0
    tilt_step: float = 3.0
    defocus: float = 5.0
    dose: float = 100.0
    n_train: int = 4
    slices: int = 5
    patch: int = 64
    base: int = 16
    depth: int = 3
    batch_size: int = 8
    steps: int = 25
    epochs_denoise: int = 12
    epochs_n2n: int = 8
    epochs_segment: int = 16
    lr: float = 2e-3
    filaments: int = 3
    mw_train: int = 2
    epochs_mw: int = 6
    robustness: tuple[tuple[str, float], ...] = ()
    real_data: bool = True
    sigmas: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    threads: int | None = 1


PROFILES: dict[str, TomoLearnProfile] = {
    "smoke": TomoLearnProfile(
        size=(480.0, 480.0, 330.0), n_train=1, patch=32, base=8, depth=2, batch_size=8,
        steps=10, epochs_denoise=3, epochs_n2n=2, epochs_segment=3, filaments=0,
        robustness=(), real_data=True, sigmas=(0.5, 1.0, 2.0),
    ),
    "book": TomoLearnProfile(
        robustness=(("defocus", 3.0), ("defocus", 8.0), ("dose", 40.0), ("dose", 200.0),
                    ("pixel_size", 13.2), ("tilt_step", 1.5), ("tilt_step", 6.0)),
    ),
    "paper": TomoLearnProfile(
        size=(7920.0, 7920.0, 792.0), pixel_size=13.2, n_train=10, tilt_step=2.0,
        particle_density=0.2, vesicles=4, gold=10, patch=128, base=32, depth=4,
        batch_size=16, steps=200, epochs_denoise=50, epochs_n2n=50, epochs_segment=50,
        lr=1e-3, filaments=8, mw_train=6, epochs_mw=30, threads=None,
        robustness=(("defocus", 3.0), ("defocus", 8.0), ("dose", 40.0), ("dose", 200.0),
                    ("pixel_size", 10.0), ("pixel_size", 16.0), ("tilt_step", 1.0),
                    ("tilt_step", 4.0)),
    ),
}

#: Settings the robustness sweep may change, and where they live in a profile.
SWEEPABLE = ("defocus", "dose", "pixel_size", "tilt_step")


def simulation_config(cfg: TomoLearnProfile, seed: int, particles: bool = True):
    """The :class:`~cryolab.tomo.simulate.SimulationConfig` of one tomogram of a profile.

    ``particles=False`` leaves out ribosomes, proteasomes, vesicles and gold (the
    missing-wedge experiment adds its own filaments to an otherwise empty specimen).
    """
    from ..tomo.microscope import MicroscopeConfig
    from ..tomo.simulate import SimulationConfig
    from ..tomo.specimen import Layer, SpecimenConfig, VesicleConfig

    layers = ([Layer(["ribosome", "proteasome_26s"], density=cfg.particle_density,
                     iterations=400)] if particles else [])
    specimen = SpecimenConfig(
        size=cfg.size, pixel_size=cfg.pixel_size, layers=layers,
        vesicles=VesicleConfig(count=cfg.vesicles if particles else 0,
                               radius=(100.0, max(100.0, 0.3 * min(cfg.size[:2])))),
        gold=cfg.gold if particles else 0, orientations=12,
    )
    microscope = MicroscopeConfig(
        min_angle=-cfg.max_tilt, max_angle=cfg.max_tilt, step=cfg.tilt_step,
        defocus=cfg.defocus, dose=cfg.dose,
    )
    return SimulationConfig(specimen=specimen, microscope=microscope, seed=seed)


def with_setting(cfg: TomoLearnProfile, **changes: float) -> TomoLearnProfile:
    """The profile with acquisition settings changed (for the robustness sweep)."""
    bad = sorted(set(changes) - set(SWEEPABLE))
    if bad:
        raise ConfigError(f"cannot sweep {bad}; choose from {SWEEPABLE}")
    return dataclasses.replace(cfg, **changes)


@dataclass
class TomoSample:
    """One simulated tomogram and its targets (all (z, y, x)).

    Attributes:
        tomogram: the WBP tomogram as a network input (:func:`normalise_input`).
        prior: the noise-free prior, standardised (zero mean, unit std).
        atlas: labels on the class table ``classes``.
        instances: one id per placed object (0 elsewhere); ``class_of`` maps ids to labels.
        even, odd: reconstructions of the even / odd tilts (Noise2Noise pairs), normalised
            like the tomogram.
        pixel_size: Å.
    """

    tomogram: np.ndarray
    prior: np.ndarray
    atlas: np.ndarray
    instances: np.ndarray
    class_of: dict[int, int]
    pixel_size: float
    classes: tuple[str, ...] = CLASSES
    even: np.ndarray | None = None
    odd: np.ndarray | None = None
    counts: dict[str, int] = field(default_factory=dict)


def standardise(a: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (float32)."""
    a = np.asarray(a, dtype=np.float32)
    return (a - a.mean()) / (a.std() + 1e-12)


def normalise_input(a: np.ndarray, clip: float = INPUT_CLIP) -> np.ndarray:
    """A network input: centred on its median, scaled by its robust standard deviation
    (1.4826 × the median absolute deviation) and clipped to ±``clip`` (float32).

    Median and MAD ignore the few extreme voxels of gold beads, and they do not move when the
    result is normalised again, so normalising twice changes nothing: a tomogram that was
    already normalised can be passed to ``cryolab denoise``/``segment`` safely.
    """
    a = np.asarray(a, dtype=np.float32)
    centre = float(np.median(a))
    scale = 1.4826 * float(np.median(np.abs(a - centre)))
    return np.clip((a - centre) / (scale + 1e-12), -clip, clip).astype(np.float32)


def _relabel(atlas: np.ndarray, names: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Atlas labels of the simulator's class list ``names`` → labels of ``classes``."""
    lut = np.array([classes.index(n) if n in classes else 0 for n in names], dtype=np.int64)
    return lut[atlas.astype(np.int64)]


def _reconstruct(images: np.ndarray, angles: np.ndarray, thickness: int, rc) -> np.ndarray:
    """WBP of a (sub-)series, normalised per image as :func:`cryolab.tomo.simulate.simulate`
    does (``I / mean(I) − 1``)."""
    from ..tomo.reconstruct import weighted_backprojection

    normalised = images / images.mean(axis=(1, 2), keepdims=True) - 1
    return weighted_backprojection(normalised, angles, thickness, rc.filter, rc.cutoff,
                                   rc.falloff, rc.sirt_iterations, use_gpu=None)


def _image(specimen, config, seed: int):
    """Tilt series, tomogram and prior of a specimen built outside the simulator, with the
    simulator's public microscope and reconstruction functions (same steps as ``simulate``)."""
    from ..tomo.microscope import acquire
    from ..tomo.reconstruct import ideal_reconstruction

    rng = np.random.default_rng([seed, 1])
    series = acquire(specimen.potential, specimen.pixel_size, config.microscope, rng,
                     use_gpu=None)
    rc = config.reconstruction
    thickness = specimen.shape[0]
    tomogram = _reconstruct(series.images, series.angles, thickness, rc)
    prior = ideal_reconstruction(specimen.potential, rc.prior_max_angle, rc.prior_step,
                                 thickness, use_gpu=None)
    return series, tomogram, prior


def add_filaments(specimen, count: int, angle: float, rng: np.random.Generator,
                  jitter: float = 10.0, radius: float = 125.0, wall: float = 50.0):
    """A copy of ``specimen`` with ``count`` straight hollow filaments added as class
    ``"filament"`` (microtubule-like tubes: outer ``radius`` Å, protein wall ``wall`` Å thick).

    Filaments lie in the ice mid-plane at ``angle`` ± ``jitter`` degrees from the tilt axis
    (y): 0 = parallel to the tilt axis, 90 = perpendicular. They replace the ice they occupy
    and are not placed where they would overlap earlier objects.
    """
    from ..tomo.specimen import PROTEIN_DENSITY, Placement, Specimen

    nz, ny, nx = specimen.shape
    px = specimen.pixel_size
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij",
                          sparse=True)
    occupied = specimen.instances > 0
    density = np.zeros(specimen.shape, np.float32)
    instances = specimen.instances.copy()
    placements = list(specimen.placements)
    placed = 0
    for _ in range(count * 20):
        if placed >= count:
            break
        psi = np.radians(angle + rng.uniform(-jitter, jitter))
        dy, dx = np.cos(psi), np.sin(psi)  # direction in the (y, x) plane; psi from y
        cy, cx = rng.uniform(0.15, 0.85) * ny, rng.uniform(0.15, 0.85) * nx
        # distance from the filament axis through (nz/2, cy, cx) along (0, dy, dx)
        across = (y - cy) * dx - (x - cx) * dy
        r = np.sqrt(across**2 + (z - (nz - 1) / 2) ** 2) * px
        wall_profile = np.clip((radius + px / 2 - r) / px, 0, 1) * np.clip(
            (r - (radius - wall) + px / 2) / px, 0, 1)
        tube = r <= radius + px / 2
        if np.any(occupied & tube):
            continue
        occupied |= tube
        density += (wall_profile * PROTEIN_DENSITY * px**3).astype(np.float32)
        placements.append(Placement("filament", (nz // 2, int(cy), int(cx)),
                                    (0.0, 0.0, float(np.degrees(psi))), int(tube.sum())))
        instances[tube] = len(placements)
        placed += 1
    classes = dict(specimen.classes)
    classes["filament"] = density
    ice = specimen.ice * (density == 0)
    return Specimen(classes, ice.astype(np.float32), instances, placements, px)


def simulate_sample(cfg: TomoLearnProfile, seed: int, halves: bool = False,
                    filament_angle: float | None = None) -> TomoSample:
    """Simulate one tomogram of the profile (deterministic for ``seed``).

    Args:
        halves: also reconstruct the even and odd tilts separately (Noise2Noise).
        filament_angle: build a missing-wedge specimen instead: ice and
            ``cfg.filaments`` filaments at this angle (degrees) to the tilt axis; its atlas
            has the two classes ``background``, ``filament``.
    """
    from ..tomo.simulate import simulate
    from ..tomo.specimen import build_specimen

    if filament_angle is None:
        config = simulation_config(cfg, seed)
        sim = simulate(config)
        series, tomogram, prior, specimen = sim.tilt_series, sim.tomogram, sim.prior, \
            sim.specimen
        names, classes = sim.class_names, CLASSES
    else:
        config = simulation_config(cfg, seed, particles=False)
        rng = np.random.default_rng(seed)
        specimen = add_filaments(build_specimen(config.specimen, rng), cfg.filaments,
                                 filament_angle, rng)
        series, tomogram, prior = _image(specimen, config, seed)
        names, classes = specimen.class_names, FILAMENT_CLASSES
    atlas = _relabel(specimen.atlas(), names, classes).astype(np.int64)
    class_of = {i + 1: (classes.index(p.name) if p.name in classes else 0)
                for i, p in enumerate(specimen.placements)}
    counts: dict[str, int] = {}
    for p in specimen.placements:
        counts[p.name] = counts.get(p.name, 0) + 1
    sample = TomoSample(normalise_input(tomogram), standardise(prior), atlas,
                        specimen.instances.astype(np.int32), class_of, specimen.pixel_size,
                        classes, counts=counts)
    if halves:
        rc = config.reconstruction
        sample.even, sample.odd = (
            normalise_input(_reconstruct(series.images[i::2], series.angles[i::2],
                                     specimen.shape[0], rc))
            for i in (0, 1)
        )
    return sample


# ---------------------------------------------------------------------------- training


def sample_slabs(inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], size: int,
                 slices: int, count: int, rng: np.random.Generator, flips: bool = True,
                 rotate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random training pairs for a 2.5D network: ``slices`` z-slices in, the centre slice out.

    Args:
        inputs, targets: aligned volumes (z, y, x), one pair per tomogram; targets may be
            float (regression) or integer labels (segmentation).
        size: slab edge in y and x (volumes smaller than that are zero-padded).
        slices: odd number of input slices.
        count: number of pairs.
        rng: all randomness comes from it.
        flips: random flips along z, y and x.
        rotate: also rotate by random multiples of 90° in the (y, x) plane. Off by default:
            rotating an *image* turns the tilt axis (y) into x without moving the missing
            wedge's artefacts with it, so the network sees objects at orientations the
            microscope never produced them at (used on purpose in the missing-wedge
            experiment).
    Returns:
        ``x`` (count, slices, size, size) float32 and ``y`` (count, 1, size, size) float32, or
        (count, size, size) int64 for integer targets.
    """
    if slices < 1 or slices % 2 == 0:
        raise ConfigError(f"slices must be odd, got {slices}")
    c = slices // 2
    labels = np.issubdtype(np.asarray(targets[0]).dtype, np.integer)
    xs = np.zeros((count, slices, size, size), np.float32)
    ys = np.zeros((count, size, size), np.int64 if labels else np.float32)
    for i in range(count):
        k = int(rng.integers(len(inputs)))
        vol, tgt = inputs[k], targets[k]
        nz, ny, nx = vol.shape
        z = int(rng.integers(0, nz))
        y0 = int(rng.integers(0, max(ny - size, 0) + 1))
        x0 = int(rng.integers(0, max(nx - size, 0) + 1))
        zs = np.clip(np.arange(z - c, z + c + 1), 0, nz - 1)
        a = vol[zs, y0 : y0 + size, x0 : x0 + size]
        b = tgt[z, y0 : y0 + size, x0 : x0 + size]
        if flips:
            if rng.random() < 0.5:
                a = a[::-1]
            if rng.random() < 0.5:
                a, b = a[:, ::-1], b[::-1]
            if rng.random() < 0.5:
                a, b = a[:, :, ::-1], b[:, ::-1]
        if rotate and a.shape[1] == a.shape[2]:
            k = int(rng.integers(4))
            a, b = np.rot90(a, k, axes=(1, 2)), np.rot90(b, k)
        xs[i, :, : a.shape[1], : a.shape[2]] = a
        ys[i, : b.shape[0], : b.shape[1]] = b
    return xs, (ys if labels else ys[:, None])


#: Profile fields that do not change what a network learns (left out of its checkpoint's
#: configuration, so that changing them does not retrain it).
_NOT_TRAINING = {"robustness", "real_data", "sigmas", "threads"}


def class_weights(targets: Sequence[np.ndarray], n_classes: int, power: float = 0.5
                  ) -> np.ndarray:
    """Cross-entropy class weights ∝ frequency^−power, mean 1 (rare classes count more;
    ``power`` 0 = unweighted, 0.5 = 1/√frequency, 1 = inverse frequency)."""
    counts = sum(np.bincount(t.ravel(), minlength=n_classes)[:n_classes] for t in targets)
    w = (np.maximum(counts, 1) / counts.sum()) ** -power
    return (w / w.mean()).astype(np.float32)


def train_unet(inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
               cfg: TomoLearnProfile, epochs: int, n_classes: int = 1,
               checkpoint: str | os.PathLike | None = None, seed: int = 0,
               weight_power: float = 0.5, rotate: bool = False, progress: bool = True):
    """Train a 2.5D :class:`~cryolab.nn.unet.UNet` on random slabs.

    ``n_classes == 1``: regression with the mean squared error (denoising);
    ``n_classes > 1``: segmentation with cross-entropy on integer targets, each class
    weighted by frequency^−``weight_power`` (:func:`class_weights`). ``rotate`` adds 90°
    in-plane rotations to the flips (see :func:`sample_slabs`).

    Returns:
        ``(model, history)``; the model is in eval mode on the CPU/GPU it trained on.
    """
    import torch

    from ..nn.unet import UNet
    from ..train import Trainer, supervised_step

    torch.manual_seed(seed)
    model = UNet(cfg.slices, n_classes, dims=2, base=cfg.base, depth=cfg.depth)
    if n_classes == 1:
        loss_fn = torch.nn.functional.mse_loss
    else:
        weights = class_weights(targets, n_classes, weight_power)
        ce = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weights))

        def loss_fn(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return ce.to(pred.device)(pred, y)

    def batches(epoch: int, rng: np.random.Generator):
        for _ in range(cfg.steps):
            yield sample_slabs(inputs, targets, cfg.patch, cfg.slices, cfg.batch_size, rng,
                               rotate=rotate)

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1),
                                                          eta_min=cfg.lr / 20)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_TRAINING}
    config = dict(settings, epochs=epochs, n_classes=n_classes, seed=seed,
                  weight_power=weight_power, rotate=rotate, n_volumes=len(inputs),
                  input_norm="median-mad", input_clip=INPUT_CLIP, classes=list(CLASSES))
    trainer = Trainer(model, optimizer, supervised_step(loss_fn), checkpoint=checkpoint,
                      config=config, schedulers={"model": schedule}, seed=seed)
    history = trainer.fit(batches, epochs, progress=progress)
    return model.eval(), history


# -------------------------------------------------------------------------- evaluation


def calibrate(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``a·estimate + b`` with a, b fitted by least squares to ``reference``.

    Filtering and Noise2Noise change a map's scale (and a CTF-affected tomogram's scale is not
    the prior's), so every method is put on the reference's scale before PSNR and SSIM.
    """
    e = np.asarray(estimate, np.float64).ravel()
    r = np.asarray(reference, np.float64).ravel()
    a, b = np.polyfit(e, r, 1)
    return (a * np.asarray(estimate, np.float64) + b).astype(np.float32)


def denoise_scores(estimate: np.ndarray, prior: np.ndarray, pixel_size: float
                   ) -> dict[str, float]:
    """PSNR (dB), SSIM and FSC resolutions (Å, at 0.5 and 0.143) of a calibrated estimate.

    ``data_range`` is the prior's range for both PSNR and SSIM. An FSC that never reaches the
    threshold gives the box size as its resolution.
    """
    from ..metrics import fsc, psnr, ssim

    est = calibrate(estimate, prior)
    rng = float(prior.max() - prior.min())
    curve = fsc(est, prior, pixel_size)
    return {
        "psnr": psnr(est, prior, data_range=rng),
        "ssim": ssim(est, prior, data_range=rng),
        "fsc_0.5": curve.resolution(0.5),
        "fsc_0.143": curve.resolution(0.143),
    }


def gaussian_baseline(tomogram: np.ndarray, prior: np.ndarray, sigmas: Sequence[float]
                      ) -> tuple[float, np.ndarray, dict[float, float]]:
    """The Gaussian filter (σ in voxels) whose calibrated output has the best PSNR.

    Returns:
        ``(best sigma, filtered tomogram, {sigma: psnr})``.
    """
    from ..metrics import psnr

    rng = float(prior.max() - prior.min())
    scores = {}
    for s in sigmas:
        scores[float(s)] = psnr(calibrate(ndimage.gaussian_filter(tomogram, s), prior), prior,
                                data_range=rng)
    best = max(scores, key=scores.get)
    return best, ndimage.gaussian_filter(tomogram, best), scores


def dice_scores(pred: np.ndarray, atlas: np.ndarray, classes: Sequence[str]
                ) -> dict[str, float]:
    """Dice of every non-background class, by name."""
    from ..metrics import dice

    per = dice(np.asarray(pred, np.int64), np.asarray(atlas, np.int64),
               labels=range(1, len(classes)))
    return {classes[k]: v for k, v in per.items()}


def confusion_matrix(pred: np.ndarray, atlas: np.ndarray, n_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix: ``[true, predicted]`` fraction of each true class."""
    counts = np.bincount(np.asarray(atlas, np.int64).ravel() * n_classes
                         + np.asarray(pred, np.int64).ravel(),
                         minlength=n_classes**2).reshape(n_classes, n_classes)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def central_spectrum(volume: np.ndarray, plane: str = "xz") -> np.ndarray:
    """log(1 + |F|) of the central section of a volume's 3D Fourier transform, centred.

    ``"xz"`` (k_y = 0) is where the missing wedge shows as two empty sectors about k_z;
    ``"xy"`` (k_z = 0) is the in-plane spectrum.
    """
    f = np.abs(np.fft.fftshift(np.fft.fftn(volume - volume.mean())))
    nz, ny, nx = f.shape
    section = f[:, ny // 2, :] if plane == "xz" else f[nz // 2]
    return np.log1p(section / (section.mean() + 1e-12))


def real_tomogram(name: str, pixel_size: float, invert: bool = True):
    """A real tomogram crop from the data mirror, resampled to ``pixel_size`` Å and normalised
    like the training tomograms (:func:`normalise_input`).

    The cylindra crops are stored contrast-inverted (dense matter bright); ``invert`` flips
    them back to the simulator's polarity (dense matter dark) before the network sees them.

    Returns:
        ``(volume on the new grid, original Volume)``.
    """
    from ..data import fetch
    from ..io import Volume, read_map

    original = read_map(fetch(name))
    zoom = original.voxel_size / pixel_size
    data = ndimage.zoom(original.data, zoom, order=1)
    data = normalise_input(-data if invert else data)
    voxel = original.voxel_size * np.array(original.shape) / np.array(data.shape)
    return Volume(data, voxel, original.origin), original


def data_files() -> list[str]:
    """The registered files this chapter reads: chapter 4's templates and real tomograms."""
    from . import tomosim

    return tomosim.data_files()
