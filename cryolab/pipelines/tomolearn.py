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
  The missing-wedge experiment images specimens with filaments at a chosen angle to the
  tilt axis (:func:`cryolab.tomo.specimen.add_filaments`, passed to
  :func:`cryolab.tomo.simulate.simulate` as a prebuilt specimen).
- :func:`train_unet`: training on random k-slice slabs (:func:`cryolab.tiles.random_slabs`).
- :func:`gaussian_baseline`, :func:`denoise_scores`, :func:`dice_scores`: evaluation, with
  :func:`cryolab.metrics.calibrate`, :func:`cryolab.metrics.confusion_matrix` and
  :func:`cryolab.fourier.central_section` from the core.
- :func:`real_tomogram`: a real tomogram crop of the data mirror on the training grid.

Network inputs are scaled as ``cryolab denoise``/``segment`` scale them
(``SCALINGS["robust_zscore"]`` of :mod:`cryolab.apply`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..apply import INPUT_CLIP, SCALINGS
from ..data import fetch
from ..density import resample
from ..errors import ConfigError
from ..io import read_map
from ..metrics import calibrate, dice, fsc, psnr, ssim
from ..normalise import zscore
from ..tiles import random_slabs
from ..tomo.particles import REAL_TOMOGRAMS, template_files
from ..tomo.reconstruct import reconstruct_tilt_series
from ..tomo.simulate import simulate
from ..tomo.specimen import add_filaments, build_specimen

__all__ = [
    "WholeTomogram",
    "whole_tomogram",
    "data_files",
    "CLASSES",
    "FILAMENT_CLASSES",
    "TomoLearnProfile",
    "PROFILES",
    "TomoSample",
    "simulation_config",
    "tomogram_defocus",
    "with_setting",
    "simulate_sample",
    "noise_free_tomogram",
    "class_weights",
    "train_unet",
    "blend_heads",
    "denoise_tomogram",
    "gaussian_baseline",
    "denoise_scores",
    "dice_scores",
    "real_tomogram",
]

#: The segmentation classes, in label order (0 = background / ice).
CLASSES: tuple[str, ...] = ("background", "ribosome", "proteasome_26s", "membrane", "gold",
                             "microtubule")
#: Label of the filaments of the missing-wedge experiment (their own two-class problem).
FILAMENT_CLASSES: tuple[str, ...] = ("background", "filament")


@dataclass(frozen=True)
class TomoLearnProfile:
    """Sizes of one run of the chapter (lengths in Å, angles in degrees, dose in e⁻/Å²).

    Attributes:
        size: specimen (x, y, z) in Å; z is the ice thickness.
        pixel_size: voxel edge in Å.
        particle_density: fraction of the ice the particle layer fills.
        vesicles, gold, microtubules: vesicles, gold beads and 13-protofilament microtubules
            per tomogram.
        max_tilt, tilt_step, defocus, dose: acquisition (µm underfocus, total dose).
        ctf_correction: the reconstruction's CTF correction, ``"none"`` or ``"phase-flip"``
            (:class:`~cryolab.tomo.reconstruct.ReconstructionConfig`; at 10 Å voxels and
            3–6 µm underfocus little lies beyond the first CTF zero, so it changes little).
        defocus_range: (low, high) µm: each tomogram's underfocus is drawn uniformly from it
            (seeded by the tomogram's seed) instead of ``defocus``, so that networks meet the
            range real data come in (None = always ``defocus``).
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
        whole_size: (x, y, z) Å of the whole held-out tomogram on which the networks meet
            Topaz-Denoise (:mod:`cryolab.pipelines.tomoeval`).
        topaz: run Topaz-Denoise where it is installed (see
            :func:`cryolab.pipelines.tomoeval.topaz_available`).
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
    microtubules: int = 1
    max_tilt: float = 60.0
    tilt_step: float = 3.0
    defocus: float = 5.0
    defocus_range: tuple[float, float] | None = (3.0, 6.0)
    dose: float = 100.0
    ctf_correction: str = "none"
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
    whole_size: tuple[float, float, float] = (2000.0, 2000.0, 500.0)
    topaz: bool = True
    sigmas: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    threads: int | None = 1


PROFILES: dict[str, TomoLearnProfile] = {
    "smoke": TomoLearnProfile(
        size=(480.0, 480.0, 330.0), n_train=1, patch=32, base=8, depth=2, batch_size=8,
        steps=10, epochs_denoise=5, epochs_n2n=2, epochs_segment=3, filaments=0,
        robustness=(), real_data=True, sigmas=(0.5, 1.0, 2.0),
        whole_size=(320.0, 320.0, 330.0), topaz=False,
    ),
    "book": TomoLearnProfile(
        robustness=(("defocus", 3.0), ("defocus", 8.0), ("dose", 40.0), ("dose", 200.0),
                    ("pixel_size", 13.2), ("tilt_step", 1.5), ("tilt_step", 6.0)),
    ),
    # the shipped denoiser and segmenter (python -m cryolab.weights.train tomo): the book's
    # tomograms, three times as many of them, and four times the training steps
    "pretrained": TomoLearnProfile(
        n_train=12, steps=60, epochs_denoise=120, epochs_n2n=12, epochs_segment=20,
        filaments=0, robustness=(),
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
    from ..tomo.reconstruct import ReconstructionConfig
    from ..tomo.simulate import SimulationConfig
    from ..tomo.specimen import Layer, SpecimenConfig, VesicleConfig

    layers = ([Layer(["ribosome", "proteasome_26s"], density=cfg.particle_density,
                     iterations=400)] if particles else [])
    specimen = SpecimenConfig(
        size=cfg.size, pixel_size_a=cfg.pixel_size, layers=layers,
        vesicles=VesicleConfig(count=cfg.vesicles if particles else 0,
                               radius=(100.0, max(100.0, 0.3 * min(cfg.size[:2])))),
        gold=cfg.gold if particles else 0, orientations=12,
        microtubules=cfg.microtubules if particles else 0,
    )
    microscope = MicroscopeConfig(
        min_angle=-cfg.max_tilt, max_angle=cfg.max_tilt, step=cfg.tilt_step,
        defocus_um=tomogram_defocus(cfg, seed), dose=cfg.dose,
    )
    return SimulationConfig(specimen=specimen, microscope=microscope, seed=seed,
                            reconstruction=ReconstructionConfig(ctf_correction=cfg.ctf_correction))


def tomogram_defocus(cfg: TomoLearnProfile, seed: int) -> float:
    """The underfocus (µm) of the profile's tomogram ``seed``: ``cfg.defocus``, or a uniform
    draw from ``cfg.defocus_range`` seeded by ``seed``."""
    if cfg.defocus_range is None:
        return float(cfg.defocus)
    low, high = cfg.defocus_range
    return float(np.random.default_rng([seed, 7]).uniform(low, high))


def with_setting(cfg: TomoLearnProfile, **changes: float) -> TomoLearnProfile:
    """The profile with acquisition settings changed (for the robustness sweep); a changed
    defocus is used as it is (no range)."""
    bad = sorted(set(changes) - set(SWEEPABLE))
    if bad:
        raise ConfigError(f"cannot sweep {bad}; choose from {SWEEPABLE}")
    extra = {"defocus_range": None} if "defocus" in changes else {}
    return dataclasses.replace(cfg, **changes, **extra)


@dataclass
class TomoSample:
    """One simulated tomogram and its targets (all (z, y, x)).

    Attributes:
        tomogram: the WBP tomogram as a network input (robust z-score, clipped).
        prior: the noise-free prior, standardised (zero mean, unit std).
        atlas: labels on the class table ``classes``.
        instances: one id per placed object (0 elsewhere); ``class_of`` maps ids to labels.
        even, odd: reconstructions of the even / odd tilts (Noise2Noise pairs), normalised
            like the tomogram.
        noise_free: the noise-free tomogram (:func:`noise_free_tomogram`), standardised like
            the prior.
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
    noise_free: np.ndarray | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _relabel(atlas: np.ndarray, names: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Atlas labels of the simulator's class list ``names`` → labels of ``classes``."""
    lut = np.array([classes.index(n) if n in classes else 0 for n in names], dtype=np.int64)
    return lut[atlas.astype(np.int64)]


def _network_input(tomogram: np.ndarray) -> np.ndarray:
    """A tomogram as the networks see it: ``SCALINGS["robust_zscore"]`` of
    :mod:`cryolab.apply` (median 0, robust standard deviation 1, clipped to ±4), the scaling
    ``cryolab denoise`` and ``cryolab segment`` apply too."""
    return SCALINGS["robust_zscore"](tomogram)[0]


def simulate_sample(cfg: TomoLearnProfile, seed: int, halves: bool = False,
                    filament_angle: float | None = None, noise_free: bool = False
                    ) -> TomoSample:
    """Simulate one tomogram of the profile (deterministic for ``seed``).

    Args:
        halves: also reconstruct the even and odd tilts separately (Noise2Noise).
        noise_free: also image the specimen without noise (:func:`noise_free_tomogram`).
        filament_angle: build a missing-wedge specimen instead: ice and
            ``cfg.filaments`` filaments at this angle (degrees) to the tilt axis; its atlas
            has the two classes ``background``, ``filament``.
    """
    if filament_angle is None:
        config = simulation_config(cfg, seed)
        sim = simulate(config)
        classes = CLASSES
    else:
        config = simulation_config(cfg, seed, particles=False)
        rng = np.random.default_rng(seed)
        specimen = add_filaments(build_specimen(config.specimen, rng), cfg.filaments,
                                 filament_angle, rng)
        sim = simulate(config, specimen=specimen, rng=np.random.default_rng([seed, 1]))
        classes = FILAMENT_CLASSES
    specimen, names = sim.specimen, sim.class_names
    atlas = _relabel(sim.atlas, names, classes).astype(np.int64)
    class_of = {i + 1: (classes.index(p.name) if p.name in classes else 0)
                for i, p in enumerate(specimen.placements)}
    counts: dict[str, int] = {}
    for p in specimen.placements:
        counts[p.name] = counts.get(p.name, 0) + 1
    prior = zscore(np.asarray(sim.prior, np.float32), eps=1e-12)
    sample = TomoSample(_network_input(sim.tomogram), prior, atlas,
                        specimen.instances.astype(np.int32), class_of, specimen.pixel_size,
                        classes, counts=counts)
    if halves:
        sample.even, sample.odd = (_network_input(h) for h in _halves(sim))
    if noise_free:
        sample.noise_free = zscore(noise_free_tomogram(sim), eps=1e-12)
    return sample


def noise_free_tomogram(sim) -> np.ndarray:  # noqa: ANN001 - a tomo.simulate.Simulation
    """The second truth of a simulated tomogram: its specimen imaged again through the same
    microscope (CTF, dose-dependent damage, missing wedge) without shot noise or random damage,
    and reconstructed exactly as the tomogram was (same filter and CTF correction): what a
    perfect denoiser could return (float32, (z, y, x), raw units)."""
    config = sim.config
    clean = dataclasses.replace(config, prior=False, microscope=dataclasses.replace(
        config.microscope, noise=False, damage_noise=0.0))
    truth = simulate(clean, specimen=sim.specimen, rng=np.random.default_rng([config.seed, 3]))
    return truth.tomogram.astype(np.float32)


def _halves(sim) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 - a tomo.simulate.Simulation
    """The reconstructions of the even and of the odd tilts of a simulation, each made as its
    tomogram was (same reconstruction settings and CTF correction)."""
    config, series = sim.config, sim.tilt_series
    return tuple(
        reconstruct_tilt_series(series.images[i::2], series.angles[i::2],
                                sim.tomogram.shape[0], config.reconstruction,
                                pixel_size=sim.pixel_size, microscope=config.microscope)
        for i in (0, 1))


# ---------------------------------------------------------------------------- training


#: Profile fields that do not change what a network learns (left out of its checkpoint's
#: configuration, so that changing them does not retrain it).
_NOT_TRAINING = {"robustness", "real_data", "sigmas", "threads", "whole_size", "topaz"}


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

    ``n_classes == 1``: regression with the mean squared error (denoising); targets of shape
    (heads, z, y, x) train one output channel per head (the sum of their mean squared
    errors; every head sees the same slabs);
    ``n_classes > 1``: segmentation with cross-entropy on integer targets, each class
    weighted by frequency^−``weight_power`` (:func:`class_weights`). ``rotate`` adds 90°
    in-plane rotations to the flips (see :func:`cryolab.tiles.random_slabs`).

    Returns:
        ``(model, history)``; the model is in eval mode on the CPU/GPU it trained on.
    """
    import torch

    from ..nn.unet import UNet
    from ..train import Trainer, supervised_step

    torch.manual_seed(seed)
    heads = np.asarray(targets[0]).shape[0] if np.ndim(targets[0]) == 4 else 1
    model = UNet(cfg.slices, max(n_classes, heads), dims=2, base=cfg.base, depth=cfg.depth)
    if n_classes == 1:
        def loss_fn(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.mse_loss(pred, y) * pred.shape[1]
    else:
        weights = class_weights(targets, n_classes, weight_power)
        ce = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weights))

        def loss_fn(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return ce.to(pred.device)(pred, y)

    def batches(epoch: int, rng: np.random.Generator):
        for _ in range(cfg.steps):
            if heads == 1:
                yield random_slabs(inputs, targets, cfg.patch, cfg.slices, cfg.batch_size, rng,
                                   rotate=rotate)
                continue
            state = rng.bit_generator.state  # the same slabs for every head
            ys = []
            for h in range(heads):
                rng.bit_generator.state = state
                x, y = random_slabs(inputs, [t[h] for t in targets], cfg.patch, cfg.slices,
                                    cfg.batch_size, rng, rotate=rotate)
                ys.append(y)
            yield x, np.concatenate(ys, axis=1)

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1),
                                                          eta_min=cfg.lr / 20)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_TRAINING}
    config = dict(settings, epochs=epochs, n_classes=n_classes, heads=heads, seed=seed,
                  weight_power=weight_power, rotate=rotate, n_volumes=len(inputs),
                  input_norm="median-mad", input_clip=INPUT_CLIP, classes=list(CLASSES))
    trainer = Trainer(model, optimizer, supervised_step(loss_fn), checkpoint=checkpoint,
                      config=config, schedulers={"model": schedule}, seed=seed)
    history = trainer.fit(batches, epochs, progress=progress)
    return model.eval(), history


def blend_heads(model, weights: Sequence[float]):  # noqa: ANN001, ANN201 - torch modules
    """A one-output copy of a multi-head regression :class:`~cryolab.nn.unet.UNet` whose
    output is ``Σ weights[h] · head h`` — exact, since the heads are one 1×1 convolution of
    the same features (the weights are folded into it)."""
    import torch

    from ..nn.unet import UNet

    w = torch.as_tensor(np.asarray(weights, np.float32))
    if w.numel() != model.hparams["out_channels"]:
        raise ConfigError(f"blend_heads: {w.numel()} weights for "
                          f"{model.hparams['out_channels']} heads")
    single = UNet(**(model.hparams | {"out_channels": 1}))
    state = dict(model.state_dict())
    shape = state["head.weight"].shape
    state["head.weight"] = (w.view(-1, *[1] * (len(shape) - 1)) * state["head.weight"]
                            ).sum(0, keepdim=True)
    state["head.bias"] = (w * state["head.bias"]).sum(0, keepdim=True)
    single.load_state_dict(state)
    return single.eval()


# -------------------------------------------------------------------------- evaluation


def denoise_scores(estimate: np.ndarray, prior: np.ndarray, pixel_size: float
                   ) -> dict[str, float]:
    """PSNR (dB), SSIM and FSC resolutions (Å, at 0.5 and 0.143) of a calibrated estimate.

    ``data_range`` is the prior's range for both PSNR and SSIM. An FSC that never reaches the
    threshold gives the box size as its resolution.
    """
    est = calibrate(estimate, prior)
    rng = float(prior.max() - prior.min())
    curve = fsc(est, prior, pixel_size)
    return {
        "psnr": psnr(est, prior, data_range=rng),
        "ssim": ssim(est, prior, data_range=rng),
        "fsc_0.5": curve.resolution(0.5),
        "fsc_0.143": curve.resolution(0.143),
    }


def denoise_tomogram(model, tomogram: np.ndarray, patch: int = 64  # noqa: ANN001 - a UNet
                     ) -> np.ndarray:
    """A denoising network over a whole (z, y, x) tomogram as ``cryolab denoise`` runs it:
    normalised once for the whole tomogram (robust z-score, :data:`cryolab.apply.SCALINGS`),
    never per tile, then in overlapping tiles of ``patch`` voxels of which each voxel takes
    the one whose centre is nearest (:func:`cryolab.nn.unet.denoise_volume`); the output in
    the network's units (standardised)."""
    from ..apply import apply_model
    from ..io import Volume
    from ..nn.unet import denoise_volume

    # the grid is used as it is (no resampling), so the voxel size plays no part
    return apply_model(Volume(tomogram, 1.0, 0.0),
                       lambda a: denoise_volume(model, a, patch=patch), "robust_zscore",
                       restore_units=False).data


def gaussian_baseline(tomogram: np.ndarray, prior: np.ndarray, sigmas: Sequence[float]
                      ) -> tuple[float, np.ndarray, dict[float, float]]:
    """The Gaussian filter (σ in voxels) whose calibrated output has the best PSNR.

    Returns:
        ``(best sigma, filtered tomogram, {sigma: psnr})``.
    """
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
    per = dice(np.asarray(pred, np.int64), np.asarray(atlas, np.int64),
               labels=range(1, len(classes)))
    return {classes[k]: v for k, v in per.items()}


def real_tomogram(name: str, pixel_size: float, invert: bool = True):
    """A real tomogram crop from the data mirror, resampled to ``pixel_size`` Å
    (:func:`cryolab.density.resample`) and normalised like the training tomograms.

    The cylindra crops are stored contrast-inverted (dense matter bright); ``invert`` flips
    them back to the simulator's polarity (dense matter dark) before the network sees them.

    Returns:
        ``(volume on the new grid, original Volume)``.
    """
    original = read_map(fetch(name))
    fine = resample(original, pixel_size)
    data = _network_input(-fine.data if invert else fine.data)
    return fine.with_data(data), original


def data_files() -> list[str]:
    """The registered files this chapter reads: chapter 4's templates and the real tomograms."""
    return sorted(template_files() | set(REAL_TOMOGRAMS))


@dataclass
class WholeTomogram:
    """A whole held-out simulated tomogram and its two truths (all (z, y, x), float32).

    Attributes:
        tomogram: the WBP tomogram (raw units; dense matter dark).
        even, odd: reconstructions of the even and odd tilts (Noise2Noise inputs).
        prior: the ideal reconstruction (±89°, no CTF, noise or damage).
        ctf_truth: the same specimen imaged with the same microscope and missing wedge but
            without shot noise or random damage: what a perfect denoiser could return.
        pixel_size: Å. seconds: simulation wall time.
    """

    tomogram: np.ndarray
    even: np.ndarray
    odd: np.ndarray
    prior: np.ndarray
    ctf_truth: np.ndarray
    pixel_size: float
    seconds: float


def whole_tomogram(cfg, seed: int, size: tuple[float, float, float] | None = None
                   ) -> WholeTomogram:
    """Simulate a whole held-out tomogram of a chapter-05 profile ``cfg``
    (:class:`~cryolab.pipelines.tomolearn.TomoLearnProfile`) at ``size`` (x, y, z) Å (default
    the profile's), with both truths (:class:`WholeTomogram`)."""

    start = time.perf_counter()
    if size is not None:
        cfg = dataclasses.replace(cfg, size=tuple(float(s) for s in size))
    sim = simulate(simulation_config(cfg, seed))
    even, odd = _halves(sim)
    return WholeTomogram(sim.tomogram.astype(np.float32), even.astype(np.float32),
                         odd.astype(np.float32), np.asarray(sim.prior, np.float32),
                         noise_free_tomogram(sim), sim.pixel_size, time.perf_counter() - start)
