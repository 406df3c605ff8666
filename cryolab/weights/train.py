"""Reproduce a shipped model from scratch: ``python -m cryolab.weights.train
afm|tomo|superres|vae|struc2map``.

``afm`` trains PoseVox (chapter 06); ``tomo`` trains the tomogram denoiser and segmenter
(chapter 05); ``superres`` and ``vae`` train chapter 02's U-Net and chapter 03's VAE;
``struc2map`` runs chapter 01's leave-one-map-out folds and trains its generators. Each
trains the chapter's model with its ``pretrained`` profile, deterministically for a seed,
prints the training log, and writes the slim checkpoint ``<name>.pt`` (weights and sizes
only: plain tensors, dicts, lists, strings and numbers, so that ``torch.load(...,
weights_only=True)`` reads it) and its model card ``<name>.json`` into ``--out`` (default
this package folder).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from .. import __version__
from ..results import repo_root
from . import _folder

__all__ = ["train_afm", "refresh_book_model", "afm_seed_spread", "train_superres", "train_vae",
           "card_real_maps", "ci_sample", "synthetic_evaluation", "evaluate_card",
           "train_tomo", "fold_denoiser", "tomo_blend_scan", "evaluate_tomo", "tomo_ci_scores",
           "train_struc2map", "s2m_fold",
           "s2m_ci_scores", "s2m_merge", "refresh_s2m_evaluation", "time_s2m_cards", "main"]

CI_SAMPLE = 4  # validation structures in the card's CI check
CI_VIEWS = 3
CI_TOLERANCE = 0.02  # IoU: BLAS and platform differences in the last bits of a logit


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo_root(Path(__file__))), "describe",
                              "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _hardware() -> str:
    import torch

    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} with {torch.get_num_threads()} thread(s)")


def _save_slim(model, path: Path, key: str = "model") -> None:  # noqa: ANN001 - torch module
    """Write ``model`` as a slim checkpoint (weights and sizes only, stored under ``key``)
    that :func:`cryolab.train.load_model` reads."""
    import torch

    state = {
        "cryolab_version": __version__,
        "architecture": {key: {"class": type(model).__name__, "hparams": dict(model.hparams)}},
        "models": {key: {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def _book_model() -> dict | None:
    """Chapter 06's book run, if there is one: its validation IoU by views of Pix2Vox++ and
    of the PoseVox it trains in minutes."""
    path = repo_root(Path(__file__)) / "results" / "06_afm_pix2vox" / "book" / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return {name: {str(x["views"]): x["method_iou"] for x in m["verdicts"][name]["margins"]
                   if x["baseline"] == "mean training shape"}
            for name in ("Pix2Vox++", "PoseVox")} | {"written": m.get("written")}


def refresh_book_model(card_path: Path) -> None:
    """Put the latest book run of chapter 06 beside the evaluation in an existing card."""
    card = json.loads(card_path.read_text())
    card["evaluation"]["book_model"] = _book_model()
    card_path.write_text(json.dumps(card, indent=1) + "\n")


def train_afm(out: Path, seed: int = 0, epochs: int | None = None, threads: int = 1,
              cache: Path | None = None, name: str = "posevox") -> dict:
    """Train PoseVox on every registered structure (training split) and write
    ``out/<name>.pt`` and ``out/<name>.json``; returns the card."""
    import torch

    from ..pipelines import afm_views as A

    start = time.perf_counter()
    commit = _commit()  # the code that trains, not the tree when the card is written
    torch.set_num_threads(threads)
    cfg = replace(A.PROFILES["pretrained"], pose_seed=seed,
                  pose_epochs=epochs or A.PROFILES["pretrained"].pose_epochs)
    ds = A.build_dataset(cfg, cache, progress=False)
    print(f"{len(ds.names)} structures ({int(ds.validation.sum())} validation), "
          f"{len(ds.skipped)} skipped; {time.perf_counter() - start:.0f} s", flush=True)
    work = out / f".{name}-training.pt"
    model, history = A.train_posevox(ds, cfg, work, progress=False)
    for record in history.records:
        print(json.dumps({k: round(v, 5) for k, v in record.items()}), flush=True)
    train_seconds = time.perf_counter() - start
    threshold = A.best_threshold(ds, cfg, model)
    scores = A.structure_scores(ds, cfg, {A.POSEVOX: (model, threshold)})
    table = A.iou_table(scores)
    verdict = A.verdict(scores, A.POSEVOX, cfg.bootstrap, cfg.seed)
    ci_names = sorted(str(n) for n in ds.names[ds.validation])[:CI_SAMPLE]
    ci_iou = A.sample_iou(model, ci_names, cfg, CI_VIEWS, threshold, sample_seed=0)
    _save_slim(model, out / f"{name}.pt")

    def by_views(split: str, method: str) -> dict[str, float]:
        return {str(v): float(x) for v, x in table.loc[split, method].items()}

    card = {
        "name": name,
        "task": "chapter 06: 32³ occupancy of a protein complex from AFM height images with "
                "known orientations",
        "model_class": f"{type(model).__module__}.{type(model).__name__}",
        "architecture": {
            "summary": "views back-projected with their orientations into the structure's "
                       "grid (soft visual hull + mean depth), with the mean training shape "
                       "and 1/V as extra channels, refined by a 3D U-Net",
            "hparams": dict(model.hparams),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "input": "AFM heights in Å (V × n × n), view quaternions (scalar last, canonical "
                     "-> view), substrate z in Å, pixel size in Å, grid centre and voxel "
                     "size in Å",
            "output": "occupancy probabilities (32³, z y x)",
            "threshold": threshold,
        },
        "training": {
            "profile": "pretrained",
            "settings": {k: v for k, v in asdict(cfg).items() if k != "extra"},
            "epochs": cfg.pose_epochs,
            "seed": seed,
            "n_structures": int((~ds.validation).sum()),
            "names": sorted(str(n) for n in ds.names[~ds.validation]),
            "skipped": list(ds.skipped),
            "wall_seconds": round(train_seconds, 1),
            "hardware": _hardware(),
            "cryolab_version": __version__,
            "commit": commit,
            "log": history.records,
        },
        "evaluation": {
            "split": "validation (grouped by PDB entry; never trained on)",
            "n_validation": int(ds.validation.sum()),
            "n_train_scored": int(len(scores[(scores.split == "train")].structure.unique())),
            "views": list(cfg.eval_views),
            "iou": {m: by_views("validation", m) for m in (A.POSEVOX, A.MEAN_SHAPE,
                                                           A.CARVING)},
            "train_iou": {m: by_views("train", m) for m in (A.POSEVOX, A.MEAN_SHAPE,
                                                            A.CARVING)},
            "verdict": verdict.to_dict(),
            "paper": {s: {str(v): x for v, x in d.items()} for s, d in A.PAPER_IOU.items()},
            "book_model": _book_model(),
        },
        "ci_check": {
            "names": ci_names, "views": CI_VIEWS, "sample_seed": 0, "threshold": threshold,
            "iou": ci_iou, "tolerance": CI_TOLERANCE,
        },
    }
    (out / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    work.unlink(missing_ok=True)
    print(f"wrote {out / (name + '.pt')} ({(out / (name + '.pt')).stat().st_size / 1e6:.2f} "
          f"MB) and its card; {time.perf_counter() - start:.0f} s", flush=True)
    return card


def afm_seed_spread(card_path: Path, others: list[Path]) -> dict:
    """Put the run-to-run spread into the shipped card: its own verdict and those of the same
    recipe trained with other seeds (``others``: their cards, written by ``train_afm`` with
    ``--seed N --out DIR``), all scored on the same validation structures. Returns the
    spread's dict (:class:`cryolab.shape_verdict.SeedSpread`)."""
    from ..shape_verdict import AFMVerdict, SeedSpread

    card = json.loads(card_path.read_text())
    cards = [card] + [json.loads(Path(p).read_text()) for p in others]
    for other in cards[1:]:
        for key in ("profile", "epochs", "names"):
            if other["training"][key] != card["training"][key]:
                raise ValueError(f"{key} differs between the runs: not the same recipe")
    spread = SeedSpread(tuple(c["training"]["seed"] for c in cards),
                        tuple(AFMVerdict.from_dict(c["evaluation"]["verdict"]) for c in cards))
    card["evaluation"]["seed_spread"] = spread.to_dict() | {
        "runs": [{k: c["training"][k] for k in ("seed", "epochs", "wall_seconds", "hardware",
                                                "commit")}
                 | {"final_loss": c["training"]["log"][-1]["loss"]} for c in cards]}
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    print(spread.describe())
    return card["evaluation"]["seed_spread"]


