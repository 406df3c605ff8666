"""Map super-resolution with a 3D U-Net (Mullick et al.): the data and pieces two chapters share.

The super-resolution chapter trains a U-Net on these pairs; the sharpening chapter reuses the
same pairs, split and U-Net to compare a VAE and B-factor sharpening against it. Both take
everything from here:

- :class:`SuperResProfile` / :data:`PROFILES`: the data set's and the U-Net's sizes per
  profile (smoke, book, paper);
- :func:`load_entries` and :func:`split_by_entry`: the mirror's X-ray structures at ≤ 2 Å,
  split so that no structure is in both training and test sets;
- :func:`make_pairs`: (degraded, ground-truth) map pairs with the paper's noise model
  (:func:`cryolab.degrade.degrade`) on ground truths from
  :func:`cryolab.density.ground_truth_map`;
- :func:`training_batches`: random, augmented patch batches for :class:`cryolab.train.Trainer`;
- :func:`predict_map`, :func:`crop_around` and :func:`evaluate`: tiled inference and the
  chapter's metrics (EMRinger, RSCC, PCC, FSC resolution against the ground truth);
- real maps, the step beyond the paper: :data:`REAL_PAIRS` (the mirror's five experimental
  map/model pairs), :func:`load_real_map`, :func:`score_real` (EMRinger, map–model FSC at 0.5
  and 0.143, RSCC in the model mask, ChimeraX-style correlation), :func:`real_map_table`,
  :func:`map_character` (what differs between synthetic inputs and real maps) and
  :func:`make_realistic_pairs` (training pairs degraded by
  :func:`cryolab.degrade.realistic_degrade`);
- :func:`estimate_resolution`: a half-map-free resolution estimate (map–model FSC when a
  model is given, else the amplitude fall-off) that ``cryolab sharpen`` uses to decline maps
  outside a model's training range;
- :func:`real_map_predictor`: the shipped U-Net's path on any map (:func:`shipped_superres`,
  ``cryolab sharpen --method unet3d`` and the card), :func:`real_map_path`:
  :func:`flip_average` of the prediction, the input's own content up to
  :data:`KEPT_RESOLUTION` put back (:func:`cryolab.sharpen.keep_low_resolution`), then its
  fall-off brought to the training targets' :data:`TARGET_BFACTOR`
  (:func:`cryolab.sharpen.match_fall_off`) at the input's estimated resolution;
  :func:`leave_one_map_out` chooses among such variants without looking at the map judged.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import gemmi
import numpy as np
import torch
from scipy import ndimage

from . import metrics
from .data import fetch, find
from .degrade import NoiseParams, RealisticParams, degrade, realistic_degrade
from .density import ground_truth_map, resample
from .emringer import (
    GAMMA_ATOMS,
    RingerScan,
    emringer,
    emringer_change,
    mean_change,
    ringer_scan,
    score_scan,
)
from .errors import ConfigError
from .io import Volume, atoms_of, read_map, read_structure
from .normalise import percentile_scale
from .sharpen import (
    bfactor_sharpen,
    guinier_fit,
    keep_low_resolution,
    match_fall_off,
    radial_amplitude,
)
from .tiles import predict_volume, random_patches

__all__ = [
    "PAPER_TEST_IDS",
    "TEST_IDS",
    "INPUT_PERCENTILE",
    "TARGET_BFACTOR",
    "KEPT_RESOLUTION",
    "SuperResProfile",
    "PROFILES",
    "Entry",
    "Pair",
    "ENTRY_RESOLUTION",
    "entry_files",
    "load_entries",
    "split_by_entry",
    "make_pairs",
    "training_batches",
    "train_unet3d",
    "predict_map",
    "crop_around",
    "evaluate",
    "RealPair",
    "REAL_PAIRS",
    "RealMap",
    "load_real_map",
    "score_real",
    "REAL_SCORES",
    "real_map_table",
    "emringer_beyond_noise",
    "noise_phrase",
    "bfactor_baseline",
    "map_character",
    "make_realistic_pairs",
    "estimate_resolution",
    "character_table",
    "RealVerdict",
    "shipped_superres",
    "unet_predictor",
    "flip_average",
    "remember",
    "real_map_path",
    "envelope_fsc",
    "real_map_predictor",
    "leave_one_map_out",
    "choice_phrase",
    "on_real",
    "real_pair",
    "finetune_leave_one_out",
    "versus_bfactor",
]

#: The paper's Table 1 test structures; none of them is in the mirror.
PAPER_TEST_IDS = ("2BV8", "6AR7", "1A5S")
#: Our test entries (mirror X-ray structures ≤ 2 Å, single proteins of 60–400 residues),
#: used in this order; a profile takes the first ``n_test``.
TEST_IDS = (
    "1AKI", "1UBI", "5PTI", "1L2H", "3O5R", "2PVB", "1DIX", "4I39", "1O1Z", "1VFY", "1A8O",
    "3EMS",
)
#: Entries with fewer γ-atom residues are left out (peptides, DNA): EMRinger needs side chains.
MIN_GAMMA_RESIDUES = 20


#: Maps are divided by this percentile of their values before the network sees them.
INPUT_PERCENTILE = 99.9

#: The Guinier B (Å², fitted from 10 to 3 Å) of the maps the networks learn to output: the
#: median over the shipped model's 42 training entries of :func:`ground_truth_map` (49.8 Å²;
#: quartiles 42 and 54), rounded. :func:`real_map_path` sharpens a prediction to it.
TARGET_BFACTOR = 50.0
#: Up to this resolution (Å) :func:`real_map_path` keeps the input map's own Fourier
#: components: the low end of every Guinier fit here, where the molecule's envelope and the
#: solvent contrast give way to the B-factor fall-off the networks learn to undo.
KEPT_RESOLUTION = 10.0


@dataclass(frozen=True)
class SuperResProfile:
    """Sizes of one run of the chapter.

    Attributes:
        n_train: training entries (at most all the rest after the test entries).
        n_test: test entries, taken from :data:`TEST_IDS` in order.
        patch: training and inference patch edge in voxels (1 Å).
        patches_per_epoch: random patches drawn per epoch.
        epochs: training epochs.
        batch: patches per optimiser step (paper: 4).
        depth, base: U-Net depth and first-level width.
        lr, betas: Adam settings (paper: 2e-4, (0.5, 0.999)).
        noise: the noise model's parameters.
        stride: sliding-window stride at inference, voxels (None: half a patch; the stride
            used is :attr:`infer_stride`).
        real_crop: edge in Å of the cube around the model kept from each real cryo-EM map
            before prediction (None = the whole map).
        finetune_steps: optimiser steps of each leave-one-map-out fine-tuning on real pairs
            (:func:`finetune_leave_one_out`; 0 = none) of the run's U-Net.
        finetune_shipped_steps: the same for the shipped U-Net (its own patch and batch).
        whole_box: edge in Å of the cube of EMD-3488 kept for the check of the shipped path
            on a deposited box that is mostly solvent (None = the whole 105 Å box).
        seed: base seed.
    """

    n_train: int
    n_test: int
    patch: int
    patches_per_epoch: int
    epochs: int
    batch: int = 4
    depth: int = 4
    base: int = 32
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    noise: NoiseParams = field(default_factory=NoiseParams)
    stride: int | None = None
    real_crop: float | None = None
    finetune_steps: int = 0
    finetune_shipped_steps: int = 0
    whole_box: float | None = None
    seed: int = 0

    @property
    def infer_stride(self) -> int:
        """The sliding-window stride used at inference: ``stride`` or half a patch."""
        return self.stride or self.patch // 2

    def config(self) -> dict:
        """The settings stored in the checkpoint; ``epochs`` is left out so that a longer
        schedule resumes from a shorter run's checkpoint."""
        return {
            "n_train": self.n_train, "patch": self.patch,
            "patches_per_epoch": self.patches_per_epoch,
            "batch": self.batch, "depth": self.depth, "base": self.base, "lr": self.lr,
            "betas": list(self.betas), "noise": self.noise.as_dict(), "seed": self.seed,
        }


