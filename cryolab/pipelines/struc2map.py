"""struc2mapGAN, end to end: curated pairs → patches → GAN training → full maps → metrics.

The notebook ``01_struc2map_gan`` runs these steps; maps are generated, there and by
``cryolab simulate-map --method gan``, with :func:`cryolab.apply.generate_map`. Profiles:

- ``smoke``: one small training map, a tiny generator, a few epochs (CI, seconds);
- ``book``: the mirror's two training pairs (EMD-0093 crop with 6GYN, the EMD-2566 cut-out
  with 3J6B chain 9) and a narrow generator, minutes on 2 CPU cores;
- ``paper``: the paper's 134 training pairs (downloaded when online) and the paper's widths.

Every profile is tested on EMD-3488 (haemoglobin, 5ME2), a map no model saw in training.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .. import density
from ..apply import condition_channel
from ..curate import CuratedPair, curate_pair
from ..data import fetch
from ..degrade import blur_to_resolution
from ..errors import ConfigError, DataError
from ..io import Volume, read_map, read_structure
from ..metrics import (
    chimerax_correlation,
    fsc_resolution,
    pcc,
    ssim,
    struc2map_preprocess,
)
from ..tiles import augment, pad_to

__all__ = [
    "data_files",
    "Struc2MapProfile",
    "PROFILES",
    "PAPER_MEANS",
    "load_pair",
    "crop_pair",
    "held_out_pair",
    "training_pairs",
    "training_resolutions",
    "paper_pairs",
    "paper_cache",
    "PatchPool",
    "augment_input",
    "build_gan",
    "train_gan",
    "evaluate_map",
    "simulator_maps",
    "IMAGE_METRICS",
    "Verdict",
    "count_at_least",
    "Struc2MapRun",
]

#: Mean scores on the paper's test maps (struc2mapGAN, Table 1): GAN and the range over the
#: classical simulators (molmap, pdb2mrc, TEMPy blur, form factors).
PAPER_MEANS = {
    "pcc": {"gan": 0.594, "simulators": (0.452, 0.483)},
    "ssim": {"gan": 0.841, "simulators": (0.764, 0.848)},
    "cc_chimerax": {"gan": 0.906, "simulators": (0.559, 0.613)},
    "cc_about_mean": {"gan": 0.466, "simulators": (0.315, 0.335)},
}

TRAIN_MIRROR = (
    ("maps/emd_0093_masked_crop.map.gz", "structures/mainmastseg/6gyn.pdb.gz"),
    ("maps/emd_2566_segment_3j6b_chain9.mrc.gz", "structures/daq/3J6B_chain9.pdb.gz"),
)
TEST_MIRROR = ("maps/emd_3488.map.gz", "structures/ccpem/5me2.pdb.gz", 3.2)
#: Reported resolutions (Å) of the mirror's training maps: EMD-0093 from the 6GYN header;
#: EMD-2566 (yeast mitoribosome large subunit, 3J6B) as published by Amunts et al. (2014).
NATIVE_RESOLUTION = {
    "maps/emd_0093_masked_crop.map.gz": 3.4,
    "maps/emd_0093_masked.map.gz": 3.4,
    "maps/emd_2566_segment_3j6b_chain9.mrc.gz": 3.2,
}


@dataclass(frozen=True)
class Struc2MapProfile:
    """Sizes of one run.

    Attributes:
        train: (map, model) registered names of the training pairs (mirror).
        test: (map, model, resolution Å) of the held-out pair.
        paper_lists: train on the paper's EMDB/PDB lists instead of ``train`` (downloads).
        base_channels: generator/discriminator width at the top level (paper 32).
        epochs: training epochs; ``patches_per_epoch`` patches drawn from a pool of
            ``pool_size`` random 32³ cubes (cut once per run) per epoch.
        batch_size: patches per step.
        lr: NAdam learning rate (paper 1e-4).
        ablations: also train without the SmoothL1 term and without the adversarial term.
        paper_scale_timing: also time a paper-width (32) generator on the test structure.
        conditioned_epochs: epochs of the resolution-conditioned generator (beyond the paper;
            0 skips it), trained for target resolutions in ``condition`` (Å).
        patch, core: tile edge and kept core in voxels (paper 32 and 20).
        test_crop: cut the curated test pair to a centred cube of this many voxels (smoke).
        torch_threads: CPU threads for torch (``None``: torch's default, all cores); tiny
            networks run faster on one thread, and do not fight other processes for cores.
        seed: base seed.
    """

    train: tuple[tuple[str, str], ...] = TRAIN_MIRROR
    test: tuple[str, str, float] = TEST_MIRROR
    paper_lists: bool = False
    base_channels: int = 8
    epochs: int = 10
    patches_per_epoch: int = 64
    pool_size: int = 256
    batch_size: int = 8
    lr: float = 1e-4
    ablations: bool = True
    paper_scale_timing: bool = False
    conditioned_epochs: int = 0
    condition: tuple[float, float] = (3.0, 8.0)
    torch_threads: int | None = None
    seed: int = 0
    patch: int = 32
    core: int = 20
    test_crop: int | None = None

    def config(self) -> dict:
        """The settings stored in checkpoints (resume only with identical settings)."""
        return asdict(self)


PROFILES = {
    "smoke": Struc2MapProfile(
        train=(TRAIN_MIRROR[1],), base_channels=4, epochs=4, patches_per_epoch=8, pool_size=8,
        batch_size=4, lr=1e-3, torch_threads=1, patch=16, core=8, test_crop=40,
        conditioned_epochs=2,
    ),
    "book": Struc2MapProfile(
        base_channels=8, epochs=16, patches_per_epoch=32, pool_size=384, batch_size=8,
        lr=1e-3, paper_scale_timing=True, torch_threads=1, conditioned_epochs=8,
    ),
    "paper": Struc2MapProfile(
        paper_lists=True, base_channels=32, epochs=200, patches_per_epoch=4096,
        pool_size=16384, batch_size=32, lr=1e-4, paper_scale_timing=True,
        conditioned_epochs=200,
    ),
}


# ------------------------------------------------------------------------------------ data


def load_pair(map_name: str, model_name: str, **curate_options) -> CuratedPair:
    """Fetch a registered map and model and curate them (see :func:`cryolab.curate.curate_pair`)."""
    experimental = read_map(fetch(map_name))
    structure = read_structure(fetch(model_name))
    return curate_pair(experimental, structure, name=Path(map_name).name, **curate_options)


#: The paper's EMDB/PDB id lists (registered files), by split.
PAPER_LISTS = {split: f"lists/struc2mapgan_{split}_pairs.csv" for split in ("train", "val")}


EMDB_URL = "https://ftp.ebi.ac.uk/pub/databases/emdb/structures/EMD-{0}/map/emd_{0}.map.gz"
PDB_URL = "https://files.rcsb.org/download/{0}.cif.gz"


def paper_cache() -> Path:
    """Where the paper's maps and models are downloaded: ``$CRYOLAB_PAPER_CACHE``, else
    ``struc2mapgan/`` in the user cache (the mirror itself stays read-only)."""
    import pooch

    value = os.environ.get("CRYOLAB_PAPER_CACHE", "").strip()
    return Path(value) if value else Path(pooch.os_cache("cryolab")) / "struc2mapgan"


def paper_pairs(split: str = "train") -> list[tuple[Path, Path, float]]:
    """The paper's EMDB/PDB pairs (``split`` = ``"train"`` 134 or ``"val"`` 15), downloaded into
    :func:`paper_cache` on first use: (map path, model path, resolution Å).

    Raises :class:`~cryolab.errors.DataError` when a file is missing and cannot be downloaded
    (offline).
    """
    import pooch

    if split not in PAPER_LISTS:
        raise ConfigError(f"unknown split {split!r}; use one of {sorted(PAPER_LISTS)}")
    listing = fetch(PAPER_LISTS[split])
    with open(listing, newline="") as fh:
        rows = list(csv.DictReader(fh))
    folder = paper_cache()
    out = []
    for row in rows:
        emd, pdb = row["EMID"].strip(), row["PDBID"].strip().lower()
        paths = []
        for url, name in ((EMDB_URL.format(emd), f"emd_{emd}.map.gz"),
                          (PDB_URL.format(pdb), f"{pdb}.cif.gz")):
            path = folder / name
            if not path.is_file():
                try:
                    pooch.retrieve(url, known_hash=None, fname=name, path=folder)
                except Exception as exc:  # noqa: BLE001 - network errors come in many types
                    raise DataError(
                        f"cannot download {url} for the paper profile ({type(exc).__name__}); "
                        f"go online, or put {name} in {folder}, or use the 'book' profile"
                    ) from None
            paths.append(path)
        out.append((paths[0], paths[1], float(row["Resolution"])))
    return out


def crop_pair(pair: CuratedPair, size: int) -> CuratedPair:
    """A centred cube of ``size`` voxels (at most the pair's shape) around the mask's centre."""
    centre = np.round(ndimage.center_of_mass(pair.mask)).astype(int)
    low = np.clip(centre - size // 2, 0, np.maximum(np.array(pair.mask.shape) - size, 0))
    region = tuple(slice(a, a + size) for a in low)
    origin = pair.target.origin + low * pair.target.voxel_size

    def cut(v: Volume) -> Volume:
        return Volume(v.data[region], v.voxel_size, origin)

    return CuratedPair(cut(pair.input), cut(pair.target), pair.mask[region], pair.name)


def held_out_pair(cfg: Struc2MapProfile) -> CuratedPair:
    """The curated held-out pair of a profile (cropped when ``cfg.test_crop``)."""
    pair = load_pair(cfg.test[0], cfg.test[1])
    return crop_pair(pair, cfg.test_crop) if cfg.test_crop else pair


def training_resolutions(cfg: Struc2MapProfile) -> list[float]:
    """The reported resolution (Å) of each training map of a profile."""
    if cfg.paper_lists:
        return [r for _, _, r in paper_pairs("train")]
    return [NATIVE_RESOLUTION[m] for m, _ in cfg.train]


def training_pairs(cfg: Struc2MapProfile) -> list[CuratedPair]:
    """The curated training pairs of a profile (the paper's lists, or the mirror's)."""
    if cfg.paper_lists:
        return [
            curate_pair(read_map(m), read_structure(s), name=m.name)
            for m, s, _ in paper_pairs("train")
        ]
    return [load_pair(m, s) for m, s in cfg.train]


# --------------------------------------------------------------------------------- patches


def augment_input(cube: np.ndarray, rng: np.random.Generator, p: float = 0.25) -> np.ndarray:
    """The paper's input augmentation, each with probability ``p``: random anisotropy (one axis
    downsampled by 1.5–3× and restored), Gaussian blur (σ ≤ 0.5 voxel), Gaussian noise
    (std 0.1)."""
    out = cube
    if rng.random() < p:
        axis = int(rng.integers(0, 3))
        factor = float(rng.uniform(1.5, 3.0))
        zoom = np.ones(3)
        zoom[axis] = 1.0 / factor
        small = ndimage.zoom(out, zoom, order=1)
        back = np.array(cube.shape) / np.array(small.shape)
        out = ndimage.zoom(small, back, order=1, grid_mode=True, mode="nearest")
    if rng.random() < p:
        out = ndimage.gaussian_filter(out, float(rng.uniform(0.0, 0.5)))
    if rng.random() < p:
        out = out + rng.normal(0.0, 0.1, out.shape)
    return np.asarray(out, dtype=np.float32)


class PatchPool:
    """Random aligned (input, target) cubes cut once from the curated pairs.

    Each epoch draws ``count`` of them with the trainer's generator, flips/rotates each pair
    the same way and augments the input (:func:`augment_input`); all randomness comes from the
    epoch's ``rng``, so training resumes exactly.
    """

    def __init__(
        self, pairs: Sequence[CuratedPair], size: int, count: int, seed: int,
        min_fraction: float = 0.1, resolutions: Sequence[float] | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        weights = np.array([p.mask.sum() for p in pairs], dtype=float)
        which = rng.choice(len(pairs), size=count, p=weights / weights.sum())
        native = np.full(len(pairs), np.nan) if resolutions is None else np.asarray(resolutions)
        self.native = native[which].astype(float)  # resolution (Å) of each cube's target map
        self.inputs = np.empty((count, size, size, size), np.float32)
        self.targets = np.empty_like(self.inputs)
        for i, k in enumerate(which):
            pair = pairs[k]
            x, y = pad_to(pair.input.data, size), pad_to(pair.target.data, size)
            mask = pad_to(pair.mask.astype(np.float32), size)
            for _ in range(50):  # prefer cubes where the model has atoms
                c = [int(rng.integers(0, n - size + 1)) for n in x.shape]
                region = tuple(slice(a, a + size) for a in c)
                if mask[region].mean() >= min_fraction:
                    break
            self.inputs[i], self.targets[i] = x[region], y[region]

    def __len__(self) -> int:
        return len(self.inputs)

    def fingerprint(self) -> str:
        """A digest of the cubes, so a checkpoint is only resumed on the same data."""
        digest = hashlib.sha1(self.inputs.tobytes())
        digest.update(self.targets.tobytes())
        return digest.hexdigest()

    def batches(
        self, count: int, batch_size: int, augment_p: float = 0.25,
        condition: tuple[float, float] | None = None,
    ) -> Callable[[int, np.random.Generator], Iterator[tuple]]:
        """A ``batches(epoch, rng)`` source for :meth:`cryolab.train.Trainer.fit`.

        With ``condition=(low, high)`` (Å) each cube gets a target resolution drawn uniformly
        from [max(low, its map's resolution), high]: the target is blurred to it
        (:func:`cryolab.degrade.blur_to_resolution`) and the input gains a second channel,
        :func:`cryolab.apply.condition_channel`.
        """
        import torch

        if condition is not None and np.isnan(self.native).any():
            raise ConfigError("a resolution-conditioned pool needs the maps' resolutions")

        def source(epoch: int, rng: np.random.Generator) -> Iterator[tuple]:
            pick = rng.choice(len(self), size=min(count, len(self)), replace=count > len(self))
            for start in range(0, len(pick), batch_size):
                xs, ys = [], []
                for k in pick[start : start + batch_size]:
                    x, y = augment(rng, self.inputs[k], self.targets[k])
                    x = augment_input(x, rng, augment_p)[None]
                    if condition is not None:
                        res = float(rng.uniform(max(condition[0], self.native[k]), condition[1]))
                        y = blur_to_resolution(y, self.native[k], res)
                        x = np.concatenate([x, condition_channel(x[0], res)[None]])
                    xs.append(x)
                    ys.append(y)
                x = torch.from_numpy(np.stack(xs).astype(np.float32))
                y = torch.from_numpy(np.stack(ys)[:, None].astype(np.float32))
                yield (x, y)

        return source


# -------------------------------------------------------------------------------- training


def build_gan(cfg: Struc2MapProfile, in_channels: int = 1):
    """Generator, discriminator, NAdam optimisers and ReduceLROnPlateau schedulers."""
    import torch

    from ..nn.unetpp import Discriminator3D, UNetPlusPlus3D

    models = {
        "generator": UNetPlusPlus3D(cfg.base_channels, in_channels=in_channels),
        "discriminator": Discriminator3D(cfg.base_channels),
    }
    optimizers = {k: torch.optim.NAdam(m.parameters(), lr=cfg.lr) for k, m in models.items()}
    schedulers = {
        k: torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=15)
        for k, o in optimizers.items()
    }
    return models, optimizers, schedulers


def train_gan(
    cfg: Struc2MapProfile,
    pool: PatchPool,
    checkpoint: str | os.PathLike | None = None,
    adversarial_weight: float = 0.01,
    reconstruction_weight: float = 1.0,
    device: str | None = None,
    progress: bool = True,
    condition: tuple[float, float] | None = None,
    epochs: int | None = None,
):
    """Train struc2mapGAN (loss SmoothL1 + α·BCE); returns (trainer, history).

    ``reconstruction_weight=0`` or ``adversarial_weight=0`` give the paper's ablations;
    ``condition=(low, high)`` trains the resolution-conditioned generator (beyond the paper,
    see :meth:`PatchPool.batches`); ``epochs`` overrides ``cfg.epochs``.
    """
    from torch import nn

    from ..train import Trainer, gan_step

    models, optimizers, schedulers = build_gan(cfg, in_channels=1 if condition is None else 2)
    epochs = cfg.epochs if epochs is None else epochs
    config = {
        **cfg.config(), "adversarial_weight": adversarial_weight,
        "reconstruction_weight": reconstruction_weight, "pool": pool.fingerprint(),
        "condition": condition, "condition_channel": "input blurred to R", "epochs": epochs,
    }
    trainer = Trainer(
        models, optimizers,
        gan_step(nn.SmoothL1Loss(), adversarial_weight, reconstruction_weight),
        checkpoint=checkpoint, config=config, schedulers=schedulers, monitor="loss",
        device=device, seed=cfg.seed,
    )
    history = trainer.fit(
        pool.batches(cfg.patches_per_epoch, cfg.batch_size, condition=condition), epochs,
        progress=progress,
    )
    return trainer, history


# ------------------------------------------------------------------------------ evaluation


def simulator_maps(structure, resolution: float, grid: Volume) -> dict[str, Volume]:
    """The four classical simulators at ``resolution`` on ``grid``."""
    return {m: density.simulate(structure, resolution, m, on_grid=grid) for m in density.METHODS}


def evaluate_map(candidate: np.ndarray, experimental: np.ndarray, voxel_size: float = 1.0
                 ) -> dict[str, float]:
    """The paper's metrics of a generated or simulated map against the experimental map.

    - ``pcc``, ``ssim``: after :func:`~cryolab.metrics.struc2map_preprocess` (voxels below the
      90th percentile of the non-zero voxels zeroed, then min–max scaled) of each map;
      SSIM with a data range of 1.
    - ``cc_chimerax``, ``cc_about_mean``: ChimeraX ``measure correlation`` over the voxels where
      the experimental map exceeds its contour (the value exceeded by 1% of its voxels).
    - ``fsc_05``: map–model FSC resolution (Å) at the 0.5 threshold.
    """
    a = struc2map_preprocess(candidate)
    b = struc2map_preprocess(experimental)
    return {
        "pcc": pcc(a, b),
        "ssim": ssim(a, b, data_range=1.0),
        "cc_chimerax": chimerax_correlation(candidate, experimental),
        "cc_about_mean": chimerax_correlation(candidate, experimental, about_mean=True),
        "fsc_05": fsc_resolution(candidate, experimental, voxel_size, threshold=0.5),
    }


# --------------------------------------------------------------------------------- results


#: How many of the four image metrics: used by the notebook's text.
_COUNT = ("none", "one", "two", "three", "all")
#: The four map-similarity scores of the paper's Table 1.
IMAGE_METRICS = ("pcc", "ssim", "cc_chimerax", "cc_about_mean")


@dataclass(frozen=True)
class Verdict:
    """The chapter's headline claim on the held-out map, read from the scores: struc2mapGAN's
    map correlates better with the experimental map than molmap at the map's resolution.

    Attributes:
        beats_pcc: the GAN's PCC is above molmap's.
        beats_cc: the GAN's ChimeraX correlation is above molmap's.
    """

    beats_pcc: bool
    beats_cc: bool

    @classmethod
    def of(cls, scores: dict[str, dict[str, float]], gan: str = "GAN") -> Verdict:
        """The verdict of ``scores[gan]`` against ``scores["molmap"]``."""
        return cls(bool(scores[gan]["pcc"] > scores["molmap"]["pcc"]),
                   bool(scores[gan]["cc_chimerax"] > scores["molmap"]["cc_chimerax"]))

    @property
    def claim(self) -> str:
        """In words: ``"reproduced"``, ``"only partly reproduced"`` or ``"not reproduced"``."""
        if self.beats_pcc and self.beats_cc:
            return "reproduced"
        return "only partly reproduced" if self.beats_pcc or self.beats_cc else "not reproduced"


def count_at_least(a: dict[str, float], b: dict[str, float], strict: bool = True) -> str:
    """In words, on how many of :data:`IMAGE_METRICS` ``a`` scores above ``b`` (``strict``)
    or at least as high: ``"none"``, ``"one"``, …, ``"all"``."""
    return _COUNT[sum((a[k] > b[k]) if strict else (a[k] >= b[k]) for k in IMAGE_METRICS)]


@dataclass
class Struc2MapRun:
    """The numbers one run of the chapter produces; :meth:`as_metrics` is the schema of its
    ``metrics.json`` (read by the tests and the results overview).

    Attributes:
        history: the GAN's training history (``loss``, ``reconstruction`` per epoch).
        scores: ``{map name: evaluate_map scores}`` on the held-out map (``"GAN"``,
            ``"molmap"``, the other simulators, the ablations, the GAN's input, …).
        molmap_fourier_at_1_over_R: molmap's transform at k = 1/R relative to k = 0 (1/e).
        molmap_blob_integral: the integral of a one-atom molmap (its weight).
        generation_seconds: time to generate the test map, by generator.
        training_seconds: training time by model (from the histories).
        timings: the notebook's stopwatch, seconds by step.
        test_map: registered name of the held-out map; train_maps: names of training maps.
        conditioned: results of the resolution-conditioned generator (beyond the paper).
    """

    history: Mapping[str, Sequence[float]]
    scores: dict[str, dict[str, float]]
    molmap_fourier_at_1_over_R: float
    molmap_blob_integral: float
    generation_seconds: dict[str, float]
    training_seconds: dict[str, float]
    timings: dict[str, float]
    test_map: str
    train_maps: list[str]
    conditioned: dict

    @property
    def verdict(self) -> Verdict:
        """The headline claim on these scores."""
        return Verdict.of(self.scores)

    def as_metrics(self) -> dict:
        """The ``metrics.json`` record of the run."""
        h, verdict = self.history, self.verdict
        return {
            "train_loss_first": h["loss"][0], "train_loss_last": h["loss"][-1],
            "reconstruction_first": h["reconstruction"][0],
            "reconstruction_last": h["reconstruction"][-1],
            "scores": self.scores,
            "gan_beats_molmap_pcc": verdict.beats_pcc,
            "gan_beats_molmap_cc_chimerax": verdict.beats_cc,
            "paper": PAPER_MEANS,
            "molmap_fourier_at_1_over_R": self.molmap_fourier_at_1_over_R,
            "molmap_blob_integral": float(self.molmap_blob_integral),
            "generation_seconds": self.generation_seconds,
            "training_seconds": self.training_seconds,
            "timings": self.timings,
            "test_map": self.test_map, "train_maps": self.train_maps,
            "conditioned": self.conditioned,
        }


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``)."""
    names = {n for p in PROFILES.values() for pair in p.train for n in pair}
    names |= {n for p in PROFILES.values() for n in p.test[:2]}
    return sorted(names | set(PAPER_LISTS.values()))