# ------------------------------------------------------- chapters 02 and 03: superres, vae

#: The real map of the cards' CI check (the smallest pair), cropped to this many Å.
MAP_CI = ("EMD-2566", 30.0)
MAP_CI_TOLERANCE = {"rscc": 0.02, "fsc05": 0.1, "emringer": 0.5}  # EMRinger: a count statistic
SHIPPED_PAIR_COPIES = 2  # differently degraded inputs per training entry, of each kind


def _shipped_training_pairs(seed: int):  # noqa: ANN202 - lists of superres.Pair
    """Chapter 02's split of the X-ray entries (pretrained profile); each training entry
    degraded :data:`SHIPPED_PAIR_COPIES` times by the paper's noise model (the chapters' test
    data) and as many times by :func:`cryolab.degrade.realistic_degrade` (for users' real
    maps). No real map is used."""
    import numpy as np

    from .. import superres as sr
    from ..degrade import RealisticParams

    cfg = sr.PROFILES["pretrained"]
    train_entries, test_entries = sr.split_by_entry(sr.load_entries(), cfg.n_test, cfg.n_train)
    rng = np.random.default_rng(seed)
    train = [p for _ in range(SHIPPED_PAIR_COPIES)
             for p in sr.make_pairs(train_entries, cfg.noise, rng)]
    train += sr.make_realistic_pairs(train_entries, RealisticParams(), rng, SHIPPED_PAIR_COPIES)
    return train, test_entries


def _fit_for(trainer, batches, max_epochs: int, minutes: float, start: float) -> int:  # noqa: ANN001
    """Train epoch by epoch until ``max_epochs`` or until ``minutes`` have passed since
    ``start``; returns the epochs done (the number that reproduces the file)."""
    while trainer.epoch < max_epochs and time.perf_counter() - start < 60 * minutes:
        trainer.fit(batches, max_epochs, stop_after=1, progress=False)
        print(json.dumps({k: round(v, 5) for k, v in trainer.history.records[-1].items()}),
              flush=True)
    return trainer.epoch


def _predictor(name: str, model):  # noqa: ANN001, ANN202
    """``fn(map) -> map``: the shipped model ``name`` on a 1 Å map scaled like its inputs, by
    the path users get (:func:`cryolab.superres.real_map_predictor` for the U-Net)."""
    from .. import superres as sr
    from ..pipelines import sharpening as sp

    if name == "superres":
        return sr.real_map_predictor(model, sr.PROFILES["pretrained"])
    return sp.vae_predictor(model, sp.PROFILES["pretrained"])


def card_real_maps(name: str, model, crop: float = 60.0) -> dict:  # noqa: ANN001
    """The card's real-map evaluation: every score of :data:`cryolab.superres.REAL_SCORES`
    for the input, global B-factor sharpening and the model on the five real maps (none of
    them was seen in training), and the CI sample's scores."""
    from .. import superres as sr

    reals = [sr.load_real_map(p, crop) for p in sr.REAL_PAIRS]
    table = sr.real_map_table(reals, {"B-factor sharpening": sr.bfactor_baseline,
                                      name: sr.on_real(_predictor(name, model))})
    by_map = {m: {r["method"]: {k: float(r[k]) for k in sr.REAL_SCORES}
                  for r in rows.to_dict(orient="records")}
              for m, rows in table.groupby("map")}
    return {"crop": crop, "maps": by_map, "ci": ci_sample(name, model)}


def ci_sample(name: str, model) -> dict[str, float]:  # noqa: ANN001
    """The scores the CI test reproduces: the model on :data:`MAP_CI`'s map."""
    from .. import superres as sr

    label, crop = MAP_CI
    pair = next(p for p in sr.REAL_PAIRS if p.label == label)
    real = sr.load_real_map(pair, crop)
    scores = sr.score_real(real, _predictor(name, model)(real.volume))
    return {k: float(scores[k]) for k in MAP_CI_TOLERANCE}


#: Test entries of chapter 02 scored in a card (the first of its test split).
CARD_SYNTHETIC_ENTRIES = 3


def synthetic_evaluation(name: str, model) -> dict:  # noqa: ANN001
    """The shipped model on chapter 02's held-out test entries (the first
    :data:`CARD_SYNTHETIC_ENTRIES`), degraded by the paper's noise model (the chapters' test
    data) and by :func:`cryolab.degrade.realistic_degrade`: mean scores of
    :func:`cryolab.superres.evaluate` for input and prediction."""
    import numpy as np

    from .. import superres as sr
    from ..degrade import RealisticParams

    cfg = sr.PROFILES["pretrained"]
    _, test = sr.split_by_entry(sr.load_entries(), cfg.n_test, cfg.n_train)
    test = test[:CARD_SYNTHETIC_ENTRIES]
    data = {"paper noise model": sr.make_pairs(test, cfg.noise, np.random.default_rng(0)),
            "realistic degradation": sr.make_realistic_pairs(test, RealisticParams(),
                                                             np.random.default_rng(0))}
    predict = _predictor(name, model)
    out = {}
    for kind, pairs in data.items():
        rows = [sr.evaluate(p, predict(p.degraded)) for p in pairs]
        keys = [k for k in rows[0] if k != "entry"]
        out[kind] = {"entries": [r["entry"] for r in rows],
                     **{k: float(np.mean([r[k] for r in rows])) for k in keys}}
    return out


