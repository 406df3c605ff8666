"""Chapter glue for map super-resolution with a 3D U-Net (Mullick et al.).

The data pipeline, shared with the VAE chapter:

- :func:`ground_truth_map`: a high-resolution map computed from an atomic model with gemmi
  (electron or X-ray form factors) on a 1 Å grid, as a :class:`~cryolab.io.Volume`;
- :func:`load_entries` and :func:`split_by_entry`: the mirror's X-ray structures at ≤ 2 Å,
  split so that no structure is in both training and test sets;
- :func:`make_pairs`: (degraded, ground-truth) map pairs with the paper's noise model;
- :func:`training_batches`: random, augmented patch batches for :class:`cryolab.train.Trainer`;
- :func:`predict_map` and :func:`evaluate`: tiled inference and the chapter's metrics (EMRinger,
  RSCC, PCC, FSC resolution against the ground truth).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import gemmi
import numpy as np
import pandas as pd
import torch

from .. import density, metrics
from ..data import fetch, find
from ..degrade import NoiseParams, degrade
from ..emringer import GAMMA_ATOMS, emringer
from ..errors import ConfigError, FormatError
from ..io import Volume, atoms_of, read_structure
from ..tiles import predict_volume, random_patches

__all__ = [
    "PAPER_TEST_IDS",
    "TEST_IDS",
    "PAPER_TABLE1",
    "SuperResProfile",
    "PROFILES",
    "Entry",
    "Pair",
    "ground_truth_map",
    "load_entries",
    "split_by_entry",
    "make_pairs",
    "normalise",
    "training_batches",
    "train_unet3d",
    "predict_map",
    "evaluate",
    "resample",
    "crop_around",
    "results_table",
    "RealMapCase",
    "real_map_case",
    "plot_threshold_scan",
]

#: The paper's Table 1 test structures; none of them is in the mirror.
PAPER_TEST_IDS = ("2BV8", "6AR7", "1A5S")
#: The paper's Table 1: EMRinger of (degraded input, prediction, ground truth).
PAPER_TABLE1 = {
    "2BV8": (2.439, 6.781, 8.057),
    "6AR7": (2.439, 5.620, 7.651),
    "1A5S": (2.036, 4.479, 4.234),
}
#: Our test entries (mirror X-ray structures ≤ 2 Å, single proteins of 60–400 residues),
#: used in this order; a profile takes the first ``n_test``.
TEST_IDS = (
    "1AKI", "1UBI", "5PTI", "1L2H", "3O5R", "2PVB", "1DIX", "4I39", "1O1Z", "1VFY", "1A8O",
    "3EMS",
)
#: Entries with fewer γ-atom residues are left out (peptides, DNA): EMRinger needs side chains.
MIN_GAMMA_RESIDUES = 20


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
        stride: sliding-window stride at inference, voxels.
        real_crop: edge in Å of the cube around the model kept from each real cryo-EM map
            before prediction (None = the whole map).
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
    seed: int = 0

    @property
    def infer_stride(self) -> int:
        """Stride of the sliding window (default: half a patch)."""
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
        lr=1e-3, stride=16, real_crop=30.0,
    ),
    "book": SuperResProfile(
        n_train=40, n_test=10, patch=32, patches_per_epoch=256, epochs=12, depth=3, base=16,
        lr=1e-3, real_crop=60.0,
    ),
    "paper": SuperResProfile(
        n_train=100, n_test=12, patch=128, patches_per_epoch=400, epochs=200, depth=4, base=32,
        stride=64,
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


# ------------------------------------------------------------------------------- ground truth


def ground_truth_map(
    structure: gemmi.Structure,
    voxel: float = 1.0,
    pad: float = 6.0,
    blur: float = 10.0,
    form_factors: str = "electron",
    model: int = 0,
) -> Volume:
    """A map computed from an atomic model with gemmi, on a cubic grid of ``voxel`` Å.

    The box spans the atoms plus ``pad`` Å on each side; density is summed in real space from
    the form factors (``"electron"``: Peng's electron scattering; ``"xray"``: IT92) with each
    atom's B-factor plus ``blur`` Å² (which keeps the sharpest Gaussians resolved on the
    grid). Waters are left out. The returned Volume's origin places it in the model's frame.
    """
    if voxel <= 0 or pad < 0 or blur < 0:
        raise ConfigError(f"need voxel > 0, pad ≥ 0, blur ≥ 0; got {voxel}, {pad}, {blur}")
    calculators = {"electron": gemmi.DensityCalculatorE, "xray": gemmi.DensityCalculatorX}
    if form_factors not in calculators:
        raise ConfigError(
            f"form_factors must be one of {sorted(calculators)}, not {form_factors!r}"
        )
    st = structure.clone()
    st.remove_waters()
    if form_factors == "xray":
        st.remove_hydrogens()
    xyz = atoms_of(st, model).xyz
    low = xyz.min(axis=0) - pad
    size = np.ceil((xyz.max(axis=0) + pad - low) / voxel).astype(int) + 1  # x, y, z
    shift = gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(-low)))
    st[model].transform_pos_and_adp(shift)
    for cra in st[model].all():
        cra.atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    calc = calculators[form_factors]()
    calc.grid.unit_cell = gemmi.UnitCell(*(size * voxel), 90, 90, 90)
    calc.grid.spacegroup = gemmi.SpaceGroup("P 1")
    calc.grid.set_size(*(int(n) for n in size))
    calc.d_min = 0.0  # keep our grid; gemmi would otherwise pick its own spacing
    calc.blur = blur
    calc.put_model_density_on_grid(st[model])
    data = np.array(calc.grid, copy=True).transpose(2, 1, 0)  # gemmi (x,y,z) -> (z,y,x)
    if not np.all(np.isfinite(data)):
        raise FormatError(f"{structure.name}: the computed density holds NaN/inf values")
    return Volume(data, voxel, low[::-1])


# --------------------------------------------------------------------------------- data set


def _gamma_residues(structure: gemmi.Structure) -> int:
    return sum(r.name in GAMMA_ATOMS for ch in structure[0] for r in ch)


#: Best resolution (Å) of the X-ray structures chapters 2 and 3 learn from.
ENTRY_RESOLUTION = 2.0


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


def normalise(data: np.ndarray, q: float = 99.9) -> np.ndarray:
    """Scale a map so that its ``q``-th percentile is 1 (float32)."""
    top = float(np.percentile(data, q))
    if top <= 0:
        raise ConfigError(f"cannot normalise a map whose {q}th percentile is {top}")
    return (data / top).astype(np.float32)


def make_pairs(
    entries: Sequence[Entry], noise: NoiseParams, rng: np.random.Generator,
    voxel: float = 1.0, pad: float = 6.0,
) -> list[Pair]:
    """Ground truth and degraded map for each entry, both normalised with :func:`normalise`."""
    pairs = []
    for entry in entries:
        truth = ground_truth_map(entry.structure, voxel=voxel, pad=pad)
        truth = truth.with_data(normalise(truth.data))
        bad = degrade(truth, noise, rng)
        pairs.append(Pair(entry, truth, bad.with_data(normalise(bad.data))))
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


def train_unet3d(pairs: Sequence[Pair], profile: SuperResProfile,
                 checkpoint: str | os.PathLike | None = None, device: str | None = None,
                 progress: bool = True, epochs: int | None = None):
    """Train the chapter's 3D U-Net on ``pairs`` as the paper does (Dice loss, Adam with the
    profile's learning rate and betas, the profile's seed); resumes from ``checkpoint``.

    Returns ``(model, history)``, the model in eval mode; ``epochs`` overrides the profile's.
    """
    from ..nn.unet3d import UNet3D, dice_loss
    from ..train import Trainer, supervised_step

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


# ------------------------------------------------------------------------------- inference


def resample(volume: Volume, voxel: float, shape: Sequence[int] | None = None) -> Volume:
    """The map on a cubic grid of ``voxel`` Å with the same origin (cubic-spline values).

    ``shape`` defaults to the largest grid that stays inside the original box.
    """
    if np.allclose(volume.voxel_size, voxel) and (shape is None or tuple(shape) == volume.shape):
        return volume
    if shape is None:
        shape = np.floor((np.array(volume.shape) - 1) * volume.voxel_size / voxel + 1e-6) + 1
    grid = Volume(np.zeros(tuple(int(n) for n in shape), np.float32), voxel, volume.origin)
    return onto_grid(volume, grid)


def onto_grid(source: Volume, target: Volume) -> Volume:
    """Values of ``source`` at the voxel centres of ``target`` (cubic spline, edges repeated)."""
    return density.resample(source, like=target, order=3, mode="nearest")


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


def results_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Per-entry evaluation rows as a DataFrame indexed by entry, with a mean row."""
    df = pd.DataFrame(list(rows)).set_index("entry")
    df.loc["mean"] = df.mean(numeric_only=True)
    return df


