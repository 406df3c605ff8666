"""struc2mapGAN, end to end: curated pairs → patches → GAN training → full maps → metrics.

The notebook ``01_struc2map_gan`` runs these steps; maps are generated, there and by
``cryolab simulate-map --method gan``, with :func:`cryolab.apply.generate_map`. Profiles:

- ``smoke``: one small training map, a tiny generator, a few epochs (CI, seconds);
- ``book``: the mirror's two training pairs (EMD-0093 crop with 6GYN, the EMD-2566 cut-out
  with 3J6B chain 9) and a narrow generator, then two leave-one-map-out folds (EMD-30342,
  EMD-5778) with the plain and the resolution-conditioned generator each, scored on the
  held-out map after every epoch; under 15 minutes on 2 CPU cores;
- ``pretrained``: leave-one-map-out over the mirror's five map/model pairs (a generator
  trained on four maps, tested on the fifth, for each map), then the shipped generators
  trained on all five (``python -m cryolab.weights.train struc2map``; ``--fold EMD-…`` runs
  one fold, so the five can run as parallel processes): about 20 min per fold and 15 min for
  the shipped generator on one CPU thread of a shared 2-core machine;
- ``paper``: the paper's 134 training pairs (downloaded when online) and the paper's widths.

The single-split profiles are tested on EMD-3488 (haemoglobin, 5ME2), a map no model saw in
training; :func:`leave_one_map_out` tests on every map of :data:`MIRROR`.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .. import density
from ..apply import condition_channel, generate_map
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
    "MapPair",
    "MIRROR",
    "mirror_structure",
    "FoldResult",
    "LeaveOneMapOut",
    "Comparison",
    "HeldOutTrend",
    "heldout_validator",
    "run_fold",
    "leave_one_map_out",
    "mirror_pairs",
    "MASKED_MOLMAP",
]

#: Mean scores on the paper's test maps (struc2mapGAN, Table 1): GAN and the range over the
#: classical simulators (molmap, pdb2mrc, TEMPy blur, form factors).
PAPER_MEANS = {
    "pcc": {"gan": 0.594, "simulators": (0.452, 0.483)},
    "ssim": {"gan": 0.841, "simulators": (0.764, 0.848)},
    "cc_chimerax": {"gan": 0.906, "simulators": (0.559, 0.613)},
    "cc_about_mean": {"gan": 0.466, "simulators": (0.315, 0.335)},
}

@dataclass(frozen=True)
class MapPair:
    """One experimental map of the mirror with its fitted model.

    Attributes:
        map: registered name of the map; model: registered name of the model.
        resolution: the map's reported resolution (Å).
        chain: keep only this chain of the model (a zone map cut around one chain).
    """

    map: str
    model: str
    resolution: float
    chain: str | None = None


#: The mirror's five experimental map/model pairs, by EMDB id (see the mirror's README.md for
#: the frames: EMD-2566, -30342 and -5778 are placed by the MRC ORIGIN field, the EMD-0093
#: crop by NSTART). EMD-2566's resolution is the published one (Amunts et al. 2014).
MIRROR = {
    "EMD-0093": MapPair("maps/emd_0093_masked_crop.map.gz",
                        "structures/mainmastseg/6gyn.pdb.gz", 3.4),
    "EMD-2566": MapPair("maps/emd_2566_segment_3j6b_chain9.mrc.gz",
                        "structures/daq/3J6B_chain9.pdb.gz", 3.2),
    "EMD-3488": MapPair("maps/emd_3488.map.gz", "structures/ccpem/5me2.pdb.gz", 3.2),
    "EMD-30342": MapPair("maps/emd_30342_chainA_zone4A.map.gz", "structures/mapq/7cec.cif.gz",
                         3.9, chain="A"),
    "EMD-5778": MapPair("maps/emd_5778_tm_rosettaframe.map.gz",
                        "structures/rosetta_demos/3j5p_tm_chainA_rosettaframe.pdb.gz", 3.4),
}
#: Models of which one chain is used, by registered name.
_CHAIN = {p.model: p.chain for p in MIRROR.values() if p.chain}

TRAIN_MIRROR = (
    ("maps/emd_0093_masked_crop.map.gz", "structures/mainmastseg/6gyn.pdb.gz"),
    ("maps/emd_2566_segment_3j6b_chain9.mrc.gz", "structures/daq/3J6B_chain9.pdb.gz"),
)
TEST_MIRROR = ("maps/emd_3488.map.gz", "structures/ccpem/5me2.pdb.gz", 3.2)
#: Reported resolutions (Å) of the mirror's training maps: EMD-0093 from the 6GYN header;
#: EMD-2566 (yeast mitoribosome large subunit, 3J6B) as published by Amunts et al. (2014).
NATIVE_RESOLUTION = {"maps/emd_0093_masked.map.gz": 3.4} | {
    p.map: p.resolution for p in MIRROR.values()}


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
        schedule: learning-rate schedule, ``"plateau"`` (the paper's: halve after 15 epochs
            without progress) or ``"cosine"`` (from ``lr`` down to ``lr``/20 over the run).
        lomo_folds: held-out maps (keys of :data:`MIRROR`) of the leave-one-map-out folds;
            ``lomo_epochs`` epochs per fold generator.
        heldout_every: in each fold, score every generator on the held-out map after every
            this many epochs and after the last (0: only at the end) — the held-out learning
            curve; the map is generated whole (one pass of the network), not from tiles.
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
    schedule: str = "plateau"
    lomo_folds: tuple[str, ...] = ()
    lomo_epochs: int = 0
    heldout_every: int = 0

    def config(self) -> dict:
        """The settings stored in checkpoints (resume only with identical settings)."""
        return asdict(self)


PROFILES = {
    "smoke": Struc2MapProfile(
        train=(TRAIN_MIRROR[1],), base_channels=4, epochs=4, patches_per_epoch=8, pool_size=8,
        batch_size=4, lr=1e-3, torch_threads=1, patch=16, core=8, test_crop=40,
        conditioned_epochs=2, lomo_folds=("EMD-2566",), lomo_epochs=2, heldout_every=1,
    ),
    # 24³ training cubes like ``pretrained`` (maps are still generated from 32³ tiles); every
    # size chosen so that the whole chapter runs in under 15 minutes on one CPU thread
    "book": Struc2MapProfile(
        base_channels=8, epochs=8, patches_per_epoch=32, pool_size=384, batch_size=8,
        lr=1e-3, paper_scale_timing=True, torch_threads=1, conditioned_epochs=6, patch=24,
        core=12, lomo_folds=("EMD-30342", "EMD-5778"), lomo_epochs=6, heldout_every=1,
        schedule="plateau",
    ),
    "pretrained": Struc2MapProfile(
        train=tuple((p.map, p.model) for p in MIRROR.values()), base_channels=8, epochs=30,
        patches_per_epoch=32, pool_size=640, batch_size=8, lr=2e-3, schedule="cosine",
        ablations=False, torch_threads=1, conditioned_epochs=30, lomo_folds=tuple(MIRROR),
        lomo_epochs=30, patch=24, core=12, heldout_every=3,
    ),
    "paper": Struc2MapProfile(
        paper_lists=True, base_channels=32, epochs=200, patches_per_epoch=4096,
        pool_size=16384, batch_size=32, lr=1e-4, paper_scale_timing=True,
        conditioned_epochs=200,
    ),
}


# ------------------------------------------------------------------------------------ data


def mirror_structure(model_name: str):  # noqa: ANN201 - gemmi.Structure
    """A registered model, cut to the chain its map was zoned around (EMD-30342: 7CEC chain A)."""
    structure = read_structure(fetch(model_name))
    keep = _CHAIN.get(model_name)
    if keep is not None:
        for model in structure:
            for name in {c.name for c in model} - {keep}:
                model.remove_chain(name)
    return structure


def load_pair(map_name: str, model_name: str, **curate_options) -> CuratedPair:
    """Fetch a registered map and model and curate them (see :func:`cryolab.curate.curate_pair`)."""
    experimental = read_map(fetch(map_name))
    structure = mirror_structure(model_name)
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


def build_gan(cfg: Struc2MapProfile, in_channels: int = 1, epochs: int | None = None):
    """Generator, discriminator, NAdam optimisers and their schedulers (``cfg.schedule``:
    ReduceLROnPlateau, or cosine annealing over ``epochs``)."""
    import torch

    from ..nn.unetpp import Discriminator3D, UNetPlusPlus3D

    models = {
        "generator": UNetPlusPlus3D(cfg.base_channels, in_channels=in_channels),
        "discriminator": Discriminator3D(cfg.base_channels),
    }
    optimizers = {k: torch.optim.NAdam(m.parameters(), lr=cfg.lr) for k, m in models.items()}
    if cfg.schedule == "cosine":
        schedulers = {k: torch.optim.lr_scheduler.CosineAnnealingLR(
            o, T_max=max(epochs or cfg.epochs, 1), eta_min=cfg.lr / 20)
            for k, o in optimizers.items()}
    elif cfg.schedule == "plateau":
        schedulers = {k: torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=15)
                      for k, o in optimizers.items()}
    else:
        raise ConfigError(f"unknown schedule {cfg.schedule!r}; use 'plateau' or 'cosine'")
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
    validate: Callable | None = None,
):
    """Train struc2mapGAN (loss SmoothL1 + α·BCE); returns (trainer, history).

    ``reconstruction_weight=0`` or ``adversarial_weight=0`` give the paper's ablations;
    ``condition=(low, high)`` trains the resolution-conditioned generator (beyond the paper,
    see :meth:`PatchPool.batches`); ``epochs`` overrides ``cfg.epochs``; ``validate`` is
    :meth:`cryolab.train.Trainer.fit`'s (e.g. :func:`heldout_validator`).
    """
    from torch import nn

    from ..train import Trainer, gan_step

    epochs = cfg.epochs if epochs is None else epochs
    models, optimizers, schedulers = build_gan(cfg, 1 if condition is None else 2, epochs)
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
        validate=validate, progress=progress,
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
    def of(cls, scores: dict[str, dict[str, float]], gan: str = "GAN",
           against: Sequence[str] = ("molmap",)) -> Verdict:
        """The verdict of ``scores[gan]`` against every map named in ``against`` (molmap, or
        all of :data:`cryolab.density.METHODS` for the leave-one-map-out table)."""
        return cls(*(bool(all(scores[gan][k] > scores[m][k] for m in against))
                     for k in ("pcc", "cc_chimerax")))

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
        lomo: this run's leave-one-map-out folds (:meth:`LeaveOneMapOut.as_metrics`; empty
            when the profile runs none).
        lomo_pretrained: :meth:`LeaveOneMapOut.summary` of the committed ``pretrained`` run
            (all five folds), which the results overview's claims read.
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
    lomo: dict = field(default_factory=dict)
    lomo_pretrained: dict | None = None

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
            "lomo": self.lomo, "lomo_pretrained": self.lomo_pretrained,
        }


# ------------------------------------------------------------------- leave one map out

#: The baseline of the leave-one-map-out table beside the paper's four simulators: molmap at
#: the map's resolution, zeroed beyond 3 Å of the model like the targets and the GAN's output.
MASKED_MOLMAP = "molmap, masked like the targets"


@dataclass
class FoldResult:
    """One leave-one-map-out fold: a generator trained on every other map, tested on ``test``.

    Attributes:
        test: the held-out map (key of :data:`MIRROR`); train: the training maps.
        resolution: the held-out map's resolution (Å), at which the simulators run.
        scores: ``{map name: evaluate_map scores}``: ``"GAN"``, the four simulators,
            :data:`MASKED_MOLMAP`, and ``"conditioned GAN"`` (at ``resolution``) when trained.
        history: the GAN's training history (``loss``, ``reconstruction``, ``adversarial``,
            ``discriminator``, ``seconds`` per epoch).
        training_seconds: wall time of the fold's training, by model.
        heldout: the held-out learning curves, by model: ``{"epoch": [...], "pcc": [...],
            "cc_chimerax": [...]}`` at the epochs scored (``epoch`` counts completed epochs;
            empty when the profile scores only at the end, as the committed ``pretrained``
            run did).
    """

    test: str
    train: list[str]
    resolution: float
    scores: dict[str, dict[str, float]]
    history: dict[str, list[float]]
    training_seconds: dict[str, float]
    heldout: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def best_simulator_pcc(self) -> float:
        """The highest PCC of the four classical simulators on this map."""
        return max(self.scores[m]["pcc"] for m in density.METHODS)

    def whole_map(self, model: str = "GAN") -> dict[str, float] | None:
        """``model``'s final PCC and ChimeraX correlation with its map generated whole (one
        pass of the network): the last point of its held-out curve, when that curve reached
        the end of training (``None`` otherwise)."""
        curve = self.heldout.get(model)
        if not curve or curve["epoch"][-1] != len(self.history["reconstruction"]):
            return None
        return {"pcc": curve["pcc"][-1], "cc_chimerax": curve["cc_chimerax"][-1]}

    def whole_map_verdict(self, model: str = "GAN") -> Verdict | None:
        """The paper's claim on this map for ``model`` generated whole: above every classical
        simulator on PCC and on ChimeraX correlation (``None`` without a whole-map score)."""
        whole = self.whole_map(model)
        if whole is None:
            return None
        return Verdict(*(bool(all(whole[k] > self.scores[m][k] for m in density.METHODS))
                         for k in ("pcc", "cc_chimerax")))

    @property
    def verdict(self) -> Verdict:
        """The paper's claim on this map: the GAN above every classical simulator."""
        return Verdict.of(self.scores, against=density.METHODS)