def _book_map_model(name: str) -> dict | None:
    """The chapter's latest book run, if any: its real-map table and verdicts (the model it
    trains in minutes), to stand beside the shipped model's; None without a book run."""
    notebook = {"superres": "02_superres_unet3d", "vae": "03_sharpening_vae"}[name]
    path = repo_root(Path(__file__)) / "results" / notebook / "book" / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return {"real_maps": m.get("real_maps"), "real_verdicts": m.get("real_verdicts"),
            "written": m.get("written")}


#: How each shipped map model is applied, everywhere (:func:`_predictor`, the chapters,
#: ``cryolab sharpen``); written into its card.
MAP_INFERENCE = {
    "superres": "cryolab.superres.real_map_predictor: tiled prediction averaged over the 8 "
                "axis flips, the input's own Fourier components up to 10 Å put back "
                "(superres.KEPT_RESOLUTION, rescaled to the prediction's shell amplitudes), "
                "then sharpened to the training targets' Guinier B (superres.TARGET_BFACTOR) "
                "from 10 Å to the input's estimated resolution, without a low-pass",
    "vae": "cryolab.pipelines.sharpening.vae_predictor: the z-scored map decoded from z = μ, "
           "tile by tile",
}


def evaluate_card(name: str, folder: Path) -> dict:
    """Recompute a shipped card's evaluation (real maps, synthetic test entries, CI sample)
    from its checkpoint in ``folder``; the training record is kept."""
    from ..train import load_model

    card_path = folder / f"{name}.json"
    card = json.loads(card_path.read_text())
    module, _, cls = card["model_class"].rpartition(".")
    model = load_model(folder / f"{name}.pt", getattr(importlib.import_module(module), cls))
    card["inference"] = MAP_INFERENCE[name]
    card["evaluation"]["real_maps"] = card_real_maps(name, model)
    card["evaluation"]["synthetic"] = synthetic_evaluation(name, model)
    card["evaluation"]["book_model"] = _book_map_model(name)
    card["ci_check"] = {"map": MAP_CI[0], "crop": MAP_CI[1],
                        **card["evaluation"]["real_maps"]["ci"], "tolerance": MAP_CI_TOLERANCE}
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return card


def _write_card(out: Path, name: str, model, card: dict) -> dict:  # noqa: ANN001
    _save_slim(model, out / f"{name}.pt")
    (out / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    return evaluate_card(name, out)


def _training_card(name: str, model, cfg, settings: dict, train, epochs: int, seed: int,  # noqa: ANN001
                   seconds: float, commit: str, records: list) -> dict:
    from .. import superres as sr
    from ..degrade import RealisticParams

    return {
        "name": name,
        "model_class": f"{type(model).__module__}.{type(model).__name__}",
        "architecture": {"hparams": dict(model.hparams),
                         "parameters": int(sum(p.numel() for p in model.parameters())),
                         "voxel_size": 1.0, "patch": settings["patch"]},
        "training": {
            "profile": "pretrained", "settings": settings, "epochs": epochs, "seed": seed,
            "degradation": {"paper noise model": cfg.noise.as_dict(),
                            "realistic": RealisticParams().as_dict()},
            "copies": SHIPPED_PAIR_COPIES,
            "names": sorted({p.entry.name for p in train}),
            "n_structures": len({p.entry.name for p in train}),
            "real_maps_seen": [],
            "wall_seconds": round(seconds, 1), "hardware": _hardware(),
            "cryolab_version": __version__, "commit": commit, "log": records,
        },
        "evaluation": {
            "held_out_real_maps": [p.label for p in sr.REAL_PAIRS],
            "note": "trained on synthetic maps only: every real map of the mirror is held out "
                    "and may be evaluated on",
            "test_entries": [e.pdb_id for e in sr.split_by_entry(
                sr.load_entries(), cfg.n_test, cfg.n_train)[1]],
            "paper": "Mullick et al. and Thornton report no real-map numbers comparable to "
                     "these (no shared maps)",
        },
        "resolution_range": list(RealisticParams().resolution),
    }


def train_superres(out: Path, seed: int = 0, minutes: float = 15.0, epochs: int | None = None,
                   threads: int = 1, name: str = "superres") -> dict:
    """Train chapter 02's U-Net (pretrained profile, Dice loss) on X-ray model maps degraded
    by the paper's noise model and realistically (:func:`_shipped_training_pairs`) for
    ``minutes`` (or exactly ``epochs``); write ``<name>.pt`` and card."""
    import torch

    from .. import superres as sr
    from ..nn.unet3d import UNet3D, dice_loss
    from ..train import Trainer, supervised_step

    start = time.perf_counter()
    commit = _commit()
    torch.set_num_threads(threads)
    cfg = sr.PROFILES["pretrained"]
    train, _ = _shipped_training_pairs(seed)
    print(f"{len(train)} training pairs; {time.perf_counter() - start:.0f} s", flush=True)
    torch.manual_seed(seed)
    model = UNet3D(depth=cfg.depth, base=cfg.base)
    work = out / f".{name}-training.pt"
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas),
                      supervised_step(dice_loss), checkpoint=work,
                      config={**cfg.config(), "seed": seed}, seed=seed, device="cpu")
    done = _fit_for(trainer, sr.training_batches(train, cfg), epochs or cfg.epochs,
                    float("inf") if epochs else minutes, start)
    seconds = time.perf_counter() - start
    model = trainer.model.eval()
    card = _training_card(name, model, cfg, cfg.config(), train, done, seed, seconds, commit,
                          trainer.history.records)
    card["task"] = ("chapter 02: super-resolution of a cryo-EM map (1 Å grid, 99.9th-percentile "
                    "scaled)")
    card = _write_card(out, name, model, card)
    work.unlink(missing_ok=True)
    print(f"wrote {out / (name + '.pt')}; {time.perf_counter() - start:.0f} s", flush=True)
    return card