PROFILES = {
    "smoke": SuperResProfile(
        n_train=4, n_test=2, patch=16, patches_per_epoch=16, epochs=4, depth=2, base=8,
        lr=1e-3, stride=16, real_crop=30.0, finetune_steps=2, finetune_shipped_steps=2,
        whole_box=30.0,
    ),
    "book": SuperResProfile(
        n_train=40, n_test=10, patch=32, patches_per_epoch=256, epochs=12, depth=3, base=16,
        lr=1e-3, real_crop=60.0, finetune_steps=32, finetune_shipped_steps=150,
    ),
    # the shipped model (python -m cryolab.weights.train superres): every training entry,
    # inputs from the paper's noise model and realistic_degrade; the book's sizes, trained longer
    "pretrained": SuperResProfile(
        n_train=200, n_test=10, patch=32, patches_per_epoch=128, epochs=150, depth=3, base=16,
        lr=1e-3, real_crop=60.0,
    ),
    "paper": SuperResProfile(
        n_train=100, n_test=12, patch=128, patches_per_epoch=400, epochs=200, depth=4, base=32,
        stride=64, finetune_steps=400, finetune_shipped_steps=400,
    ),
}


@dataclass
class Entry:
    """One structure of the data set: its PDB id, mirror name and gemmi structure."""

    pdb_id: str
    name: str
    structure: gemmi.Structure


@dataclass
class Pair:
    """A training or test example: degraded input and ground truth on the same grid."""

    entry: Entry
    target: Volume
    degraded: Volume


# --------------------------------------------------------------------------------- data set


def _gamma_residues(structure: gemmi.Structure) -> int:
    return sum(r.name in GAMMA_ATOMS for ch in structure[0] for r in ch)


#: Best resolution (Å) of the X-ray structures chapters 2 and 3 learn from.
ENTRY_RESOLUTION = 2.0


def entry_files() -> list[str]:
    """The registered structures :func:`load_entries` may read (before its side-chain test)."""
    return list(find(kind="structure", method="X-ray", max_resolution=ENTRY_RESOLUTION)["name"])


def load_entries(max_resolution: float = ENTRY_RESOLUTION) -> list[Entry]:
    """The mirror's X-ray structures at ``max_resolution`` Å or better that have side chains
    (at least :data:`MIN_GAMMA_RESIDUES` residues with a γ atom), one per PDB id."""
    table = find(kind="structure", method="X-ray", max_resolution=max_resolution)
    entries, seen = [], set()
    for row in table.itertuples():
        pdb_id = str(row.pdb_id).upper()
        if pdb_id in seen:
            continue
        st = read_structure(fetch(row.name))
        if _gamma_residues(st) >= MIN_GAMMA_RESIDUES:
            entries.append(Entry(pdb_id, row.name, st))
            seen.add(pdb_id)
    return entries


def split_by_entry(
    entries: Sequence[Entry], n_test: int, n_train: int | None = None,
    test_ids: Sequence[str] = TEST_IDS,
) -> tuple[list[Entry], list[Entry]]:
    """Split entries into (train, test) so that no structure is in both.

    The paper's test structures (:data:`PAPER_TEST_IDS`) go first when present, then
    ``test_ids`` in order, up to ``n_test``; training takes the first ``n_train`` of the rest.
    """
    by_id = {e.pdb_id: e for e in entries}
    order = [i for i in (*PAPER_TEST_IDS, *test_ids) if i in by_id]
    if len(order) < n_test:
        raise ConfigError(f"only {len(order)} test entries available, {n_test} requested")
    test_set = set(order[:n_test])
    test = [by_id[i] for i in order[:n_test]]
    train = [e for e in entries if e.pdb_id not in test_set][:n_train]
    return train, test


