"""Chapter glue for "3D reconstruction from multi-view AFM images" (notebook 06_afm_pix2vox).

Profiles, the rendered dataset (AFM views + occupancy targets of every structure in the data
catalogue, cached as an ``.npz``), Pix2Vox++ training, and the evaluation against the paper's
table and against space carving.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import afm, carving
from ..data import fetch, find
from ..errors import ConfigError, CryolabError, DataError
from ..io import atoms_of, read_structure
from ..metrics import iou
from ..nn.posevox import pose_predict, reconstruct
from ..shape_verdict import CARVING, FEW_VIEWS, MEAN_SHAPE, AFMVerdict, Margin, verdict

log = logging.getLogger(__name__)

__all__ = [
    "data_files",
    "AFMProfile",
    "PROFILES",
    "PAPER_IOU",
    "GAP_VARIANTS",
    "AFMDataset",
    "structure_table",
    "stable_fraction",
    "split_groups",
    "SPLIT_RULE",
    "render_structure",
    "render_atoms",
    "build_dataset",
    "train_pix2vox",
    "SMALL_BATCH",
    "predict_views",
    "predict",
    "Predictions",
    "predictions",
    "evaluate_network",
    "mean_shape",
    "pose_evidence",
    "cube_symmetry",
    "train_posevox",
    "structure_scores",
    "view_probabilities",
    "network_probabilities",
    "best_threshold",
    "Margin",
    "FEW_VIEWS",
    "AFMVerdict",
    "verdict",
    "iou_table",
    "structure_file",
    "held_out_sample",
    "sample_iou",
    "gap_table",
    "plot_views",
    "plot_iou_vs_views",
]

#: Table of the paper: mean IoU of Pix2Vox++ on training and validation proteins by views.
PAPER_IOU = {
    "train": {3: 0.89, 5: 0.91, 8: 0.92, 10: 0.92},
    "validation": {3: 0.50, 5: 0.51, 8: 0.51, 10: 0.52},
}

#: Regularisers the paper did not try, as overrides of the profile, for the gap table.
GAP_VARIANTS: dict[str, dict] = {
    "as the paper (none)": {},
    "tip + noise augmentation": {"augment": True},
    "weight decay 1e-3": {"weight_decay": 1e-3},
    "smaller encoder (width / 2)": {"width_scale": 0.5},
    "all three": {"augment": True, "weight_decay": 1e-3, "width_scale": 0.5},
}


@dataclass(frozen=True)
class AFMProfile:
    """Sizes of one run of the chapter.

    Lengths in Å, angles in degrees. ``train_views`` is the range (inclusive) from which the
    number of views of each training batch is drawn.
    """

    n_structures: int | None  # None = every structure in the catalogue
    n_views: int = 25
    image_size: int = 64
    grid: int = 32
    tip_radius: float = 10.0
    tip_half_angle: float = 10.0
    noise: float = 1.0
    mode: str = "height"
    val_fraction: float = 0.2
    epochs: int = 6
    batch_size: int = 8
    train_views: tuple[int, int] = (2, 5)
    lr: float = 1e-3
    weight_decay: float = 0.0
    augment: bool = False
    width: int = 16
    decoder_width: int = 8
    merger_width: int = 8
    refiner_width: int = 8
    refiner_hidden: int = 512
    eval_views: tuple[int, ...] = (1, 3, 5, 8, 10)
    thresholds: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)
    eval_train_max: int = 64  # training structures scored (a random subset; all when larger)
    gap_variants: tuple[str, ...] = tuple(GAP_VARIANTS)
    gap_epochs: int = 3
    max_atoms: int = 60000
    torch_threads: int | None = None  # None = torch's default
    pose_width: int = 8  # PoseVox: channels at full resolution
    pose_depth: int = 2  # PoseVox: poolings
    pose_epochs: int = 4
    pose_views: tuple[int, int] = (1, 10)  # views per training sample, inclusive
    pose_lr: float = 2e-3
    pose_augment: bool = True  # the 48 symmetries of the cube on evidence and target
    bootstrap: int = 2000  # resamples of the validation structures for the margins
    pose_seed: int = 0  # PoseVox's training seed (``seed`` also fixes the data and split)
    pdb_ids: tuple[str, ...] | None = None  # None = the catalogue; else these PDB entries
    seed: int = 0
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def dataset_key(self) -> dict:
        """The settings the rendered dataset depends on (the cache is keyed on them)."""
        keys = ("n_structures", "n_views", "image_size", "grid", "tip_radius", "tip_half_angle",
                "noise", "mode", "val_fraction", "max_atoms", "seed")
        key = {k: getattr(self, k) for k in keys}
        if self.pdb_ids is not None:
            key["pdb_ids"] = list(self.pdb_ids)
        return key


PROFILES = {
    "smoke": AFMProfile(
        n_structures=6, n_views=5, image_size=32, epochs=2, batch_size=3, train_views=(1, 2),
        lr=3e-3, width=4, decoder_width=2, merger_width=8, refiner_width=2, refiner_hidden=64,
        eval_views=(1, 3, 5), gap_variants=("as the paper (none)", "all three"), gap_epochs=1,
        max_atoms=4000, val_fraction=0.34, torch_threads=1, pose_width=4, pose_epochs=3,
        pose_views=(1, 5), bootstrap=200,
    ),
    "book": AFMProfile(
        n_structures=None, epochs=4, train_views=(2, 4),
        gap_variants=("as the paper (none)", "all three"), gap_epochs=4, torch_threads=1,
    ),
    # the shipped PoseVox (cryolab/weights/posevox.pt): the book's data, trained for longer
    "pretrained": AFMProfile(
        n_structures=None, epochs=4, train_views=(2, 4), torch_threads=1, pose_epochs=28,
    ),
    # the paper's scale: give ``pdb_ids`` (about 8,000 entries, see structure_table)
    "paper": AFMProfile(
        n_structures=None, image_size=128, epochs=150, batch_size=16, train_views=(1, 10),
        width=32, decoder_width=16, merger_width=16, refiner_width=32, refiner_hidden=2048,
        eval_train_max=100000, gap_epochs=50, pose_width=16, pose_depth=3, pose_epochs=100,
    ),
}


# ------------------------------------------------------------------------------- the data


#: where :func:`structure_file` finds an unregistered PDB entry, ``{id}`` upper case
RCSB_URL = "https://files.rcsb.org/download/{id}.cif.gz"
RCSB_PREFIX = "rcsb/"


#: how :func:`split_groups` decides (part of the dataset cache key)
SPLIT_RULE = "sha256(seed:group) < val_fraction"


def structure_file(name: str) -> Path:
    """The local file of a structure: a registered catalogue name (:func:`cryolab.data.fetch`)
    or ``rcsb/<PDB id>``, downloaded once from the RCSB into the user cache with pooch."""
    if not name.startswith(RCSB_PREFIX):
        return fetch(name)
    import pooch

    pdb_id = name[len(RCSB_PREFIX):].upper()
    folder = Path(pooch.os_cache("cryolab")) / "rcsb"
    try:
        return Path(pooch.retrieve(RCSB_URL.format(id=pdb_id), known_hash=None,
                                   fname=f"{pdb_id}.cif.gz", path=folder))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot download PDB entry {pdb_id} from the RCSB into {folder} "
                        f"({exc}); offline? use the registered structures (pdb_ids=None)"
                        ) from exc


def structure_table(cfg: AFMProfile) -> pd.DataFrame:
    """Rows (name, group) of the structures to use; ``group`` is what the split keeps together.

    Every structure file is one complex; its group is its PDB id (the file name when it has
    none), so the same complex can never be both in training and in validation. Without
    ``cfg.pdb_ids`` these are the catalogue's structure files; with them, each id's registered
    files when the catalogue has the entry, else ``rcsb/<id>`` (downloaded by
    :func:`structure_file`). That is how the paper's ~8,000 structures are built: put their
    ids, one per line, in a file and run with
    ``replace(PROFILES["paper"], pdb_ids=tuple(Path("ids.txt").read_text().split()))``.
    """
    df = find(kind="structure")
    df = df[df["n_atoms"].fillna(0) <= cfg.max_atoms].copy()
    df["group"] = np.where(df["pdb_id"].str.len() > 0, df["pdb_id"].str.upper(), df["name"])
    if cfg.pdb_ids is not None:
        wanted = list(dict.fromkeys(i.strip().upper() for i in cfg.pdb_ids if i.strip()))
        known = df[df["group"].isin(wanted)][["name", "group"]]
        extra = [i for i in wanted if i not in set(known["group"])]
        df = pd.concat([known, pd.DataFrame({"name": [RCSB_PREFIX + i for i in extra],
                                             "group": extra})])
    if cfg.n_structures is not None:
        # the rows with the smallest hashes: adding a file to the catalogue can only displace
        # a chosen row if its own hash is smaller, never reshuffle the rest
        order = np.argsort([stable_fraction(f"subset:{cfg.seed}", n) for n in df["name"]],
                           kind="stable")
        df = df.iloc[np.sort(order[:cfg.n_structures])]
    return df.reset_index(drop=True)


def stable_fraction(salt: str, item: str) -> float:
    """A number in [0, 1) fixed by ``salt`` and ``item`` alone (SHA-256, not Python's
    ``hash``, which changes between runs), so choices made with it do not move when other
    items are added.

    >>> stable_fraction("0", "1AVO") == stable_fraction("0", "1AVO")
    True
    >>> 0 <= stable_fraction("0", "1AVO") < 1
    True
    """
    digest = hashlib.sha256(f"{salt}:{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_groups(groups: Sequence[str], val_fraction: float, seed: int) -> np.ndarray:
    """Boolean "is validation" per item, decided by group so a group is never on both sides.

    A group is in validation iff ``stable_fraction(seed, group) < val_fraction``: its side
    depends on nothing else, so adding structures to the catalogue never moves an existing one
    across the split (and a shipped model never trained on a later run's validation). When no
    group falls below (tiny sets), the group with the smallest fraction is validation.
    """
    groups = [str(g) for g in groups]
    fraction = {g: stable_fraction(str(seed), g) for g in set(groups)}
    val = {g for g, u in fraction.items() if u < val_fraction}
    if not val and fraction:
        val = {min(fraction, key=fraction.get)}
    return np.array([g in val for g in groups], dtype=bool)


@dataclass
class AFMDataset:
    """Rendered views and occupancy targets of a set of structures.

    Attributes:
        names: (S,) catalogue names.
        heights: (S, V, n, n) float16 tip-dilated heights divided by ``scale`` (so in [0, ~1]).
        images: (S, V, n, n) float16 network inputs (= heights in "height" mode, shading in
            "rendered" mode).
        quaternions: (S, V, 4) view rotations (scalar last), canonical -> view frame.
        floors: (S, V) substrate height in Å in the centred view frame.
        pixel_size: (S,) Å per pixel; ``scale = pixel_size * image_size`` Å.
        centre: (S, 3) grid centre (x, y, z) Å in the canonical frame; voxel: (S,) Å.
        targets: (S, g, g, g) bool occupancy in the canonical (principal-axes) frame.
        validation: (S,) bool.
        skipped: names that could not be read.
    """

    names: np.ndarray
    heights: np.ndarray
    images: np.ndarray
    quaternions: np.ndarray
    floors: np.ndarray
    pixel_size: np.ndarray
    centre: np.ndarray
    voxel: np.ndarray
    targets: np.ndarray
    validation: np.ndarray
    skipped: list[str] = field(default_factory=list)

    @property
    def scale(self) -> np.ndarray:
        """Å per unit of the normalised heights (the image width in Å)."""
        return self.pixel_size * self.heights.shape[-1]

    @classmethod
    def from_rendered(cls, names: Sequence[str], rendered: Sequence[tuple],
                      validation: np.ndarray, mode: str = "height",
                      skipped: Sequence[str] = ()) -> AFMDataset:
        """The dataset of structures ``names`` from their :func:`render_atoms` results
        (views, target, grid centre, voxel size), with the split ``validation``."""
        views = [r[0] for r in rendered]
        heights = np.stack([v.heights / (v.pixel_size * v.heights.shape[-1]) for v in views])
        images = heights if mode == "height" else np.stack([v.images for v in views])
        return cls(
            names=np.asarray(names),
            heights=heights.astype(np.float16),
            images=images.astype(np.float16),
            quaternions=np.stack([v.quaternions for v in views]),
            floors=np.stack([v.floors for v in views]),
            pixel_size=np.array([v.pixel_size for v in views]),
            centre=np.stack([r[2] for r in rendered]),
            voxel=np.array([r[3] for r in rendered]),
            targets=np.stack([r[1] for r in rendered]),
            validation=np.asarray(validation, dtype=bool),
            skipped=list(skipped),
        )

    def views(self, i: int) -> afm.AFMViews:
        """Structure ``i``'s views in Å, as :func:`cryolab.afm.afm_views` returned them."""
        heights = self.heights[i].astype(np.float32) * np.float32(self.scale[i])
        return afm.AFMViews(self.images[i], heights, self.quaternions[i], self.floors[i],
                            float(self.pixel_size[i]))

    def save(self, path: Path, key: dict) -> None:
        """Write the dataset (and the settings ``key`` it was rendered with) as an .npz."""
        arrays = {k: v for k, v in vars(self).items() if k != "skipped"}
        if np.array_equal(self.images, self.heights):
            arrays["images"] = np.zeros(0, np.float16)  # same as heights: store once
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays, skipped=np.array(self.skipped, dtype=str),
                 key=np.array(json.dumps(key, sort_keys=True)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, key: dict) -> AFMDataset | None:
        """The cached dataset at ``path`` if it was rendered with settings ``key``, else None."""
        if not path.is_file():
            return None
        with np.load(path) as f:
            if str(f["key"]) != json.dumps(key, sort_keys=True):
                return None
            data = {k: f[k] for k in f.files if k != "key"}
        data["skipped"] = [str(s) for s in data["skipped"]]
        if data["images"].size == 0:
            data["images"] = data["heights"]
        return cls(**data)


def render_structure(
    path: Path, cfg: AFMProfile, rng: np.random.Generator
) -> tuple[afm.AFMViews, np.ndarray, np.ndarray, float]:
    """Views, occupancy target, grid centre and voxel size of one structure file."""
    atoms = atoms_of(read_structure(path), hydrogens=False)
    return render_atoms(afm.principal_frame(atoms.xyz), afm.vdw_radii(atoms.element), cfg, rng)


def render_atoms(
    xyz: np.ndarray, radii: np.ndarray, cfg: AFMProfile, rng: np.random.Generator
) -> tuple[afm.AFMViews, np.ndarray, np.ndarray, float]:
    """Views, occupancy target, grid centre and voxel size of atoms ``xyz`` (N, 3) Å in the
    canonical frame (:func:`cryolab.afm.principal_frame`) with vdW ``radii`` (N,) Å."""
    views = afm.afm_views(
        xyz, radii, cfg.n_views, rng, image_size=cfg.image_size,
        tip=afm.Tip(cfg.tip_radius, cfg.tip_half_angle), noise=cfg.noise, mode=cfg.mode,
    )
    target = afm.occupancy_grid(xyz, radii, cfg.grid)
    centre, voxel = afm.grid_geometry(xyz, radii, cfg.grid)
    return views, target, centre, voxel


def build_dataset(cfg: AFMProfile, cache: Path | None = None, progress: bool = True
                  ) -> AFMDataset:
    """Render every structure of the profile (or load the cache written by an earlier run).

    Files that cannot be read are skipped and counted (a warning is logged).
    """
    table = structure_table(cfg)
    # the cache also holds the split: key it on the structures and the rule that split them
    key = {**cfg.dataset_key(), "split": SPLIT_RULE,
           "structures": hashlib.sha256("\n".join(table["name"]).encode()).hexdigest()}
    if cache is not None and (cached := AFMDataset.load(cache, key)) is not None:
        return cached
    rng = np.random.default_rng(cfg.seed)
    records, skipped = [], []
    for name in tqdm(table["name"], desc="rendering AFM views", disable=not progress,
                     mininterval=1.0):
        try:
            records.append((name, *render_structure(structure_file(name), cfg, rng)))
        except CryolabError as exc:
            skipped.append(name)
            log.info("skipping %s: %s", name, exc)
    if skipped:
        log.warning("skipped %d unreadable structure files of %d", len(skipped), len(table))
    names = np.array([r[0] for r in records])
    groups = table.set_index("name").loc[names, "group"].to_numpy()
    ds = AFMDataset.from_rendered(names, [r[1:] for r in records],
                                  split_groups(groups, cfg.val_fraction, cfg.seed), cfg.mode,
                                  skipped)
    if cache is not None:
        ds.save(cache, key)
    return ds


# ------------------------------------------------------------------------------- training


def _augment(ds: AFMDataset, i: int, views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Height images of structure ``i`` as seen by a blunter tip and with more noise.

    Dilating an AFM image again by a second tip is what a tip combining both shapes would
    have recorded (dilations compose), so the network sees random tip apex radii (up to
    +10 Å) and half-angles (5–20°) and height noise of up to 2 Å.
    """
    scale = float(ds.scale[i])
    heights = ds.heights[i, views].astype(np.float64) * scale
    tip = afm.Tip(rng.uniform(0.0, 10.0), rng.uniform(5.0, 20.0))
    heights = afm.tip_dilate(heights, tip, float(ds.pixel_size[i]))
    heights += rng.normal(0.0, rng.uniform(0.0, 2.0), heights.shape)
    return heights / scale


def _batches(ds: AFMDataset, cfg: AFMProfile, index: np.ndarray):
    def batches(epoch: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, ...]]:
        order = rng.permutation(index)
        for start in range(0, len(order), cfg.batch_size):
            pick = order[start : start + cfg.batch_size]
            n = int(rng.integers(cfg.train_views[0], cfg.train_views[1] + 1))
            chosen = [rng.choice(cfg.n_views, n, replace=False) for _ in pick]
            if cfg.augment and cfg.mode == "height":
                images = np.stack([_augment(ds, i, v, rng) for i, v in zip(pick, chosen,
                                                                               strict=True)])
            else:
                images = np.stack([ds.images[i, v] for i, v in zip(pick, chosen, strict=True)])
            yield images.astype(np.float32), ds.targets[pick].astype(np.float32)

    return batches


def _step(trainer, batch) -> dict[str, float]:
    from ..nn.pix2vox import pix2vox_loss

    images, targets = trainer.to_device(batch)
    with trainer.autocast():
        out = trainer.model(images)
    loss = pix2vox_loss({k: v.float() for k, v in out.items()}, targets)
    trainer.optimise(loss)
    return {"loss": loss.item()}


def train_pix2vox(ds: AFMDataset, cfg: AFMProfile, checkpoint: Path | None,
                  overrides: dict | None = None, epochs: int | None = None,
                  progress: bool = True):
    """Train Pix2Vox++ on the training structures; returns ``(model, history)``.

    ``overrides`` changes profile fields (``augment``, ``weight_decay``) or scales the widths
    (``width_scale``), for the regularisation experiments. Resumes from ``checkpoint``.
    """
    import torch

    from ..nn.pix2vox import Pix2VoxPP
    from ..train import Trainer

    overrides = dict(overrides or {})
    width_scale = overrides.pop("width_scale", 1.0)
    cfg = replace(cfg, **overrides)
    model = Pix2VoxPP(
        width=max(1, int(cfg.width * width_scale)), decoder_width=cfg.decoder_width,
        merger_width=cfg.merger_width, refiner_width=cfg.refiner_width,
        refiner_hidden=cfg.refiner_hidden,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    config = {**asdict(cfg), "width_scale": width_scale}
    config.pop("extra")
    trainer = Trainer(model, optimizer, _step, checkpoint=checkpoint, config=config,
                      seed=cfg.seed)
    train_index = np.flatnonzero(~ds.validation)
    history = trainer.fit(_batches(ds, cfg, train_index), epochs=epochs or cfg.epochs,
                          progress=progress)
    return model.eval(), history


#: torch's CPU convolutions round differently in batches of fewer views than this (another
#: kernel; measured with torch 2.13 on Pix2Vox++'s 1×1×1 convolution to volumes):
#: :func:`predict_views` shares a batch's views only where the plain forward pass would have
#: run at least this many, so that its numbers are those of :func:`predict`
SMALL_BATCH = 16


def predict_views(model, images: np.ndarray, views: Sequence[int], batch_size: int = 8
                  ) -> dict[int, np.ndarray]:
    """Refined occupancy probabilities ``{V: (S, 32, 32, 32)}`` of Pix2Vox++ from the first
    ``V`` views of images (S, V_max, n, n), for each ``V`` in ``views``.

    Views are encoded, decoded and scored on their own (:meth:`Pix2VoxPP.view_volumes`), so
    each batch's views are run once for every ``V`` and only the fusion and the refiner run
    per ``V``; the result equals :func:`predict` on ``images[:, :V]`` (:data:`SMALL_BATCH`).
    """
    import torch

    device = next(model.parameters()).device
    model.eval()
    out: dict[int, list[np.ndarray]] = {v: [] for v in views}

    def run(chunk: np.ndarray, v: int) -> tuple:
        x = torch.from_numpy(np.ascontiguousarray(chunk[:, :v], dtype=np.float32))
        return model.view_volumes(x.to(device))

    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            shared = [v for v in views if len(chunk) * v >= SMALL_BATCH]
            most = run(chunk, max(shared)) if shared else None
            for v in views:
                parts = [t[:, :v] for t in most] if v in shared else run(chunk, v)
                out[v].append(model.fuse(*parts)["refined"].float().cpu().numpy())
    return {v: np.concatenate(p) for v, p in out.items()}


def predict(model, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Refined occupancy probabilities (S, 32, 32, 32) from images (S, V, n, n)."""
    return predict_views(model, images, [images.shape[1]], batch_size)[images.shape[1]]


def _eval_index(ds: AFMDataset, cfg: AFMProfile) -> dict[str, np.ndarray]:
    train = np.flatnonzero(~ds.validation)
    if len(train) > cfg.eval_train_max:
        rng = np.random.default_rng(cfg.seed + 1)
        train = np.sort(rng.choice(train, cfg.eval_train_max, replace=False))
    return {"train": train, "validation": np.flatnonzero(ds.validation)}


@dataclass
class Predictions:
    """A network's occupancy probabilities on the evaluated structures, by split and number of
    views: predicted once (:func:`predictions`), then scored by every table
    (:func:`evaluate_network`, :func:`best_threshold`, :func:`structure_scores`) without
    running the network again.

    Attributes:
        index: split name -> (S,) structure indices into the dataset.
        probabilities: (split, V) -> (S, g, g, g) float32 probabilities from the first V
            views, in the order of ``index[split]``.
    """

    index: dict[str, np.ndarray]
    probabilities: dict[tuple[str, int], np.ndarray]

    def of(self, split: str, views: int, structures: np.ndarray) -> np.ndarray:
        """The probabilities (S, g, g, g) of ``structures`` (all predicted) with ``views``."""
        row = {int(i): k for k, i in enumerate(self.index[split])}
        missing = [int(i) for i in structures if int(i) not in row]
        if missing or (split, views) not in self.probabilities:
            raise ConfigError(f"no {views}-view prediction of structure(s) {missing[:5]} in the "
                              f"{split!r} split; predict them first")
        return self.probabilities[split, views][[row[int(i)] for i in structures]]


def predictions(model, ds: AFMDataset, cfg: AFMProfile,
                index: dict[str, np.ndarray] | None = None,
                views: Sequence[int] | None = None) -> Predictions:
    """:class:`Predictions` of a Pix2Vox++ or a PoseVox on the structures of ``index``
    (default: the validation structures and up to ``cfg.eval_train_max`` training ones) with
    the first V views, for each V of ``views`` (default ``cfg.eval_views``)."""
    index = index if index is not None else _eval_index(ds, cfg)
    views = list(views or cfg.eval_views)
    probabilities = {}
    for split, idx in index.items():
        for v, p in view_probabilities(model, ds, idx, views, cfg.batch_size).items():
            probabilities[split, v] = p
    return Predictions(index, probabilities)


def evaluate_network(network, ds: AFMDataset, cfg: AFMProfile,
                     views: Sequence[int] | None = None) -> pd.DataFrame:
    """Mean IoU of the refined volumes with the first V views, by split, V and threshold.

    ``network`` is a model or its :class:`Predictions` (then nothing is predicted again).
    Training IoU uses up to ``cfg.eval_train_max`` training structures (to save time).
    Columns: split, views, threshold, iou, n.
    """
    views = list(views or cfg.eval_views)
    pred = network if isinstance(network, Predictions) else predictions(network, ds, cfg,
                                                                         views=views)
    rows = []
    for split, index in _eval_index(ds, cfg).items():
        for v in views:
            prob = pred.of(split, v, index)
            for t in cfg.thresholds:
                scores = [iou(p, ds.targets[i], threshold=t) for p, i in zip(prob, index,
                                                                           strict=True)]
                rows.append(dict(split=split, views=v, threshold=t, iou=float(np.mean(scores)),
                                 n=len(index)))
    return pd.DataFrame(rows)


# ------------------------------------------------------------ PoseVox: views with their poses


def mean_shape(ds: AFMDataset) -> np.ndarray:
    """The voxel-wise mean (g, g, g) float32 of the training targets: the shape prior."""
    return ds.targets[~ds.validation].mean(axis=0, dtype=np.float64).astype(np.float32)


def pose_evidence(ds: AFMDataset, i: int, views: Sequence[int]) -> np.ndarray:
    """Back-projected evidence (2, g, g, g) of structure ``i``'s views numbered ``views``
    (:func:`cryolab.carving.backproject` on the structure's grid)."""
    return carving.backproject(ds.views(i).select(list(views)), ds.centre[i],
                               float(ds.voxel[i]), ds.targets.shape[-1])


def cube_symmetry(volumes: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random one of the 48 symmetries of the cube (an axis permutation and flips)
    applied to the last three axes of every array in ``volumes``."""
    order = rng.permutation(3)
    flips = np.flatnonzero(rng.random(3) < 0.5)
    out = []
    for v in volumes:
        lead = v.ndim - 3
        moved = np.transpose(v, (*range(lead), *(lead + order)))
        out.append(np.ascontiguousarray(np.flip(moved, tuple(lead + flips))))
    return out


def _pose_batches(ds: AFMDataset, cfg: AFMProfile, index: np.ndarray, prior: np.ndarray):
    def batches(epoch: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, ...]]:
        order = rng.permutation(index)
        for start in range(0, len(order), cfg.batch_size):
            evidence, priors, counts, targets = [], [], [], []
            for i in order[start : start + cfg.batch_size]:
                n = int(rng.integers(cfg.pose_views[0], cfg.pose_views[1] + 1))
                views = rng.choice(cfg.n_views, min(n, cfg.n_views), replace=False)
                arrays = [pose_evidence(ds, i, views), prior, ds.targets[i].astype(np.float32)]
                if cfg.pose_augment:
                    arrays = cube_symmetry(arrays, rng)
                evidence.append(arrays[0])
                priors.append(arrays[1][None])
                targets.append(arrays[2])
                counts.append(len(views))
            yield (np.stack(evidence), np.stack(priors), np.array(counts, np.float32),
                   np.stack(targets))

    return batches


def _pose_step(trainer, batch) -> dict[str, float]:
    import torch.nn.functional as F  # noqa: N812 - the usual torch alias

    evidence, prior, counts, targets = trainer.to_device(batch)
    with trainer.autocast():
        logits = trainer.model(trainer.model.inputs(evidence, counts, prior))
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
    trainer.optimise(loss)
    return {"loss": loss.item()}


def train_posevox(ds: AFMDataset, cfg: AFMProfile, checkpoint: Path | None,
                  epochs: int | None = None, progress: bool = True):
    """Train PoseVox on the training structures; returns ``(model, history)``.

    The model's prior is the mean training shape. Each sample is a random number of views
    (``cfg.pose_views``) of one structure, back-projected with their orientations, and (with
    ``cfg.pose_augment``) evidence, prior and target are turned by the same random symmetry
    of the cube. Resumes from ``checkpoint``.
    """
    import torch

    from ..nn.posevox import PoseVox
    from ..train import Trainer

    model = PoseVox(grid=cfg.grid, width=cfg.pose_width, depth=cfg.pose_depth)
    prior = mean_shape(ds)
    model.prior.copy_(torch.from_numpy(prior))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.pose_lr)
    n_epochs = epochs or cfg.pose_epochs
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_epochs)
    config = {k: v for k, v in asdict(cfg).items() if k != "extra"}
    trainer = Trainer(model, optimizer, _pose_step, checkpoint=checkpoint,
                      config={**config, "pose_epochs": n_epochs, "model": "PoseVox"},
                      schedulers={"model": schedule}, seed=cfg.pose_seed)
    history = trainer.fit(_pose_batches(ds, cfg, np.flatnonzero(~ds.validation), prior),
                          epochs=n_epochs, progress=progress)
    return model.eval(), history


def held_out_sample(names: Sequence[str], cfg: AFMProfile, seed: int = 0
                    ) -> list[tuple[afm.AFMViews, np.ndarray, np.ndarray, float]]:
    """Views, target, grid centre and voxel size of each structure in ``names``, rendered as
    the profile renders its dataset but each with its own generator ``(seed, k)``, so that a
    small sample is reproducible on its own (the shipped models' CI check)."""
    return [render_structure(structure_file(name), cfg, np.random.default_rng([seed, k]))
            for k, name in enumerate(names)]


def sample_iou(model, names: Sequence[str], cfg: AFMProfile, views: int, threshold: float,
               sample_seed: int = 0) -> list[float]:
    """IoU of a PoseVox on each structure of :func:`held_out_sample` from its first ``views``
    views, at ``threshold``."""
    return [iou(reconstruct(model, v.select(range(views)), centre, voxel), target,
                threshold=threshold)
            for v, target, centre, voxel in held_out_sample(names, cfg, sample_seed)]


# ------------------------------------------------------------ every method, structure by structure

PIX2VOX = "Pix2Vox++"
POSEVOX = "PoseVox"


def structure_scores(ds: AFMDataset, cfg: AFMProfile, networks: dict | None = None,
                     index: dict[str, np.ndarray] | None = None,
                     scored: pd.DataFrame | None = None) -> pd.DataFrame:
    """IoU of every method on every evaluated structure with the first V views.

    Methods: the mean training shape (thresholded where it is best on the training
    structures; no views), space carving, and each of ``networks``: ``{name: (network,
    threshold)}``, a Pix2Vox++ (images only) or a PoseVox (views and orientations, told
    apart by class), or the :class:`Predictions` of one. ``index`` maps split names to
    structure indices (default: the validation structures and up to ``cfg.eval_train_max``
    training ones).

    ``scored``, an earlier table of this function on the same dataset and profile that holds
    every structure of ``index``: its methods (the baselines, and networks not in
    ``networks``) are carried over rather than scored again, so each method is scored once.

    Columns: method, split, views, structure (index into ``ds``), iou.
    """
    index = index if index is not None else _eval_index(ds, cfg)
    networks = networks or {}
    carried = [] if scored is None else [m for m in dict.fromkeys(scored["method"])
                                         if m not in networks]
    earlier = None if scored is None else scored.set_index(
        ["method", "split", "views", "structure"])["iou"]
    if MEAN_SHAPE not in carried:
        prior = mean_shape(ds)
        train = np.flatnonzero(~ds.validation)
        prior_t = max(cfg.thresholds, key=lambda t: np.mean(
            [iou(prior, ds.targets[i], threshold=t) for i in train]))
    rows = []
    for split, idx in index.items():
        fresh: dict[str, dict[int, list[float]]] = {}
        if MEAN_SHAPE not in carried:
            prior_scores = [iou(prior, ds.targets[i], threshold=prior_t) for i in idx]
            fresh[MEAN_SHAPE] = {v: prior_scores for v in cfg.eval_views}
        if CARVING not in carried:
            fresh[CARVING] = {v: [] for v in cfg.eval_views}
            for i in idx:
                voxel = float(ds.voxel[i])
                for v, depth in carving.prefix_depths(ds.views(i), ds.centre[i], voxel,
                                                      cfg.grid, cfg.eval_views).items():
                    fresh[CARVING][v].append(iou(carving.carved(*depth, cfg.grid),
                                                 ds.targets[i]))
        for name, (network, threshold) in networks.items():
            prob = ({v: network.of(split, v, idx) for v in cfg.eval_views}
                    if isinstance(network, Predictions) else
                    view_probabilities(network, ds, idx, cfg.eval_views, cfg.batch_size))
            fresh[name] = {v: [iou(p, ds.targets[i], threshold=threshold)
                               for p, i in zip(prob[v], idx, strict=True)]
                           for v in cfg.eval_views}
        for v in cfg.eval_views:
            for m in dict.fromkeys([MEAN_SHAPE, CARVING, *carried, *networks]):
                if m in fresh:
                    xs = fresh[m][v]
                else:
                    keys = [(m, split, v, int(i)) for i in idx]
                    if not set(keys) <= set(earlier.index):
                        raise ConfigError(f"structure_scores: the scored table lacks {m!r} on "
                                          f"some {split} structures with {v} views")
                    xs = earlier.loc[keys].to_numpy()
                rows += [dict(method=m, split=split, views=v, structure=int(i), iou=float(x))
                         for i, x in zip(idx, xs, strict=True)]
    return pd.DataFrame(rows)


def view_probabilities(model, ds: AFMDataset, index: np.ndarray, views: Sequence[int],
                       batch_size: int = 8) -> dict[int, np.ndarray]:
    """Occupancy probabilities ``{V: (S, g, g, g)}`` of structures ``index`` from their first
    ``V`` views, for each ``V`` in ``views``: a PoseVox gets them back-projected with their
    orientations (each voxel projected into each view once, :func:`cryolab.carving.
    prefix_depths`), a Pix2Vox++ the images alone (each view decoded once,
    :func:`predict_views`)."""
    from ..nn.posevox import PoseVox

    views = list(views)
    if not isinstance(model, PoseVox):
        return predict_views(model, ds.images[index, :max(views)], views, batch_size)
    grid = ds.targets.shape[-1]
    out: dict[int, list[np.ndarray]] = {v: [] for v in views}
    for start in range(0, len(index), batch_size):  # one batch of structures at a time
        evidence: dict[int, list[np.ndarray]] = {v: [] for v in views}
        for i in index[start : start + batch_size]:
            voxel = float(ds.voxel[i])
            for v, depth in carving.prefix_depths(ds.views(i), ds.centre[i], voxel, grid,
                                                  views).items():
                evidence[v].append(carving.evidence(*depth, voxel, grid))
        for v in views:
            out[v].append(pose_predict(model, np.stack(evidence[v]), v, batch_size))
    return {v: np.concatenate(p) for v, p in out.items()}


def network_probabilities(model, ds: AFMDataset, index: np.ndarray, views: int,
                          batch_size: int = 8) -> np.ndarray:
    """Occupancy probabilities (S, g, g, g) of structures ``index`` from their first ``views``
    views (:func:`view_probabilities` for one number of views)."""
    return view_probabilities(model, ds, index, [views], batch_size)[views]


def best_threshold(ds: AFMDataset, cfg: AFMProfile, network, views: int = 5) -> float:
    """The threshold of ``cfg.thresholds`` with the best mean IoU on the training structures
    (up to ``cfg.eval_train_max``) with ``views`` views — never chosen on validation.
    ``network`` is a model or its :class:`Predictions`."""
    index = _eval_index(ds, cfg)["train"]
    prob = (network.of("train", views, index) if isinstance(network, Predictions) else
            network_probabilities(network, ds, index, views, cfg.batch_size))
    return max(cfg.thresholds, key=lambda t: np.mean(
        [iou(p, ds.targets[i], threshold=t) for p, i in zip(prob, index, strict=True)]))


def iou_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean IoU by split and views (rows) and method (columns), from :func:`structure_scores`."""
    return scores.pivot_table(index=["split", "views"], columns="method", values="iou",
                              sort=False)


def gap_table(ds: AFMDataset, cfg: AFMProfile, folder: Path, threshold: float,
              baseline=None, views: int = 5, progress: bool = True,
              baseline_predictions: Predictions | None = None) -> pd.DataFrame:
    """Train / validation IoU (``views`` views) and their gap for each of ``cfg.gap_variants``.

    Each variant is trained for ``cfg.gap_epochs`` epochs (checkpoint ``pix2vox_gap<k>.pt`` in
    ``folder``); ``baseline``, the chapter's main model, stands in for the unregularised
    variant when it was trained for as many epochs, and is scored from
    ``baseline_predictions`` (its :class:`Predictions`) when given.
    """
    rows = []
    for k, name in enumerate(cfg.gap_variants):
        overrides = GAP_VARIANTS[name]
        network = None
        if not overrides and baseline is not None and cfg.gap_epochs == cfg.epochs:
            model, network = baseline, baseline_predictions
        else:
            model, _ = train_pix2vox(ds, cfg, folder / f"pix2vox_gap{k}.pt", overrides,
                                     epochs=cfg.gap_epochs, progress=progress)
        scores = evaluate_network(network or model, ds, replace(cfg, thresholds=(threshold,)),
                                  [views])
        train, val = (float(scores.loc[scores.split == s, "iou"].iloc[0])
                      for s in ("train", "validation"))
        rows.append({"variant": name, "train IoU": train, "validation IoU": val,
                     "gap": train - val,
                     "parameters": sum(p.numel() for p in model.parameters())})
    return pd.DataFrame(rows).set_index("variant")


# -------------------------------------------------------------------------------- figures


def plot_views(images: np.ndarray, quaternions: np.ndarray, columns: int = 5, title: str = ""):
    """A grid of AFM views, each titled with its orientation (ZYZ Euler angles, degrees)."""
    import matplotlib.pyplot as plt
    from scipy.spatial.transform import Rotation

    n = len(images)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.1 * rows),
                             constrained_layout=True, squeeze=False)
    euler = Rotation.from_quat(quaternions).as_euler("ZYZ", degrees=True)
    lo, hi = float(np.min(images)), float(np.max(images))
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, img, e in zip(axes.ravel(), images, euler, strict=False):
        ax.imshow(img, cmap="afmhot", vmin=lo, vmax=hi, origin="lower")
        ax.set_title("({:.0f}, {:.0f}, {:.0f})°".format(*e), fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_iou_vs_views(curves: dict[str, pd.Series], paper: dict[str, dict[int, float]]):
    """IoU against the number of views: our curves (index = views) and the paper's points."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    for name, series in curves.items():
        ax.plot(series.index, series.to_numpy(), marker="o", label=name)
    for (name, points), marker in zip(paper.items(), ("x", "+", "*", "^"), strict=False):
        ax.plot(list(points), list(points.values()), ls="none", marker=marker, ms=8,
                color="0.2", label=f"paper, {name}")
    ax.set_xlabel("number of views")
    ax.set_ylabel("mean IoU")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize=8)
    return fig


def data_files() -> list[str]:
    """The registered files this chapter reads, in any profile (``cryolab data download``)."""
    return sorted({n for cfg in PROFILES.values() for n in structure_table(cfg)["name"]})