def train_vae(out: Path, seed: int = 0, minutes: float = 15.0, epochs: int | None = None,
              threads: int = 1, name: str = "vae") -> dict:
    """Train chapter 03's VAE with skips (pretrained profile) on z-scored X-ray model maps
    degraded as for the U-Net (:func:`_shipped_training_pairs`); fit the scale that
    calibrates its spread on held-out validation entries; write ``<name>.pt`` and card."""
    from dataclasses import replace as dc_replace

    import numpy as np
    import torch

    from .. import superres as sr
    from ..nn.vae import VAE3D, sample_volume, vae_step
    from ..pipelines import sharpening as sp
    from ..train import Trainer

    start = time.perf_counter()
    commit = _commit()
    torch.set_num_threads(threads)
    cfg = sp.PROFILES["pretrained"]
    pairs, _ = _shipped_training_pairs(seed)
    val_names = sorted({p.entry.name for p in pairs})[-cfg.n_val:]
    train = sp.zscore_pairs([p for p in pairs if p.entry.name not in val_names])
    val = sp.zscore_pairs([p for p in pairs if p.entry.name in val_names])
    print(f"{len(train)} training, {len(val)} validation pairs; "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    torch.manual_seed(seed)
    model = VAE3D(**cfg.vae_hparams(skips=True))
    work = out / f".{name}-training.pt"
    batches = sr.training_batches(train, dc_replace(cfg.data, patch=cfg.patch, batch=cfg.batch,
                                                    patches_per_epoch=cfg.patches_per_epoch))
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=cfg.lr),
                      vae_step(cfg.beta, cfg.reconstruction), checkpoint=work,
                      config={**cfg.config(True), "seed": seed}, seed=seed, device="cpu")
    done = _fit_for(trainer, batches, epochs or cfg.epochs,
                    float("inf") if epochs else minutes, start)
    seconds = time.perf_counter() - start
    model = trainer.model.eval()
    errors, spreads = [], []
    for k, p in enumerate(val):  # every degraded input of the validation entries
        mean, std = sample_volume(model, p.degraded.data, n=cfg.n_samples, patch=cfg.patch,
                                  stride=cfg.patch, seed=k)  # tiles that do not overlap
        errors.append((mean - p.target.data).ravel())
        spreads.append(std.ravel())
    scale = sp.calibration_scale(np.concatenate(errors), np.concatenate(spreads))
    card = _training_card(name, model, cfg.data, cfg.config(True), train + val, done, seed,
                          seconds, commit, trainer.history.records)
    card["task"] = "chapter 03: sharpening with a VAE (skips), z-scored 1 Å maps, uncertainty"
    card["training"]["validation_names"] = val_names
    card["uncertainty"] = {"scale": scale, "n_samples": cfg.n_samples,
                           "fitted_on": "validation entries (never trained on)"}
    card = _write_card(out, name, model, card)
    work.unlink(missing_ok=True)
    print(f"wrote {out / (name + '.pt')}; {time.perf_counter() - start:.0f} s", flush=True)
    return card


# ---------------------------------------------------------------------- chapter 05: tomo

#: Seeds of the held-out simulated tomograms the tomogram cards are scored on (the chapter's
#: test seed first); the CI check uses the first. Training seeds are 100, 101, ...
TOMO_TEST_SEEDS = (999, 998, 997)
TOMO_CI_TOLERANCE = {"psnr": 0.05, "ssim": 0.005, "dice": 0.01}  # dB; BLAS/FFT last bits
#: The shipped denoiser's output: this blend of its two heads (noise-free tomogram, ideal
#: reconstruction), chosen on a validation tomogram by :func:`tomo_blend_scan`.
TOMO_DENOISER_BLEND = (0.8, 0.2)
#: The validation tomogram of :func:`tomo_blend_scan`: its seed and size (x, y, z) in Å, and
#: the blends (weight of the noise-free head) it scores.
TOMO_BLEND_SEED = 990
TOMO_BLEND_SIZE = (960.0, 960.0, 500.0)
TOMO_BLEND_GRID = (1.0, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)
TOMO_DENOISER_TASK = ("chapter 05: denoise a cryo-ET tomogram (10 Å voxels): the noise-free "
                      "tomogram, with part of the ideal (CTF-free, wedge-free) reconstruction "
                      "blended in")
TOMO_DENOISER_OUTPUT = ("standardised blend of the noise-free tomogram and the ideal "
                        "reconstruction (architecture.blend)")


def _tomo_card_common(cfg, seed: int, kind: str) -> dict:
    from ..pipelines import tomolearn as T

    return {
        "profile": "pretrained",
        "settings": {k: v for k, v in asdict(cfg).items() if k != "robustness"},
        "seed": seed,
        "data": (f"{cfg.n_train} simulated tomograms ({kind}), simulator seeds "
                 f"{100}-{100 + cfg.n_train - 1}, specimens built from these registered "
                 f"templates"),
        "names": sorted(T.template_files()),
        "simulation_seeds": list(range(100, 100 + cfg.n_train)),
        "held_out_seeds": list(TOMO_TEST_SEEDS),
    }


def tomo_ci_scores(denoiser, segmenter, seed: int = TOMO_TEST_SEEDS[0]) -> dict:
    """The numbers the tomogram cards' CI checks reproduce: on held-out tomogram ``seed`` of
    the pretrained profile, the denoiser's PSNR (dB) and SSIM against the noise-free tomogram
    (its main target) and the segmenter's mean Dice (``None`` for a model not given)."""
    import numpy as np

    from ..nn.unet import predict_logits
    from ..pipelines import tomolearn as T

    cfg = T.PROFILES["pretrained"]
    sample = T.simulate_sample(cfg, seed, noise_free=denoiser is not None)
    out: dict = {"seed": seed}
    if denoiser is not None:
        scores = T.denoise_scores(predict_logits(denoiser, sample.tomogram)[0],
                                  sample.noise_free, sample.pixel_size)
        out |= {"psnr": scores["psnr"], "ssim": scores["ssim"]}
    if segmenter is not None:
        pred = predict_logits(segmenter, sample.tomogram).argmax(0)
        out["dice"] = float(np.mean(list(T.dice_scores(pred, sample.atlas, T.CLASSES)
                                         .values())))
    return out


#: The truths the denoiser card scores against: the name in the card, the
#: :class:`~cryolab.pipelines.tomolearn.TomoSample` field.
TOMO_TRUTHS = {"noise-free tomogram": "noise_free", "ideal reconstruction": "prior"}


def evaluate_tomo(out: Path) -> None:
    """Score the denoiser and segmenter in ``out`` on the held-out simulated tomograms
    (:data:`TOMO_TEST_SEEDS`) and write the evaluation and CI parts of their cards: the
    denoiser against both truths (:data:`TOMO_TRUTHS`) beside the best Gaussian filter for
    each truth and the raw tomogram; the segmenter's Dice against the atlas."""
    import numpy as np

    from ..nn.unet import UNet, predict_logits
    from ..pipelines import tomolearn as T
    from ..train import load_model

    cfg = T.PROFILES["pretrained"]
    den = load_model(out / "denoiser.pt", UNet)
    seg = load_model(out / "segmenter.pt", UNet)
    rows: dict[str, dict[str, list[dict]]] = {t: {} for t in TOMO_TRUTHS}
    dice = []
    for seed in TOMO_TEST_SEEDS:
        sample = T.simulate_sample(cfg, seed, noise_free=True)
        denoised = predict_logits(den, sample.tomogram)[0]
        for truth, field in TOMO_TRUTHS.items():
            target = getattr(sample, field)
            _, gauss, _ = T.gaussian_baseline(sample.tomogram, target, cfg.sigmas)
            for method, vol in (("shipped U-Net", denoised), ("best Gaussian", gauss),
                                ("raw tomogram", sample.tomogram)):
                rows[truth].setdefault(method, []).append(
                    T.denoise_scores(vol, target, sample.pixel_size))
        pred = predict_logits(seg, sample.tomogram).argmax(0)
        dice.append(T.dice_scores(pred, sample.atlas, T.CLASSES))

    def mean(rows: list[dict]) -> dict:
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    ci = tomo_ci_scores(den, seg)
    for name, evaluation, ci_keys in (
        ("denoiser", {"metric": "against each truth, mean over the held-out seeds",
                      **{truth: {m: mean(v) for m, v in by.items()}
                         for truth, by in rows.items()}},
         ("psnr", "ssim")),
        ("segmenter", {"metric": "Dice against the atlas, mean over the held-out seeds",
                       "dice": mean(dice),
                       "mean_dice": float(np.mean([np.mean(list(d.values())) for d in dice]))},
         ("dice",)),
    ):
        path = out / f"{name}.json"
        card = json.loads(path.read_text())
        card["evaluation"] = {"held_out_seeds": list(TOMO_TEST_SEEDS), **evaluation,
                              "paper": "no numbers published (figures only)"}
        card["ci_check"] = {"seed": ci["seed"], "profile": "pretrained",
                            **({"truth": "noise-free tomogram"} if name == "denoiser" else {}),
                            **{k: ci[k] for k in ci_keys},
                            "tolerance": {k: TOMO_CI_TOLERANCE[k] for k in ci_keys}}
        path.write_text(json.dumps(card, indent=1) + "\n")