@dataclass
class LeaveOneMapOut:
    """The leave-one-map-out evaluation over the mirror's maps (:func:`leave_one_map_out`)."""

    folds: list[FoldResult]

    def table(self):  # noqa: ANN201 - pandas is imported lazily
        """Scores as a DataFrame indexed by (held-out map, method), one column per metric,
        with a ``"mean"`` block (the mean over folds) last."""
        import pandas as pd

        rows = [{"map": f.test, "method": m, **{k: s[k] for k in IMAGE_METRICS}}
                for f in self.folds for m, s in f.scores.items()]
        frame = pd.DataFrame(rows)
        means = frame.groupby("method", sort=False)[list(IMAGE_METRICS)].mean().reset_index()
        means.insert(0, "map", "mean")
        return pd.concat([frame, means]).set_index(["map", "method"])

    def means(self) -> dict[str, dict[str, float]]:
        """Mean of each metric over the folds, by method (methods scored on every fold)."""
        methods = set.intersection(*(set(f.scores) for f in self.folds))
        return {m: {k: float(np.mean([f.scores[m][k] for f in self.folds]))
                    for k in IMAGE_METRICS} for m in sorted(methods)}

    def compare(self, a: str = "conditioned GAN", b: str = "GAN",
                whole: bool = False) -> Comparison | None:
        """Model ``a`` against model ``b`` on every fold, on the tables' maps (from tiles), or
        with ``whole`` on their maps generated whole (:meth:`FoldResult.whole_map`: PCC and
        ChimeraX correlation); ``None`` when a fold lacks either."""
        def scores(f: FoldResult, m: str) -> dict[str, float] | None:
            return f.whole_map(m) if whole else f.scores.get(m)

        if not all(scores(f, a) and scores(f, b) for f in self.folds):
            return None
        return Comparison(a, b, {f.test: {k: v - scores(f, b)[k]
                                          for k, v in scores(f, a).items()
                                          if k in IMAGE_METRICS} for f in self.folds})

    def trend(self, model: str = "GAN") -> HeldOutTrend | None:
        """How ``model``'s held-out PCC moved over training, over the folds that recorded a
        held-out learning curve with at least two points (``None`` when none did)."""
        curves = [(f, f.heldout[model]) for f in self.folds
                  if len(f.heldout.get(model, {}).get("epoch", ())) >= 2]
        if not curves:
            return None
        return HeldOutTrend(
            model=model,
            epochs=int(np.mean([c["epoch"][-1] for _, c in curves])),
            first=float(np.mean([c["pcc"][0] for _, c in curves])),
            last=float(np.mean([c["pcc"][-1] for _, c in curves])),
            best=float(np.mean([max(c["pcc"]) for _, c in curves])),
            gain_per_epoch=float(np.mean([_slope(c, 0) for _, c in curves])),
            late_gain_per_epoch=float(np.mean([_slope(c, (len(c["epoch"]) - 1) // 2)
                                               for _, c in curves])),
            gap=float(np.mean([f.best_simulator_pcc - c["pcc"][-1] for f, c in curves])),
            seconds_per_epoch=float(np.mean([f.training_seconds[model] / c["epoch"][-1]
                                             for f, c in curves])),
        )

    def whole_map_summary(self, model: str = "GAN") -> dict | None:
        """``model`` generated whole against the same generator from the paper's tiles (the
        tables' maps), over the folds with a whole-map score: on how many it beats every
        simulator (both scores; PCC; ChimeraX correlation), and the mean PCC and ChimeraX
        correlation gained by generating whole. ``None`` when no fold has a whole-map score."""
        folds = [f for f in self.folds if f.whole_map(model) is not None]
        if not folds:
            return None
        verdicts = [f.whole_map_verdict(model) for f in folds]
        return {
            "n_folds": len(folds),
            "wins": sum(v.beats_pcc and v.beats_cc for v in verdicts),
            "wins_pcc": sum(v.beats_pcc for v in verdicts),
            "wins_cc": sum(v.beats_cc for v in verdicts),
            "gain": {k: float(np.mean([f.whole_map(model)[k] - f.scores[model][k]
                                       for f in folds])) for k in ("pcc", "cc_chimerax")},
        }

    def whole_map_table(self, models: Sequence[str] = ("GAN", "conditioned GAN")):  # noqa: ANN201
        """PCC and ChimeraX correlation of each of ``models`` generated whole and from the
        paper's tiles, beside the best simulator's, by (held-out map, model); folds without a
        whole-map score are left out."""
        import pandas as pd

        rows = {}
        for f in self.folds:
            for m in models:
                whole = f.whole_map(m)
                if whole is None:
                    continue
                rows[(f.test, m)] = {
                    "PCC, tiles": f.scores[m]["pcc"], "PCC, whole map": whole["pcc"],
                    "PCC, best simulator": f.best_simulator_pcc,
                    "ChimeraX, tiles": f.scores[m]["cc_chimerax"],
                    "ChimeraX, whole map": whole["cc_chimerax"],
                    "ChimeraX, best simulator": max(f.scores[k]["cc_chimerax"]
                                                    for k in density.METHODS)}
        return pd.DataFrame(rows).T

    @property
    def wins(self) -> int:
        """Folds where the GAN beats every simulator on both PCC and ChimeraX correlation."""
        return sum(f.verdict.beats_pcc and f.verdict.beats_cc for f in self.folds)

    def summary(self) -> dict:
        """What the overview reads: means, on how many folds the GAN beats every simulator on
        PCC (``wins_pcc``), on ChimeraX correlation (``wins_cc``), on both, and the same for
        each generator generated whole (``whole_map``, :meth:`whole_map_summary`)."""
        return {"means": self.means(), "wins": self.wins, "n_folds": len(self.folds),
                "wins_pcc": sum(f.verdict.beats_pcc for f in self.folds),
                "wins_cc": sum(f.verdict.beats_cc for f in self.folds),
                "whole_map": {m: w for m in ("GAN", "conditioned GAN")
                              if (w := self.whole_map_summary(m))}}

    def as_metrics(self) -> dict:
        """The ``lomo`` record of ``metrics.json`` (with the conditioned generator against the
        plain one, and the held-out trends, where the run has them)."""
        comparison, trends = self.compare(), {m: self.trend(m) for m in
                                              ("GAN", "conditioned GAN")}
        whole = self.compare(whole=True)
        return {"folds": [asdict(f) for f in self.folds], **self.summary(),
                "verdicts": {f.test: asdict(f.verdict) for f in self.folds},
                "conditioned_vs_plain": comparison.as_dict() if comparison else None,
                "conditioned_vs_plain_whole": whole.as_dict() if whole else None,
                "heldout_trends": {m: asdict(t) for m, t in trends.items() if t},
                "paper": PAPER_MEANS}

    @classmethod
    def from_metrics(cls, record: dict) -> LeaveOneMapOut:
        """Rebuild from :meth:`as_metrics` (e.g. the committed ``pretrained`` results)."""
        return cls([FoldResult(**f) for f in record["folds"]])


@dataclass(frozen=True)
class Comparison:
    """Two generators on the same held-out maps (e.g. the resolution-conditioned generator at
    each map's resolution against the plain one).

    Attributes:
        a, b: the two models' names (``scores`` keys of the folds).
        margins: ``{held-out map: {metric: a's score − b's}}`` for :data:`IMAGE_METRICS` (or
            PCC and ChimeraX correlation only, for maps generated whole).
    """

    a: str
    b: str
    margins: dict[str, dict[str, float]]

    def wins(self, metric: str = "pcc") -> int:
        """On how many held-out maps ``a`` scores above ``b`` on ``metric``."""
        return sum(m[metric] > 0 for m in self.margins.values())

    def mean_margin(self, metric: str = "pcc") -> float:
        """The mean of ``a``'s score − ``b``'s over the held-out maps."""
        return float(np.mean([m[metric] for m in self.margins.values()]))

    @property
    def better(self) -> bool:
        """``a`` above ``b`` on PCC and on ChimeraX correlation on every held-out map."""
        n = len(self.margins)
        return self.wins("pcc") == n and self.wins("cc_chimerax") == n

    def as_dict(self) -> dict:
        """The ``metrics.json`` record: margins, wins by metric, mean margins, the verdict."""
        metrics = [k for k in IMAGE_METRICS if k in next(iter(self.margins.values()))]
        return {"a": self.a, "b": self.b, "margins": self.margins,
                "wins": {k: self.wins(k) for k in metrics},
                "mean_margin": {k: self.mean_margin(k) for k in metrics},
                "n_folds": len(self.margins), "better": self.better}


@dataclass(frozen=True)
class HeldOutTrend:
    """A generator's held-out learning curve, averaged over folds (:meth:`LeaveOneMapOut.trend`).

    Attributes:
        model: the generator; epochs: training epochs of the curves.
        first, last, best: held-out PCC at the first scored epoch, at the end, and the best.
        gain_per_epoch: (last − first) / epochs between them, PCC per epoch.
        late_gain_per_epoch: the same over the second half of the curve (from its middle
            point to its last), where a curve still rising says more training would help.
        gap: the best classical simulator's PCC on the map − the generator's last PCC.
        seconds_per_epoch: wall time per epoch (s, the run's CPU), the held-out scoring
            included.
    """

    model: str
    epochs: int
    first: float
    last: float
    best: float
    gain_per_epoch: float
    late_gain_per_epoch: float
    gap: float
    seconds_per_epoch: float

    @property
    def closes_gap(self) -> bool:
        """The generator ends above the best simulator (the gap is closed)."""
        return self.gap < 0

    @property
    def epochs_to_close(self) -> float:
        """More epochs to close the gap if the held-out PCC kept rising at its rate over the
        second half of this run (a linear extrapolation, an optimistic bound: curves flatten);
        ``inf`` when it did not rise there, 0 when the gap is closed."""
        if self.closes_gap:
            return 0.0
        rate = self.late_gain_per_epoch
        return self.gap / rate if rate > 0 else float("inf")


def _slope(curve: Mapping[str, Sequence[float]], start: int) -> float:
    """Held-out PCC gained per epoch from point ``start`` of a curve to its last point."""
    return ((curve["pcc"][-1] - curve["pcc"][start])
            / (curve["epoch"][-1] - curve["epoch"][start]))


def heldout_validator(pair: CuratedPair, structure, every: int, epochs: int,  # noqa: ANN001
                      resolution: float | None = None, device: str | None = None) -> Callable:
    """A ``validate`` for :meth:`cryolab.train.Trainer.fit` that generates the held-out map
    whole (:func:`cryolab.apply.generate_map` with ``whole=True``, masked like the targets) and
    scores it (``heldout_pcc``, ``heldout_cc_chimerax``) after every ``every`` epochs and
    after epoch ``epochs``; ``resolution`` (Å) for a conditioned generator."""

    def validate(trainer) -> dict[str, float]:  # noqa: ANN001 - cryolab.train.Trainer
        done = trainer.epoch + 1
        if done % every and done != epochs:
            return {}
        made = generate_map(trainer.models["generator"], structure, on_grid=pair.target,
                            mask_radius=3.0, resolution=resolution, device=device, whole=True)
        scores = evaluate_map(made.data, pair.target.data)
        return {"heldout_pcc": scores["pcc"], "heldout_cc_chimerax": scores["cc_chimerax"]}

    return validate


def _heldout_curve(history) -> dict[str, list[float]]:  # noqa: ANN001 - cryolab.train.History
    """The epochs (completed) at which a history scored the held-out map, and its scores."""
    pcc, cc = history["heldout_pcc"], history["heldout_cc_chimerax"]
    kept = [i for i, v in enumerate(pcc) if np.isfinite(v)]
    return {"epoch": [i + 1 for i in kept], "pcc": [float(pcc[i]) for i in kept],
            "cc_chimerax": [float(cc[i]) for i in kept]}


def _plain_history(history) -> dict[str, list[float]]:  # noqa: ANN001 - cryolab.train.History
    keys = ("loss", "reconstruction", "adversarial", "discriminator", "seconds")
    return {k: [float(v) for v in history[k]] for k in keys}


def run_fold(
    cfg: Struc2MapProfile, pairs: Mapping[str, CuratedPair], test: str,
    folder: Path | None = None, device: str | None = None, progress: bool = False,
    conditioned: bool = False,
):
    """Train on every pair of ``pairs`` but ``test`` (``cfg.lomo_epochs`` epochs) and score the
    generator and the simulators on ``test``; returns (FoldResult, generator, generated map).

    With ``conditioned`` a resolution-conditioned generator is trained on the same pool (same
    epochs) and scored at the held-out map's own resolution. With ``cfg.heldout_every`` each
    generator is also scored on the held-out map during training (:func:`heldout_validator`;
    the curves go to :attr:`FoldResult.heldout`). Checkpoints go to ``folder`` (a rerun
    resumes them). Maps are generated with the paper's 32³ tiles and 20³ cores whatever the
    training patch, as ``cryolab simulate-map`` does.
    """
    train = [k for k in pairs if k != test]
    pool = PatchPool([pairs[k] for k in train], cfg.patch, cfg.pool_size, seed=cfg.seed,
                     resolutions=[MIRROR[k].resolution for k in train])
    pair, held = pairs[test], MIRROR[test]
    structure = mirror_structure(held.model)
    variants = {"GAN": None} | ({"conditioned GAN": cfg.condition} if conditioned else {})
    generators, seconds, curves, histories = {}, {}, {}, {}
    for name, condition in variants.items():
        validate = None if not cfg.heldout_every else heldout_validator(
            pair, structure, cfg.heldout_every, cfg.lomo_epochs,
            resolution=None if condition is None else held.resolution, device=device)
        tag = "gan" if condition is None else "conditioned"
        trainer, fitted = train_gan(
            cfg, pool, checkpoint=None if folder is None else folder / f"fold_{test}_{tag}.pt",
            device=device, progress=progress, condition=condition, epochs=cfg.lomo_epochs,
            validate=validate)
        generators[name] = trainer.models["generator"]
        seconds[name] = float(np.nansum(fitted["seconds"]))
        if validate is not None:
            curves[name] = _heldout_curve(fitted)
        histories[name] = fitted
    made = {name: generate_map(g, structure, on_grid=pair.target, mask_radius=3.0, device=device,
                               resolution=held.resolution if name != "GAN" else None,
                               whole=False)
            for name, g in generators.items()}
    candidates = {name: v.data for name, v in made.items()}
    sims = simulator_maps(structure, held.resolution, pair.target)
    candidates |= {name: v.data for name, v in sims.items()}
    candidates[MASKED_MOLMAP] = np.where(pair.mask, sims["molmap"].data, 0.0)
    scores = {name: evaluate_map(m, pair.target.data) for name, m in candidates.items()}
    result = FoldResult(test, train, held.resolution, scores, _plain_history(histories["GAN"]),
                        seconds, curves)
    return result, generators["GAN"], made["GAN"]


def mirror_pairs(names: Sequence[str] | None = None) -> dict[str, CuratedPair]:
    """The curated pairs of :data:`MIRROR` (all, or ``names``), by EMDB id."""
    return {k: load_pair(MIRROR[k].map, MIRROR[k].model) for k in (names or MIRROR)}


def leave_one_map_out(
    cfg: Struc2MapProfile, folder: Path | None = None, device: str | None = None,
    progress: bool = False, conditioned: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[LeaveOneMapOut, dict[str, Volume]]:
    """Run the folds ``cfg.lomo_folds`` (see :func:`run_fold`); returns the evaluation and the
    GAN's map of each held-out map. ``log`` receives one line per fold. With
    ``cfg.test_crop`` (smoke) every pair is cut to a centred cube of that size."""
    pairs = mirror_pairs()
    if cfg.test_crop:
        pairs = {k: crop_pair(p, cfg.test_crop) for k, p in pairs.items()}
    folds, maps = [], {}
    for test in cfg.lomo_folds:
        fold, _, made = run_fold(cfg, pairs, test, folder, device, progress, conditioned)
        folds.append(fold)
        maps[test] = made
        if log is not None:
            gan = fold.scores["GAN"]
            best = {k: max(fold.scores[m][k] for m in density.METHODS)
                    for k in ("pcc", "cc_chimerax")}
            log(f"fold {test}: GAN PCC {gan['pcc']:.3f} (best simulator {best['pcc']:.3f}), "
                f"ChimeraX {gan['cc_chimerax']:.3f} ({best['cc_chimerax']:.3f}); "
                f"{fold.training_seconds['GAN']:.0f} s training")
    return LeaveOneMapOut(folds), maps


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``)."""
    names = {n for p in PROFILES.values() for pair in p.train for n in pair}
    names |= {n for p in PROFILES.values() for n in p.test[:2]}
    names |= {n for p in MIRROR.values() for n in (p.map, p.model)}
    return sorted(names | set(PAPER_LISTS.values()))