@dataclass
class RealMapCase:
    """A real cryo-EM map, its fitted model, the network's prediction and both scores."""

    name: str
    structure: gemmi.Structure
    before: Volume
    after: Volume
    emringer_before: float
    emringer_after: float
    residues: int


def real_map_case(
    model: torch.nn.Module, map_name: str, structure_name: str, profile: SuperResProfile,
    device: str | None = None,
) -> RealMapCase:
    """EMRinger of a mirror map before and after the U-Net (cropped to ``profile.real_crop``
    Å around the model when set; the map is resampled to 1 Å and normalised first)."""
    from ..io import read_map

    st = read_structure(fetch(structure_name))
    vol = read_map(fetch(map_name))
    if profile.real_crop:
        vol = crop_around(vol, st, profile.real_crop)
    on_grid = resample(vol, 1.0)
    on_grid = on_grid.with_data(normalise(on_grid.data))
    prediction = predict_map(model, on_grid, profile, device)
    before, after = emringer(vol, st), emringer(prediction, st)
    return RealMapCase(map_name, st, on_grid, prediction, before.score, after.score,
                       before.n_residues)


def plot_threshold_scan(results: dict, title: str = "EMRinger threshold scan"):
    """z-score-derived EMRinger score (10·z/√n) against threshold for several maps
    (``{label: EMRingerResult}``), thresholds as a fraction of the range scanned."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5), constrained_layout=True)
    for label, res in results.items():
        frac = np.arange(len(res.thresholds)) / len(res.thresholds)
        ax.plot(frac, 10 * res.zscores / np.sqrt(res.n_residues), marker=".",
                label=f"{label} ({res.score:.2f})")
    ax.set_xlabel("threshold (fraction of the way from mean to maximum)")
    ax.set_ylabel("EMRinger score at threshold")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig


#: The real maps the chapter scores with EMRinger: (label, map, model) registered names.
REAL_CASES = (
    ("EMD-3488", "maps/emd_3488.map.gz", "structures/ccpem/5me2.pdb.gz"),
    ("EMD-0093", "maps/emd_0093_masked.map.gz", "structures/mainmastseg/6gyn.pdb.gz"),
)


def entry_files() -> list[str]:
    """The registered structures :func:`load_entries` may read (before its side-chain test)."""
    return list(find(kind="structure", method="X-ray", max_resolution=ENTRY_RESOLUTION)["name"])


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``)."""
    return sorted({*entry_files(), *(n for _, m, s in REAL_CASES for n in (m, s))})