def fold_denoiser(out: Path, blend: tuple[float, ...] = TOMO_DENOISER_BLEND) -> None:
    """Write ``denoiser.pt`` in ``out`` as the one-output ``blend`` of the two-head network
    ``.denoiser-heads.pt`` (:func:`cryolab.pipelines.tomolearn.blend_heads`) and record the
    blend in its card."""
    from ..nn.unet import UNet
    from ..pipelines import tomolearn as T
    from ..train import load_model

    heads = load_model(out / ".denoiser-heads.pt", UNet)
    _save_slim(T.blend_heads(heads, blend), out / "denoiser.pt")
    path = out / "denoiser.json"
    card = json.loads(path.read_text())
    card["architecture"]["blend"] = [float(b) for b in blend]
    path.write_text(json.dumps(card, indent=1) + "\n")


def tomo_blend_scan(out: Path, blends: tuple[float, ...] = TOMO_BLEND_GRID) -> dict:
    """Score blends of the two-head denoiser ``.denoiser-heads.pt`` in ``out`` (weight of the
    noise-free head; the ideal head gets the rest) on the validation tomogram
    :data:`TOMO_BLEND_SEED` (:data:`TOMO_BLEND_SIZE` Å, never trained or tested on) against
    both truths, beside Topaz-Denoise's two models where they can run
    (:func:`cryolab.pipelines.tomoeval.topaz_available`), and record the table in the
    denoiser's card (``blend_selection``).

    The rule (stated in the card): the blend whose smaller correlation margin over the better
    Topaz model, across the two truths, is largest; without Topaz, none is chosen. Returns the
    record."""

    from ..nn.unet import UNet
    from ..pipelines import tomoeval as E
    from ..pipelines import tomolearn as T
    from ..train import load_model

    cfg = T.PROFILES["pretrained"]
    heads = load_model(out / ".denoiser-heads.pt", UNet)
    whole = T.whole_tomogram(cfg, TOMO_BLEND_SEED, size=TOMO_BLEND_SIZE)
    outputs = {f"blend {b:g}": T.denoise_tomogram(T.blend_heads(heads, (b, 1 - b)),
                                                  whole.tomogram, cfg.patch)
               for b in blends}
    reason = E.topaz_available()
    if not reason:
        for name in E.TOPAZ_MODELS:
            outputs[f"Topaz {name}"], _ = E.run_topaz(whole.tomogram, whole.pixel_size, name)
    rows = E.whole_tomogram_scores(
        outputs, {"ideal": whole.prior, "noise-free with CTF": whole.ctf_truth},
        whole.pixel_size)
    chosen = None
    if not reason:
        worst = {b: min(v for (_, k), v in E.topaz_margins(rows, f"blend {b:g}").items()
                        if k == "correlation") for b in blends}
        chosen = max(worst, key=worst.get)
    record = {"seed": TOMO_BLEND_SEED, "size_A": list(TOMO_BLEND_SIZE),
              "shape": list(whole.tomogram.shape),
              "rule": "the blend (weight of the noise-free head) whose smaller correlation "
                      "margin over the better Topaz model, across the two truths, is largest",
              "topaz_skipped": reason, "scores": [r.to_dict() for r in rows],
              "chosen": chosen, "shipped": float(TOMO_DENOISER_BLEND[0])}
    path = out / "denoiser.json"
    card = json.loads(path.read_text())
    card["blend_selection"] = record
    path.write_text(json.dumps(card, indent=1) + "\n")
    return record