def make_pairs(
    entries: Sequence[Entry], noise: NoiseParams, rng: np.random.Generator,
    voxel: float = 1.0, pad: float = 6.0,
) -> list[Pair]:
    """Ground truth (:func:`cryolab.density.ground_truth_map`) and degraded map for each entry,
    both divided by their 99.9th percentile (:func:`cryolab.normalise.percentile_scale`)."""
    pairs = []
    for entry in entries:
        truth = ground_truth_map(entry.structure, voxel=voxel, pad=pad)
        truth = truth.with_data(percentile_scale(truth.data, INPUT_PERCENTILE))
        bad = degrade(truth, noise, rng)
        pairs.append(Pair(entry, truth, bad.with_data(percentile_scale(bad.data,
                                                                       INPUT_PERCENTILE))))
    return pairs


def training_batches(pairs: Sequence[Pair], profile: SuperResProfile):
    """A ``batches(epoch, rng)`` source for :class:`~cryolab.train.Trainer`: augmented random
    patches (flips, 90° rotations) from random training maps, ``profile.batch`` at a time."""

    def batches(epoch: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        for _ in range(profile.patches_per_epoch // profile.batch):
            x, y = [], []
            for i in rng.integers(0, len(pairs), profile.batch):
                p = pairs[int(i)]
                a, b = random_patches(
                    [p.degraded.data, p.target.data], profile.patch, 1, rng, min_mean=0.05
                )
                x.append(a)
                y.append(b)
            yield (torch.from_numpy(np.concatenate(x)[:, None]),
                   torch.from_numpy(np.concatenate(y)[:, None]))

    return batches


# ------------------------------------------------------------------------------- inference


def train_unet3d(pairs: Sequence[Pair], profile: SuperResProfile,
                 checkpoint: str | os.PathLike | None = None, device: str | None = None,
                 progress: bool = True, epochs: int | None = None):
    """Train the super-resolution 3D U-Net on ``pairs`` as the paper does (Dice loss, Adam
    with the profile's learning rate and betas, the profile's seed); resumes from
    ``checkpoint``.

    Returns ``(model, history)``, the model in eval mode; ``epochs`` overrides the profile's.
    """
    from .nn.unet3d import UNet3D, dice_loss
    from .train import Trainer, supervised_step

    torch.manual_seed(profile.seed)
    model = UNet3D(depth=profile.depth, base=profile.base)
    trainer = Trainer(
        model, torch.optim.Adam(model.parameters(), lr=profile.lr, betas=profile.betas),
        supervised_step(dice_loss), checkpoint=checkpoint, config=profile.config(),
        seed=profile.seed, device=device,
    )
    history = trainer.fit(training_batches(list(pairs), profile),
                          profile.epochs if epochs is None else epochs, progress=progress)
    return model.eval(), history


def predict_map(model: torch.nn.Module, volume: Volume, profile: SuperResProfile,
                device: str | None = None) -> Volume:
    """Run the U-Net over a (normalised, 1 Å) map tile by tile; same grid out."""
    out = predict_volume(
        model, volume.data, patch=profile.patch, stride=profile.infer_stride,
        weight="gaussian", batch_size=4, device=device,
    )
    return volume.with_data(out)


def crop_around(volume: Volume, structure: gemmi.Structure, edge: float) -> Volume:
    """A cube of ``edge`` Å of the map centred on the model's centre (clipped to the map)."""
    centre = atoms_of(structure).xyz.mean(axis=0)[::-1]
    lo = np.clip(np.floor((centre - edge / 2 - volume.origin) / volume.voxel_size), 0, None)
    hi = np.minimum(lo + np.ceil(edge / volume.voxel_size), volume.shape).astype(int)
    lo = lo.astype(int)
    data = volume.data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return Volume(data, volume.voxel_size, volume.origin + lo * volume.voxel_size)


def evaluate(pair: Pair, prediction: Volume, mask_radius: float = 2.0) -> dict[str, float]:
    """EMRinger of input, prediction and ground truth, and RSCC / PCC / FSC resolution of
    input and prediction against the ground truth (RSCC within ``mask_radius`` Å of atoms)."""
    st = pair.entry.structure
    truth = pair.target
    mask = metrics.model_mask(
        truth.shape, truth.voxel_size, truth.origin, atoms_of(st, hydrogens=False).xyz,
        mask_radius,
    )
    row: dict[str, float] = {"entry": pair.entry.pdb_id}
    for label, vol in (("input", pair.degraded), ("prediction", prediction), ("truth", truth)):
        result = emringer(vol, st)
        row[f"emringer_{label}"] = result.score
        if label != "truth":
            row[f"rscc_{label}"] = metrics.rscc(vol.data, truth.data, mask)
            row[f"pcc_{label}"] = metrics.pcc(vol.data, truth.data)
            row[f"fsc05_{label}"] = metrics.fsc_resolution(
                vol.data, truth.data, truth.voxel_size, threshold=0.5
            )
    row["residues"] = result.n_residues
    return row




# ------------------------------------------------------------------------------- real maps


@dataclass(frozen=True)
class RealPair:
    """An experimental map of the mirror with its deposited model.

    Attributes:
        label: the EMDB entry.
        map_name, model_name: registered names.
        chain: the only chain to keep (None: all).
        resolution: the reported resolution in Å (EMD-2566: the published 3.2 Å).
    """

    label: str
    map_name: str
    model_name: str
    chain: str | None
    resolution: float


#: The mirror's five experimental map/model pairs (``shared/data/README.md``).
REAL_PAIRS = (
    RealPair("EMD-0093", "maps/emd_0093_masked.map.gz", "structures/mainmastseg/6gyn.pdb.gz",
             None, 3.4),
    RealPair("EMD-2566", "maps/emd_2566_segment_3j6b_chain9.mrc.gz",
             "structures/daq/3J6B_chain9.pdb.gz", None, 3.2),
    RealPair("EMD-3488", "maps/emd_3488.map.gz", "structures/ccpem/5me2.pdb.gz", None, 3.2),
    RealPair("EMD-30342", "maps/emd_30342_chainA_zone4A.map.gz", "structures/mapq/7cec.cif.gz",
             "A", 3.9),
    RealPair("EMD-5778", "maps/emd_5778_tm_rosettaframe.map.gz",
             "structures/rosetta_demos/3j5p_tm_chainA_rosettaframe.pdb.gz", None, 3.4),
)


@dataclass
class RealMap:
    """A real map ready for the networks and its references, all on one 1 Å grid.

    Attributes:
        pair: which map.
        structure: the deposited model (only ``pair.chain`` when set).
        volume: the map cropped around the model, resampled to 1 Å (cubic spline) and divided
            by its 99.9th percentile.
        model_map: a map computed from the model (:func:`cryolab.density.ground_truth_map`,
            its atoms' B-factors + 10 Å²) on the same grid: the reference of the map–model
            FSC, the RSCC and the correlation, and the target of fine-tuning.
        mask: voxels within 2 Å of the model's atoms (the RSCC's mask).
        native_voxel: the deposited map's (largest) voxel size in Å.
    """

    pair: RealPair
    structure: gemmi.Structure
    volume: Volume
    model_map: Volume
    mask: np.ndarray
    native_voxel: float


def load_real_map(pair: RealPair, crop: float | None = None) -> RealMap:
    """Read ``pair``'s map and model and put them on the 1 Å grid of :class:`RealMap`
    (``crop``: keep a cube of that many Å around the model's centre; None keeps the map)."""
    st = read_structure(fetch(pair.model_name))
    st.remove_ligands_and_waters()
    if pair.chain is not None:
        for name in {ch.name for ch in st[0]} - {pair.chain}:
            st[0].remove_chain(name)
    vol = read_map(fetch(pair.map_name))
    if crop:
        vol = crop_around(vol, st, crop)
        _keep_residues_in(st, vol, margin=6.0)
    grid = resample(vol, 1.0, order=3, mode="nearest")
    grid = grid.with_data(percentile_scale(grid.data, INPUT_PERCENTILE))
    model_map = resample(ground_truth_map(st, voxel=1.0, pad=4.0), like=grid, order=1)
    model_map = model_map.with_data(percentile_scale(model_map.data, INPUT_PERCENTILE))
    xyz = atoms_of(st, hydrogens=False).xyz
    mask = metrics.model_mask(grid.shape, grid.voxel_size, grid.origin, xyz, 2.0)
    return RealMap(pair, st, grid, model_map, mask, float(vol.voxel_size.max()))


def _keep_residues_in(structure: gemmi.Structure, volume: Volume, margin: float) -> None:
    """Remove (in place) the residues whose first atom lies more than ``margin`` Å outside
    the map's box: they cannot be scored, and the model map is faster without them."""
    low = volume.origin[::-1] - margin
    high = volume.origin[::-1] + (np.array(volume.shape[::-1]) - 1) * volume.voxel_size[::-1] \
        + margin
    for chain in structure[0]:
        for i in reversed(range(len(chain))):
            pos = chain[i][0].pos
            xyz = np.array([pos.x, pos.y, pos.z])
            if np.any(xyz < low) or np.any(xyz > high):
                del chain[i]
    structure.remove_empty_chains()


#: The scores :func:`score_real` gives a map: EMRinger, map–model FSC crossings (Å), RSCC in
#: the model mask, the ChimeraX-style correlation (voxels above the model map's top 1 %).
REAL_SCORES = ("emringer", "fsc05", "fsc0143", "rscc", "cc_chimerax")


def score_real(real: RealMap, volume: Volume, scan: RingerScan | None = None
               ) -> dict[str, float]:
    """:data:`REAL_SCORES` of a map on ``real``'s grid against the deposited model (``scan``:
    the map's :func:`cryolab.emringer.ringer_scan`, when already made). FSC crossings are
    capped at the deposited map's Nyquist resolution (2 × its voxel size): the 1 Å grid's
    finer shells hold only what the interpolation put there."""
    model = real.model_map.data
    curve = metrics.fsc(volume.data, model, volume.voxel_size)
    nyquist = 2.0 * real.native_voxel  # finer shells of the 1 Å grid are interpolation
    scan = ringer_scan(volume, real.structure) if scan is None else scan
    return {
        "emringer": score_scan(scan).score,
        "fsc05": max(curve.resolution(0.5), nyquist),
        "fsc0143": max(curve.resolution(0.143), nyquist),
        "rscc": metrics.rscc(volume.data, model, real.mask),
        "cc_chimerax": metrics.chimerax_correlation(volume.data, model),
    }


def bfactor_baseline(real: RealMap) -> Volume:
    """Global B-factor sharpening of a real map at its reported resolution (Guinier fit from
    10 Å): the classical baseline every network must beat."""
    return bfactor_sharpen(real.volume, real.pair.resolution)[0]


def real_map_table(reals: Sequence[RealMap],
                   methods: dict[str, Callable[[RealMap], Volume]]):  # noqa: ANN201 - pandas
    """One row per (map, method) of :data:`REAL_SCORES`; the map as it is comes first as
    ``"input"``. ``methods`` maps a name to ``fn(real) -> map on real.volume's grid``. Two
    more columns, ``emringer_low`` and ``emringer_high``, bound the method's EMRinger change
    over the input (:func:`cryolab.emringer.emringer_change`: 95 %, residues resampled, each
    map with its own draws); the changes themselves are kept in
    ``table.attrs["emringer_changes"]`` (``{(map, method): EMRingerChange}``), from which
    :class:`RealVerdict` averages them over the maps."""
    import pandas as pd

    rows, changes = [], {}
    for k, real in enumerate(reals):
        before = ringer_scan(real.volume, real.structure)
        for name, fn in {"input": lambda r: r.volume, **methods}.items():
            volume = fn(real)
            scan = before if name == "input" else ringer_scan(volume, real.structure)
            change = emringer_change(before, scan, seed=k)
            changes[real.pair.label, name] = change
            rows.append({"map": real.pair.label, "method": name,
                         **score_real(real, volume, scan),
                         "emringer_low": change.low, "emringer_high": change.high})
    table = pd.DataFrame(rows)
    table.attrs["emringer_changes"] = changes
    return table


def emringer_beyond_noise(table, method: str) -> dict[str, str]:  # noqa: ANN001 - pandas
    """For each map of a :func:`real_map_table`, whether ``method``'s EMRinger change over
    the input is ``"up"`` or ``"down"`` beyond the residue-resampling interval, or
    ``"within"`` it."""
    rows = table[table["method"] == method]
    return {r["map"]: "up" if r["emringer_low"] > 0 else "down" if r["emringer_high"] < 0
            else "within" for _, r in rows.iterrows()}


def noise_phrase(table, method: str) -> str:  # noqa: ANN001 - pandas
    """:func:`emringer_beyond_noise` as one phrase for the book."""
    where = emringer_beyond_noise(table, method)
    said = {"up": "up beyond it on", "down": "down beyond it on", "within": "within it on"}
    parts = [f"{text} {', '.join(m for m, w in where.items() if w == key)}"
             for key, text in said.items() if key in where.values()]
    return "; ".join(parts)


def map_character(volume: Volume, mask: np.ndarray, resolution: float) -> dict[str, float]:
    """What a map looks like to a network, in numbers: the Guinier B of its amplitudes (10 Å
    to ``resolution``), the fraction of exact zeros (masking), the solvent's noise relative to
    the molecule's signal (std outside vs inside ``mask``), the B-factor of the solvent's
    spectrum, and the voxel size (Å)."""
    solvent = ~ndimage.binary_dilation(mask, iterations=3)
    data = volume.data
    zeros = float(np.mean(data == 0))
    live = solvent & (data != 0)
    noise = float(data[live].std()) if live.sum() > 100 else 0.0
    out = {"bfactor": guinier_fit(volume, resolution).bfactor, "zero_fraction": zeros,
           "noise_to_signal": noise / float(data[mask].std()) if mask.any() else np.nan,
           "voxel": float(volume.voxel_size.max())}
    if live.sum() > 100:
        out["noise_bfactor"] = guinier_fit(volume.with_data(np.where(live, data, 0.0)),
                                           resolution).bfactor
    else:
        out["noise_bfactor"] = np.nan
    return out


def make_realistic_pairs(entries: Sequence[Entry], params: RealisticParams,
                         rng: np.random.Generator, copies: int = 1) -> list[Pair]:
    """Like :func:`make_pairs`, with :func:`cryolab.degrade.realistic_degrade` instead of the
    paper's noise model: ``copies`` differently degraded inputs per entry."""
    pairs = []
    for entry in entries:
        truth = ground_truth_map(entry.structure, voxel=1.0, pad=6.0)
        truth = truth.with_data(percentile_scale(truth.data, INPUT_PERCENTILE))
        for _ in range(copies):
            bad, _ = realistic_degrade(truth, params, rng)
            pairs.append(Pair(entry, truth,
                              bad.with_data(percentile_scale(bad.data, INPUT_PERCENTILE))))
    return pairs


def estimate_resolution(volume: Volume, model_map: Volume | None = None,
                        floor_factor: float = 2.0) -> float:
    """A resolution estimate in Å that needs no half maps.

    With a ``model_map`` on the same grid: where the map–model FSC falls below 0.5. Without:
    from the amplitude fall-off, the highest frequency at which the radially averaged
    amplitude still exceeds ``floor_factor`` times the noise floor (the median amplitude of
    the outer fifth of the shells up to Nyquist), i.e. where the signal sinks into the noise.
    A map whose amplitudes never reach the floor returns Nyquist.
    """
    if model_map is not None:
        return metrics.fsc_resolution(volume.data, model_map.data, volume.voxel_size, 0.5)
    s, amplitude = radial_amplitude(volume)
    floor = float(np.median(amplitude[int(0.8 * len(s)):]))
    above = np.flatnonzero(amplitude > floor_factor * floor)
    if above.size == 0:
        return float(1.0 / s[0])
    return float(1.0 / s[min(above[-1], len(s) - 1)])


def character_table(reals: Sequence[RealMap], synthetic: Sequence[Pair],
                    realistic: Sequence[Pair] = (), resolution: float = 3.5):  # noqa: ANN201
    """:func:`map_character` of the real maps (at their reported resolutions, with their
    native voxel sizes), of synthetic inputs from the paper's noise model and of inputs from
    :func:`cryolab.degrade.realistic_degrade` (both fitted to ``resolution`` Å), one row each."""
    import pandas as pd

    def mask_of(pair: Pair) -> np.ndarray:
        t = pair.target
        return metrics.model_mask(t.shape, t.voxel_size, t.origin,
                                  atoms_of(pair.entry.structure, hydrogens=False).xyz, 2.0)

    rows = [{"source": "real", "map": r.pair.label,
             **map_character(r.volume, r.mask, r.pair.resolution), "voxel": r.native_voxel}
            for r in reals]
    for kind, pairs in (("paper noise model", synthetic), ("realistic degradation", realistic)):
        rows += [{"source": kind, "map": p.entry.pdb_id,
                  **map_character(p.degraded, mask_of(p), resolution)} for p in pairs]
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class RealVerdict:
    """Does a method improve the real maps? Read from a :func:`real_map_table`.

    Attributes:
        method: the method judged.
        emringer_up: ``{map: EMRinger of the method > that of the input}``.
        fsc_better: ``{map: map–model FSC-0.5 resolution of the method < that of the input}``
            (Å, lower is better; a tie within 0.05 Å is not better).
        beats_bfactor: ``{map: EMRinger and FSC-0.5 both at least as good as global B-factor
            sharpening's, and one of them better}``.
        emringer_mean: the EMRinger change over the input averaged over the maps, with its
            95 % interval, ``(change, low, high)`` (:func:`cryolab.emringer.mean_change`; NaN
            when the table holds no changes).
        fsc_mean: the FSC-0.5 resolution's change over the input averaged over the maps (Å;
            below 0 is finer).
    """

    method: str
    emringer_up: dict[str, bool]
    fsc_better: dict[str, bool]
    beats_bfactor: dict[str, bool]
    emringer_mean: tuple[float, float, float] = (np.nan, np.nan, np.nan)
    fsc_mean: float = np.nan

    @classmethod
    def of(cls, table, method: str, baseline: str = "B-factor sharpening",  # noqa: ANN001
           tie: float = 0.05) -> RealVerdict:
        """The verdict on ``method`` (a ``method`` value of ``table``)."""
        up, fsc_ok, beats, fsc_change = {}, {}, {}, []
        for name, rows in table.groupby("map", sort=False):
            row = rows.set_index("method")
            m, i, b = row.loc[method], row.loc["input"], row.loc[baseline]
            up[name] = bool(m["emringer"] > i["emringer"])
            fsc_ok[name] = bool(m["fsc05"] < i["fsc05"] - tie)
            fsc_change.append(float(m["fsc05"] - i["fsc05"]))
            not_worse = m["emringer"] >= b["emringer"] and m["fsc05"] <= b["fsc05"] + tie
            better = m["emringer"] > b["emringer"] or m["fsc05"] < b["fsc05"] - tie
            beats[name] = bool(not_worse and better)
        changes = table.attrs.get("emringer_changes", {})
        mean = (np.nan, np.nan, np.nan)
        if all((name, method) in changes for name in up):
            pooled = mean_change([changes[name, method] for name in up])
            mean = (pooled.difference, pooled.low, pooled.high)
        return cls(method, up, fsc_ok, beats, mean, float(np.mean(fsc_change)))

    @property
    def improves_all(self) -> bool:
        """EMRinger up and FSC-0.5 better than the input's on every map (the issue's bar)."""
        return all(self.emringer_up.values()) and all(self.fsc_better.values())

    @property
    def n_beats_bfactor(self) -> int:
        """Maps on which the method beats global B-factor sharpening."""
        return sum(self.beats_bfactor.values())

    @property
    def holds(self) -> bool:
        """The claim: improves every map over its input and beats B-factor sharpening on at
        least three of five."""
        return self.improves_all and self.n_beats_bfactor >= 3

    @property
    def emringer_up_overall(self) -> bool:
        """The EMRinger change averaged over the maps is above 0 beyond its 95 % interval:
        a gain that holds across the maps, not one of a few side chains."""
        return bool(self.emringer_mean[1] > 0)

    def claim(self) -> str:
        """One sentence for the book, computed from the run."""
        n = len(self.emringer_up)
        return (f"{self.method}: EMRinger up on {sum(self.emringer_up.values())} of {n} real "
                f"maps, map–model FSC-0.5 better on {sum(self.fsc_better.values())} of {n}, "
                f"beats global B-factor sharpening on {self.n_beats_bfactor} of {n}")

    def overall(self) -> str:
        """The changes averaged over the maps as one phrase for the book."""
        change, low, high = self.emringer_mean
        return (f"EMRinger {change:+.2f} on average over the maps (95 % interval "
                f"{low:+.2f} to {high:+.2f}), FSC-0.5 {self.fsc_mean:+.3f} Å")

    def shortfalls(self, table) -> str:  # noqa: ANN001 - the table it was read from
        """The maps the method does not improve (EMRinger and FSC-0.5 both better than the
        input's), each with its EMRinger and FSC-0.5 from input to method, as one phrase;
        ``""`` when it improves every map."""
        row = table.set_index(["map", "method"])
        return "; ".join(
            f"{m}: EMRinger {row.loc[(m, 'input'), 'emringer']:.2f} → "
            f"{row.loc[(m, self.method), 'emringer']:.2f}, FSC-0.5 "
            f"{row.loc[(m, 'input'), 'fsc05']:.2f} → {row.loc[(m, self.method), 'fsc05']:.2f} Å"
            for m in self.emringer_up if not (self.emringer_up[m] and self.fsc_better[m]))

    @property
    def n_improved(self) -> int:
        """Maps on which both EMRinger and the map–model FSC-0.5 beat the input's."""
        return sum(self.emringer_up[k] and self.fsc_better[k] for k in self.emringer_up)

    @classmethod
    def from_dict(cls, d: dict) -> RealVerdict:
        """Read back :meth:`to_dict` (a chapter's metrics.json)."""
        return cls(d["method"], dict(d["emringer_up"]), dict(d["fsc_better"]),
                   dict(d["beats_bfactor"]),
                   tuple(d.get("emringer_mean", (np.nan, np.nan, np.nan))),
                   float(d.get("fsc_mean", np.nan)))

    def to_dict(self) -> dict:
        """For metrics.json."""
        return {"method": self.method, "emringer_up": self.emringer_up,
                "fsc_better": self.fsc_better, "beats_bfactor": self.beats_bfactor,
                "emringer_mean": list(self.emringer_mean), "fsc_mean": self.fsc_mean,
                "emringer_up_overall": self.emringer_up_overall,
                "improves_all": self.improves_all, "n_beats_bfactor": self.n_beats_bfactor,
                "holds": self.holds, "claim": self.claim()}


def versus_bfactor(verdict: RealVerdict, character) -> str:  # noqa: ANN001 - pandas
    """Where ``verdict``'s method beats global B-factor sharpening and where it does not, each
    map with the Guinier B of its amplitudes (Å², the ``"real"`` rows of a
    :func:`character_table`), as one phrase for the book; when every map it loses on falls
    off faster than every map it wins on, the phrase says so."""
    real = character[character["source"] == "real"].set_index("map")["bfactor"]
    wins = [m for m, w in verdict.beats_bfactor.items() if w]
    losses = [m for m, w in verdict.beats_bfactor.items() if not w]

    def listed(maps: list[str]) -> str:
        return ", ".join(f"{m} (B = {real[m]:.0f} Å²)" for m in maps) or "no map"

    text = f"{verdict.method} beats it on {listed(wins)} and not on {listed(losses)}"
    if wins and losses and min(real[m] for m in losses) > max(real[m] for m in wins):
        text += (": the maps where global sharpening wins are exactly those whose amplitudes "
                 "fall off fastest, where flattening the fall-off to B = 0 Å² restores the most")
    return text


def shipped_superres(device: str | None = None) -> Callable[[Volume], Volume] | None:
    """``fn(map) -> map``: the shipped super-resolution U-Net (:mod:`cryolab.weights`,
    ``"superres"``) through :func:`real_map_predictor`, on a 1 Å map scaled like its training
    inputs (99.9th percentile at 1: a test pair's input, or a :class:`RealMap`'s volume); None
    when not shipped."""
    from . import weights

    if "superres" not in weights.available():
        return None
    return real_map_predictor(weights.load("superres", device=device), PROFILES["pretrained"],
                              device)


def unet_predictor(model: torch.nn.Module, profile: SuperResProfile,
                   device: str | None = None) -> Callable[[Volume], Volume]:
    """``fn(map) -> map``: :func:`predict_map` with ``model`` and ``profile`` fixed."""
    return lambda volume: predict_map(model, volume, profile, device)


def flip_average(predict: Callable[[np.ndarray], np.ndarray], data: np.ndarray) -> np.ndarray:
    """Test-time augmentation: the mean of ``predict`` over the 8 flips of ``data`` along any
    of its axes, each prediction flipped back. The network was trained on flipped patches
    (:func:`cryolab.tiles.augment`), so each flip is an input it knows; the mean keeps what
    the 8 predictions share and averages out what depends on the map's orientation (and on
    where the tiles fall). Same shape out."""
    total = np.zeros(data.shape, dtype=np.float64)
    for k in range(8):
        axes = tuple(a for a in range(3) if k >> a & 1)
        total += np.flip(predict(np.ascontiguousarray(np.flip(data, axes))), axes)
    return (total / 8).astype(np.float32)


def remember(predict: Callable[[Volume], Volume], size: int = 16
             ) -> Callable[[Volume], Volume]:
    """``predict`` that keeps its last ``size`` outputs, keyed by the input's grid and values:
    the variants of :func:`real_map_path` run on one map (the path, the 8-flip mean alone, the
    network alone: its first flip) then share the network's passes instead of repeating them.
    The outputs are returned as kept: do not change them in place."""
    kept: OrderedDict[bytes, Volume] = OrderedDict()

    def remembered(volume: Volume) -> Volume:
        digest = hashlib.blake2b(np.ascontiguousarray(volume.data).tobytes(), digest_size=16)
        digest.update(repr((volume.shape, volume.data.dtype.str, volume.voxel_size.tolist(),
                            volume.origin.tolist())).encode())
        key = digest.digest()
        if key in kept:
            kept.move_to_end(key)
        else:
            kept[key] = predict(volume)
            if len(kept) > size:
                kept.popitem(last=False)
        return kept[key]

    return remembered


def real_map_path(predict: Callable[[Volume], Volume], flips: bool = True,
                  sharpen: bool = True, low_resolution: bool = True
                  ) -> Callable[[Volume], Volume]:
    """``fn(map) -> map``: a map-to-map network followed by its three steps for real maps.

    :func:`flip_average` of ``predict`` (``flips``); then
    :func:`cryolab.sharpen.keep_low_resolution` (``low_resolution``): the input's own Fourier
    components up to :data:`KEPT_RESOLUTION`, rescaled to the prediction's shell amplitudes,
    so that the network changes the map's detail and not its envelope; then
    :func:`cryolab.sharpen.match_fall_off` of the result (``sharpen``): its Guinier B, fitted
    from 10 Å to the *input's* resolution as :func:`estimate_resolution` finds it from the
    amplitude fall-off (no half maps, no model), brought down to :data:`TARGET_BFACTOR`, the
    fall-off of the maps the networks are trained to output, without a low-pass. No step has
    a setting fitted to a real map; :func:`leave_one_map_out` is how the chapters check
    whether a user without the map in hand would take them (switch a step off to compare).
    """
    def path(volume: Volume) -> Volume:
        if flips:
            out = volume.with_data(flip_average(lambda x: predict(volume.with_data(x)).data,
                                                volume.data))
        else:
            out = predict(volume)
        if low_resolution:
            out = keep_low_resolution(out, volume, KEPT_RESOLUTION)
        if sharpen:
            out = match_fall_off(out, estimate_resolution(volume), TARGET_BFACTOR)[0]
        return out

    return path


def envelope_fsc(volume: Volume, real: RealMap) -> float:
    """The lowest map–model FSC of ``volume`` (on ``real``'s grid) over the shells whose
    voxels all lie at :data:`KEPT_RESOLUTION` or coarser — the map's envelope, which
    :func:`real_map_path` takes from the input: after it, this is the input's own value."""
    curve = metrics.fsc(volume.data, real.model_map.data, volume.voxel_size)
    width = curve.frequency[1]
    coarse = (curve.frequency > 0) & (curve.frequency + width / 2 <= 1.0 / KEPT_RESOLUTION)
    return float(curve.correlation[coarse].min())


def real_map_predictor(model: torch.nn.Module, profile: SuperResProfile,
                       device: str | None = None) -> Callable[[Volume], Volume]:
    """``fn(map) -> map``: the shipped U-Net's path on a 1 Å map scaled like its inputs,
    :func:`real_map_path` of :func:`unet_predictor` with all three steps (checked leave one
    map out in chapter 02, section 7)."""
    return real_map_path(unet_predictor(model, profile, device))


def leave_one_map_out(table, candidates: Sequence[str]) -> dict[str, str]:  # noqa: ANN001
    """Choose among ``candidates`` (methods of a :func:`real_map_table`) without looking at
    the map judged: for each map, the candidate that improves the most of the *other* maps
    (EMRinger up and FSC-0.5 better than the input's, :class:`RealVerdict`), ties broken by
    its mean EMRinger gain over the input on them, then by the order of ``candidates``.
    Returns ``{map: candidate chosen for it}``: a candidate chosen for every map is the one
    a user without the map in hand would take."""
    verdicts = {c: RealVerdict.of(table, c) for c in candidates}
    emringer = table.pivot(index="map", columns="method", values="emringer")
    gain = {c: emringer[c] - emringer["input"] for c in candidates}

    def merit(k: int, others: list[str]) -> tuple[int, float, int]:
        c, v = candidates[k], verdicts[candidates[k]]
        won = sum(v.emringer_up[m] and v.fsc_better[m] for m in others)
        return won, float(gain[c][others].mean()), -k

    chosen = {}
    for held in emringer.index:
        others = [m for m in emringer.index if m != held]
        best = max(range(len(candidates)), key=partial(merit, others=others))
        chosen[str(held)] = candidates[best]
    return chosen


def choice_phrase(chosen: dict[str, str], shipped: str) -> str:
    """:func:`leave_one_map_out`'s ``{map: variant}`` as one phrase for the book: how many
    of the choices are the ``shipped`` variant, and the others by map."""
    if not chosen:
        return "there was no shipped model to choose for"
    n = sum(c == shipped for c in chosen.values())
    head = f"{n} of the {len(chosen)} choices are “{shipped}”"
    others = [f"{m}: “{c}”" for m, c in chosen.items() if c != shipped]
    return head if not others else f"{head}; the other{'s' if len(others) > 1 else ''}, " \
        + "; ".join(others)


def on_real(predict: Callable[[Volume], Volume]) -> Callable[[RealMap], Volume]:
    """A map-to-map predictor as a method of :func:`real_map_table`: applied to the real map's
    1 Å volume."""
    return lambda real: predict(real.volume)


def real_pair(real: RealMap) -> Pair:
    """A real map as a training pair: input the experimental map, target the map computed from
    its deposited model (DeepEMhancer's and EMReady's recipe), on the same 1 Å grid."""
    return Pair(Entry(real.pair.label, real.pair.map_name, real.structure), real.model_map,
                real.volume)


def finetune_leave_one_out(model: torch.nn.Module, reals: Sequence[RealMap],
                           profile: SuperResProfile, steps: int | None = None,
                           lr_factor: float = 0.25, flips: bool = False,
                           device: str | None = None) -> dict[str, Volume]:
    """Leave-one-map-out fine-tuning on real pairs: for each map, a copy of ``model``
    fine-tuned (Dice loss, Adam at ``lr_factor`` × the profile's rate, ``steps`` steps of
    augmented patches) on the *other* maps' :func:`real_pair`, then applied to the held-out
    map (``flips``: through :func:`flip_average`), with none of :func:`real_map_path`'s other
    steps: its targets, the maps of the deposited models, taught it what a real map's
    envelope and fall-off should be. Returns ``{map label: prediction}``; no prediction comes
    from a model that saw its map."""
    from .nn.unet3d import dice_loss
    from .train import Trainer, supervised_step

    steps = profile.finetune_steps if steps is None else steps
    out = {}
    for k, held in enumerate(reals):
        others = [real_pair(r) for r in reals if r is not held]
        net = copy.deepcopy(model).train()
        seed = profile.seed + k
        torch.manual_seed(seed)
        trainer = Trainer(net, torch.optim.Adam(net.parameters(), lr=profile.lr * lr_factor,
                                                betas=profile.betas),
                          supervised_step(dice_loss), seed=seed, device=device)
        source = training_batches(others, replace(profile, patches_per_epoch=steps
                                                  * profile.batch))
        trainer.fit(source, epochs=1, progress=False)
        predict = unet_predictor(trainer.model.eval(), profile, device)
        out[held.pair.label] = real_map_path(predict, flips, sharpen=False,
                                             low_resolution=False)(held.volume)
    return out