def train_tomo(out: Path, seed: int = 0, threads: int = 1,
               models: tuple[str, ...] = ("denoiser", "segmenter")) -> None:
    """Train the tomogram denoiser and segmenter on the pretrained profile's simulations and
    write ``denoiser.pt``/``.json`` and ``segmenter.pt``/``.json`` into ``out`` (only those
    in ``models``), then score both cards (:func:`evaluate_tomo`).

    The denoiser is a two-head U-Net trained at once for both truths of a simulated tomogram
    (head 0 → the noise-free tomogram, head 1 → the ideal reconstruction); the shipped
    network is the one-output blend :data:`TOMO_DENOISER_BLEND` of its heads
    (:func:`cryolab.pipelines.tomolearn.blend_heads`); the two-head network is kept beside it
    as ``.denoiser-heads.pt`` (not shipped) for :func:`tomo_blend_scan`. The segmenter maps a
    tomogram to the atlas of :data:`cryolab.pipelines.tomolearn.CLASSES`."""
    import numpy as np
    import torch

    from ..pipelines import tomolearn as T

    start = time.perf_counter()
    commit = _commit()
    torch.set_num_threads(threads)
    cfg = T.PROFILES["pretrained"]
    train = [T.simulate_sample(cfg, seed=100 + i, noise_free="denoiser" in models)
             for i in range(cfg.n_train)]
    print(f"{len(train)} training tomograms {train[0].tomogram.shape}; "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    jobs = {
        "denoiser": (TOMO_DENOISER_TASK,
                     [np.stack([s.noise_free, s.prior]) for s in train] if "denoiser" in models
                     else None, 1, cfg.epochs_denoise, seed + 1,
                     "tomogram → noise-free tomogram and ideal reconstruction, two heads"),
        "segmenter": ("chapter 05: label each voxel of a cryo-ET tomogram (10 Å voxels) as "
                      + ", ".join(T.CLASSES), [s.atlas for s in train], len(T.CLASSES),
                      cfg.epochs_segment, seed + 3, "tomogram → atlas"),
    }
    for name in models:
        task, targets, n_classes, epochs, model_seed, kind = jobs[name]
        t0 = time.perf_counter()
        work = out / f".{name}-training.pt"
        model, history = T.train_unet([s.tomogram for s in train], targets, cfg, epochs,
                                      n_classes=n_classes, checkpoint=work, seed=model_seed,
                                      progress=False)
        for record in history.records:
            print(name, json.dumps({k: round(v, 5) for k, v in record.items()}), flush=True)
        extra = {}
        if name == "denoiser":
            _save_slim(model, out / ".denoiser-heads.pt")
            model = T.blend_heads(model, TOMO_DENOISER_BLEND)
            extra = {"heads": list(TOMO_TRUTHS), "blend": list(TOMO_DENOISER_BLEND)}
        _save_slim(model, out / f"{name}.pt")
        card = {
            "name": name,
            "task": task,
            "model_class": f"{type(model).__module__}.{type(model).__name__}",
            "architecture": {
                "summary": "2.5D U-Net: 5 z-slices in as channels, the centre slice out",
                "hparams": dict(model.hparams),
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "input": "tomogram (z, y, x) at 10 Å voxels, dense matter dark, robust "
                         "z-score per tomogram clipped to ±4 (cryolab.apply SCALINGS)",
                "output": (TOMO_DENOISER_OUTPUT if n_classes == 1
                           else f"logits of {list(T.CLASSES)}"),
                **extra,
            },
            "training": {
                **_tomo_card_common(cfg, model_seed, kind),
                "epochs": epochs,
                "wall_seconds": round(time.perf_counter() - t0, 1),
                "hardware": _hardware(),
                "cryolab_version": __version__,
                "commit": commit,
                "log": history.records,
            },
        }
        (out / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
        work.unlink(missing_ok=True)
        print(f"wrote {out / (name + '.pt')} ({(out / (name + '.pt')).stat().st_size / 1e6:.2f}"
              f" MB); {time.perf_counter() - start:.0f} s", flush=True)
    evaluate_tomo(out)
    print(f"evaluated; {time.perf_counter() - start:.0f} s", flush=True)


# ------------------------------------------------------------------ chapter 01: struc2mapGAN

S2M_NB = "01_struc2map_gan"
#: The card's CI sample: the smallest of the five pairs (3J6B chain 9 in its EMD-2566
#: cut-out), generated on its curated grid and scored like the chapter's maps.
S2M_CI_MAP = "EMD-2566"
S2M_CI_TOLERANCE = 0.01  # PCC / correlation: BLAS differences in the last bits of a voxel


def s2m_ci_scores(generator, resolution: float | None = None) -> dict[str, float]:  # noqa: ANN001
    """The card's CI numbers: PCC and ChimeraX correlation of the generator's map of
    :data:`S2M_CI_MAP` against its curated target (``resolution`` for a conditioned one)."""
    from ..apply import generate_map
    from ..pipelines import struc2map as S

    held = S.MIRROR[S2M_CI_MAP]
    pair = S.load_pair(held.map, held.model)
    made = generate_map(generator, S.mirror_structure(held.model), on_grid=pair.target,
                        mask_radius=3.0, resolution=resolution)
    scores = S.evaluate_map(made.data, pair.target.data)
    return {k: round(float(scores[k]), 5) for k in ("pcc", "cc_chimerax")}


def _generation_seconds(generator, threads: int,  # noqa: ANN001 - torch module
                        resolution: float | None = None) -> dict:
    """Seconds to generate a map from a structure as ``cryolab simulate-map --method gan``
    does — molmap, one pass of the network over the whole map
    (:func:`cryolab.apply.generate_map` with ``whole=True``), the 3 Å mask — on ``threads``
    CPU threads, for 5ME2 and for the largest structure of the five pairs (6GYN, the HCN4
    channel); ``resolution`` (Å) for a conditioned generator. Records the load average."""
    import torch

    from ..apply import generate_map
    from ..data import fetch
    from ..io import read_structure

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    out = {}
    try:
        for label, name in (("5ME2", "structures/ccpem/5me2.pdb.gz"),
                            ("6GYN", "structures/mainmastseg/6gyn.pdb.gz")):
            structure = read_structure(fetch(name))
            start = time.perf_counter()
            made = generate_map(generator, structure, mask_radius=3.0, resolution=resolution,
                                whole=True)
            out[label] = {"seconds": round(time.perf_counter() - start, 1),
                          "grid": list(made.shape)}
    finally:
        torch.set_num_threads(before)
    return out | {"threads": threads, "method": "whole map, one pass (generate_map whole=True)",
                  "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
                  "paper": "13.8–53.6 s per map (GPU)"}


def time_s2m_cards(out: Path, threads: int = 1) -> None:
    """Re-time generation with the shipped generators in ``out`` (``gan``, ``gan_conditioned``
    at 3.2 Å) and write it into their cards; the rest of each card is kept."""
    from ..train import load_model

    for name, resolution in (("gan", None), ("gan_conditioned", 3.2)):
        card_path = out / f"{name}.json"
        card = json.loads(card_path.read_text())
        module, _, cls = card["model_class"].rpartition(".")
        generator = load_model(out / f"{name}.pt", getattr(importlib.import_module(module), cls),
                               name=card["checkpoint_name"])
        card["generation_seconds"] = _generation_seconds(generator, threads, resolution)
        card_path.write_text(json.dumps(card, indent=1) + "\n")
        print(f"{name}: {card['generation_seconds']}", flush=True)


def _s2m_figures(lomo, maps, profile: str) -> None:  # noqa: ANN001
    """Learning curves of every fold and a central slice of every held-out map (GAN, best
    simulator, experimental) into ``results/01_struc2map_gan/<profile>/``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..pipelines import struc2map as S
    from ..viz import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.4), constrained_layout=True)
    for fold in lomo.folds:
        ax.plot(fold.history["reconstruction"], label=f"without {fold.test}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("SmoothL1(G(x), y)")
    ax.set_yscale("log")
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, S2M_NB, profile, "lomo_learning_curves")
    plt.close(fig)
    pairs = S.mirror_pairs([f.test for f in lomo.folds])
    fig, axes = plt.subplots(len(lomo.folds), 3, figsize=(7, 2.3 * len(lomo.folds)),
                             constrained_layout=True, squeeze=False)
    for row, fold in zip(axes, lomo.folds, strict=True):
        pair = pairs[fold.test]
        best = max(S.density.METHODS, key=lambda m: fold.scores[m]["pcc"])
        sim = S.density.simulate(S.mirror_structure(S.MIRROR[fold.test].model),
                                 fold.resolution, best, on_grid=pair.target)
        k = int(np.argmax(pair.mask.sum(axis=(1, 2))))
        for a, data, title in zip(row, (maps[fold.test].data, sim.data, pair.target.data),
                                  ("GAN", f"{best} {fold.resolution} Å", fold.test),
                                  strict=True):
            a.imshow(data[k], cmap="gray")
            a.set_title(title, fontsize=9)
            a.axis("off")
    save_figure(fig, S2M_NB, profile, "lomo_slices")
    plt.close(fig)


def _s2m_book_model(model: str) -> dict | None:
    """The chapter's latest book run, if any: ``model``'s scores on the held-out maps of its
    leave-one-map-out folds (a generator trained there in minutes; maps from the paper's
    tiles, and generated whole), to stand beside the shipped recipe's; None without a book
    run."""
    path = repo_root(Path(__file__)) / "results" / S2M_NB / "book" / "metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    from ..pipelines.struc2map import FoldResult

    folds = [FoldResult(**f) for f in m.get("lomo", {}).get("folds", [])
             if model in f["scores"]]
    return {"model": model, "written": m.get("written"),
            "scores": {f.test: f.scores[model] for f in folds},
            "whole_map": {f.test: f.whole_map(model) for f in folds},
            "training_seconds": {f.test: f.training_seconds[model] for f in folds}}


def _s2m_evaluation(lomo_record: dict | None, epochs: int, model: str = "GAN") -> dict:
    """A struc2mapGAN card's evaluation: the leave-one-map-out record, or why there is none,
    with the chapter's book-run generator ``model`` on its held-out maps."""
    book = {"book_model": _s2m_book_model(model)}
    if not lomo_record:
        return {"protocol": "no held-out evaluation of this model: the chapter's book profile "
                            "compares conditioned and unconditioned generators on held-out "
                            "folds (book_model)", **book}
    return {"protocol": f"leave one map out: the same recipe with {epochs} epochs, trained "
                        "on four maps and scored on the fifth; the shipped model saw all five",
            **lomo_record, **book}


def refresh_s2m_evaluation(card_path: Path, profile: str = "pretrained") -> None:
    """Put the committed leave-one-map-out run (``results/01_struc2map_gan/<profile>/``) and
    the chapter's latest book run into an existing struc2mapGAN card (when the folds and the
    shipped model trained apart). The folds hold both generators, so the conditioned card
    reads them too; an older run without conditioned folds leaves it without a held-out
    evaluation."""
    from ..pipelines import struc2map as S

    card = json.loads(card_path.read_text())
    model = "conditioned GAN" if card["training"]["condition"] else "GAN"
    path = repo_root(Path(__file__)) / "results" / S2M_NB / profile / "metrics.json"
    record = json.loads(path.read_text())["lomo"]
    if not all(model in f["scores"] for f in record["folds"]):
        record = None
    card["evaluation"] = _s2m_evaluation(record, S.PROFILES[profile].lomo_epochs, model)
    card_path.write_text(json.dumps(card, indent=1) + "\n")


def _s2m_save_lomo(result, maps, profile: str, commit: str, seconds: float) -> dict:  # noqa: ANN001
    """Write the leave-one-map-out record (``metrics.json``) and its figures; returns it."""
    from ..results import save_metrics

    record = result.as_metrics()
    save_metrics(S2M_NB, profile, {"lomo": record, "commit": commit, "hardware": _hardware(),
                                   "wall_seconds": seconds})
    _s2m_figures(result, maps, profile)
    print(f"leave-one-map-out: GAN beats every simulator on PCC and ChimeraX correlation on "
          f"{result.wins} of {len(result.folds)} folds", flush=True)
    return record


def s2m_fold(out: Path, test: str, seed: int = 0, threads: int = 1,
             profile: str = "pretrained") -> None:
    """One leave-one-map-out fold on its own (folds can run as parallel processes): writes
    ``out/.struc2map-training/fold_<test>.json`` (the FoldResult, with its wall time) and
    ``.npy`` (the generated map); :func:`s2m_merge` assembles them."""
    from dataclasses import asdict

    import numpy as np
    import torch

    from ..pipelines import struc2map as S

    start = time.perf_counter()
    torch.set_num_threads(threads)
    cfg = replace(S.PROFILES[profile], seed=seed)
    work = out / ".struc2map-training"
    work.mkdir(parents=True, exist_ok=True)
    fold, _, made = S.run_fold(cfg, S.mirror_pairs(), test, folder=work, conditioned=True)
    np.save(work / f"fold_{test}.npy", made.data)
    record = {"fold": asdict(fold), "commit": _commit(), "seconds": time.perf_counter() - start}
    (work / f"fold_{test}.json").write_text(json.dumps(record) + "\n")
    print(f"fold {test}: GAN PCC {fold.scores['GAN']['pcc']:.3f}, ChimeraX "
          f"{fold.scores['GAN']['cc_chimerax']:.3f}; {record['seconds']:.0f} s", flush=True)


def s2m_merge(out: Path, profile: str = "pretrained") -> None:
    """Assemble the folds :func:`s2m_fold` wrote into the leave-one-map-out record and
    figures, and put it into the shipped generator's card."""
    import numpy as np

    from ..pipelines import struc2map as S

    work = out / ".struc2map-training"
    records = [json.loads((work / f"fold_{k}.json").read_text())
               for k in S.PROFILES[profile].lomo_folds]
    result = S.LeaveOneMapOut([S.FoldResult(**r["fold"]) for r in records])
    pairs = S.mirror_pairs()
    maps = {f.test: pairs[f.test].target.with_data(np.load(work / f"fold_{f.test}.npy"))
            for f in result.folds}
    commits = sorted({r["commit"] for r in records})
    _s2m_save_lomo(result, maps, profile, ", ".join(commits),
                   float(sum(r["seconds"] for r in records)))
    for name in ("gan", "gan_conditioned"):
        if (out / f"{name}.json").is_file():
            refresh_s2m_evaluation(out / f"{name}.json", profile)


def train_struc2map(out: Path, seed: int = 0, threads: int = 1, lomo: bool = True,
                    conditioned: bool = True, profile: str = "pretrained",
                    timing: bool = True) -> dict:
    """Chapter 01's ``pretrained`` run: the leave-one-map-out folds (results written to
    ``results/01_struc2map_gan/<profile>/metrics.json``), then the generator trained on all
    five pairs, ``out/gan.pt`` + card, then the resolution-conditioned one,
    ``out/gan_conditioned.pt`` + card. Returns the GAN's card."""
    import torch

    from ..pipelines import struc2map as S
    start = time.perf_counter()
    commit = _commit()
    torch.set_num_threads(threads)
    cfg = replace(S.PROFILES[profile], seed=seed)
    work = out / ".struc2map-training"
    work.mkdir(parents=True, exist_ok=True)
    lomo_record = None
    if lomo:
        result, maps = S.leave_one_map_out(cfg, folder=work, conditioned=True,
                                           log=lambda m: print(m, flush=True))
        lomo_record = _s2m_save_lomo(result, maps, profile, commit,
                                     time.perf_counter() - start)
    pairs = S.mirror_pairs()
    names = [n for k in pairs for n in (S.MIRROR[k].map, S.MIRROR[k].model)]
    pool = S.PatchPool(list(pairs.values()), cfg.patch, cfg.pool_size, seed=cfg.seed,
                       resolutions=[S.MIRROR[k].resolution for k in pairs])
    cards = {}
    runs = [("gan", None, cfg.epochs)]
    if conditioned and cfg.conditioned_epochs:
        runs.append(("gan_conditioned", cfg.condition, cfg.conditioned_epochs))
    for name, condition, epochs in runs:
        begun = time.perf_counter()
        trainer, history = S.train_gan(cfg, pool, checkpoint=work / f"{name}.pt",
                                       condition=condition, epochs=epochs, progress=False)
        for record in history.records:
            print(json.dumps({k: round(v, 5) for k, v in record.items()}), flush=True)
        generator = trainer.models["generator"].eval()
        train_seconds = time.perf_counter() - begun
        _save_slim(generator, out / f"{name}.pt", key="generator")
        ci_resolution = S.MIRROR[S2M_CI_MAP].resolution if condition else None
        card = {
            "name": name,
            "task": "chapter 01: an experimental-looking cryo-EM map (1 Å voxels, [0, 1]) from "
                    "a 2 Å molmap of an atomic model (struc2mapGAN)"
                    + (", at a requested resolution (beyond the paper)" if condition else ""),
            "model_class": f"{type(generator).__module__}.{type(generator).__name__}",
            "checkpoint_name": "generator",
            "architecture": {
                "summary": "3D U-Net++ with residual blocks (struc2mapGAN's generator), "
                           "trained against a 3D convolutional discriminator",
                "hparams": dict(generator.hparams),
                "parameters": int(sum(p.numel() for p in generator.parameters())),
                "input": "molmap at 2 Å on 1 Å voxels scaled to [0, 1]"
                         + ("; second channel: that input blurred to the requested resolution"
                            if condition else ""),
                "output": "map in [0, 1] on the same grid: one pass over the whole map when it "
                          "fits (cryolab.apply.whole_map_fits), else 32³ tiles, 20³ cores kept",
            },
            "training": {
                "profile": profile,
                "settings": {k: v for k, v in cfg.config().items()
                             if k not in ("train", "test", "lomo_folds")},
                "epochs": epochs,
                "condition": list(condition) if condition else None,
                "seed": seed,
                "names": names,
                "maps": list(pairs),
                "wall_seconds": round(train_seconds, 1),
                "hardware": _hardware(),
                "cryolab_version": __version__,
                "commit": commit,
                "log": history.records,
            },
            "evaluation": _s2m_evaluation(lomo_record, cfg.lomo_epochs,
                                          "conditioned GAN" if condition else "GAN"),
            "generation_seconds": None if not timing else _generation_seconds(
                generator, threads, S.MIRROR["EMD-3488"].resolution if condition else None),
            "ci_check": {"map": S2M_CI_MAP, "resolution": ci_resolution,
                         "note": "a training map: this checks that the shipped file still "
                                 "makes the same map, not how well it generalises",
                         **s2m_ci_scores(generator, ci_resolution),
                         "tolerance": S2M_CI_TOLERANCE},
        }
        (out / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
        cards[name] = card
        print(f"wrote {out / (name + '.pt')} "
              f"({(out / (name + '.pt')).stat().st_size / 1e6:.2f} MB) and its card; "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    return cards["gan"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cryolab.weights.train",
                                description="Reproduce a shipped model from scratch.")
    p.add_argument("chapter", choices=("afm", "tomo", "superres", "vae", "struc2map"),
                   help="which model (afm: PoseVox, chapter 06; tomo: the tomogram denoiser "
                        "and segmenter, chapter 05; superres: the U-Net, chapter 02; vae: "
                        "the VAE, chapter 03; struc2map: the struc2mapGAN generators of "
                        "chapter 01, after their leave-one-map-out evaluation)")
    p.add_argument("--minutes", type=float, default=15.0,
                   help="superres, vae: train for this long unless --epochs is given (15)")
    p.add_argument("--out", type=Path, default=_folder(), help="folder (default: the package)")
    p.add_argument("--seed", type=int, default=0, help="training seed (0)")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    p.add_argument("--cache", type=Path, default=None,
                   help="rendered dataset cache (.npz; the book run's can be reused)")
    p.add_argument("--evaluate-only", action="store_true",
                   help="superres, vae, tomo: do not train; recompute the cards' evaluation; "
                        "struc2map: re-time generation with the shipped generators")
    p.add_argument("--book-only", action="store_true",
                   help="do not train: put the chapter's latest book run (afm; struc2map: "
                        "with the committed leave-one-map-out run) into the card")
    p.add_argument("--fold", metavar="EMD", default=None,
                   help="struc2map: run only this leave-one-map-out fold (e.g. EMD-3488), so "
                        "that folds can run as parallel processes")
    p.add_argument("--merge", action="store_true",
                   help="struc2map: assemble the folds --fold wrote into the results and card")
    p.add_argument("--no-lomo", action="store_true",
                   help="struc2map: train only the shipped generators (the folds ran apart)")
    p.add_argument("--spread", nargs="+", type=Path, default=None, metavar="CARD",
                   help="afm: do not train; add the run-to-run spread over these cards (the "
                        "same recipe trained with other --seed values) to the shipped card")
    p.add_argument("--only", nargs="+", choices=("denoiser", "segmenter"), default=None,
                   help="tomo: train only these models (both by default)")
    p.add_argument("--blend-scan", action="store_true",
                   help="tomo: do not train; score blends of the two-head denoiser against "
                        "Topaz on a validation tomogram, fold the shipped blend, re-score")
    p.add_argument("--no-timing", action="store_true",
                   help="struc2map: do not time generation for the card")
    args = p.parse_args(argv)
    if args.chapter == "tomo":
        if args.blend_scan:
            print(json.dumps(tomo_blend_scan(args.out), indent=1))
            fold_denoiser(args.out)
            evaluate_tomo(args.out)
        elif args.evaluate_only:
            evaluate_tomo(args.out)
        else:
            train_tomo(args.out, args.seed, args.threads, tuple(args.only or
                                                                ("denoiser", "segmenter")))
    elif args.chapter in ("superres", "vae") and args.evaluate_only:
        evaluate_card(args.chapter, args.out)
    elif args.chapter in ("superres", "vae"):
        train = train_superres if args.chapter == "superres" else train_vae
        train(args.out, args.seed, args.minutes, args.epochs, args.threads)
    elif args.chapter == "struc2map" and args.fold:
        s2m_fold(args.out, args.fold, args.seed, args.threads)
    elif args.chapter == "struc2map" and args.merge:
        s2m_merge(args.out)
    elif args.chapter == "struc2map" and args.evaluate_only:
        time_s2m_cards(args.out, args.threads)
    elif args.chapter == "struc2map" and args.book_only:
        for name in ("gan", "gan_conditioned"):
            refresh_s2m_evaluation(args.out / f"{name}.json")
    elif args.chapter == "struc2map":
        train_struc2map(args.out, args.seed, args.threads, lomo=not args.no_lomo,
                        timing=not args.no_timing)
    elif args.spread:
        afm_seed_spread(args.out / "posevox.json", args.spread)
    elif args.book_only:
        refresh_book_model(args.out / "posevox.json")
    else:
        train_afm(args.out, args.seed, args.epochs, args.threads, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
