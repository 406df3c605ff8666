"""Reproduce a shipped model from scratch: ``python -m cryolab.weights.train afm|struc2map``.

Trains the chapter's model with its ``pretrained`` profile, deterministically for a seed,
prints the training log, and writes the slim checkpoint ``<name>.pt`` (weights and sizes
only: plain tensors, dicts, lists, strings and numbers, so that ``torch.load(...,
weights_only=True)`` reads it) and its model card ``<name>.json`` into ``--out`` (default
this package folder).
"""

from __future__ import annotations

import argparse
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

__all__ = ["train_afm", "train_struc2map", "s2m_fold", "s2m_merge", "refresh_book_model",
           "refresh_s2m_evaluation", "main"]

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
    state = {
        "cryolab_version": __version__,
        "architecture": {"model": {"class": type(model).__name__,
                                   "hparams": dict(model.hparams)}},
        "models": {"model": {k: v.detach().cpu().clone()
                             for k, v in model.state_dict().items()}},
    }
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / f"{name}.pt")

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


# ------------------------------------------------------------------ chapter 01: struc2mapGAN

S2M_NB = "01_struc2map_gan"
#: The card's CI sample: the smallest of the five pairs (3J6B chain 9 in its EMD-2566
#: cut-out), generated on its curated grid and scored like the chapter's maps.
S2M_CI_MAP = "EMD-2566"
S2M_CI_TOLERANCE = 0.01  # PCC / correlation: BLAS differences in the last bits of a voxel


def _slim(generator) -> dict:  # noqa: ANN001 - a torch module
    return {
        "cryolab_version": __version__,
        "architecture": {"generator": {"class": type(generator).__name__,
                                       "hparams": dict(generator.hparams)}},
        "models": {"generator": {k: v.detach().cpu().clone()
                                 for k, v in generator.state_dict().items()}},
    }


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


def _generation_seconds(generator, threads: int) -> dict[str, float]:  # noqa: ANN001
    """Seconds to generate a whole map (molmap, tiles, network) on ``threads`` CPU threads for
    5ME2 and for the largest structure of the five (6GYN, the HCN4 tetramer)."""
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
            made = generate_map(generator, structure, mask_radius=3.0)
            out[label] = {"seconds": round(time.perf_counter() - start, 1),
                          "grid": list(made.shape)}
    finally:
        torch.set_num_threads(before)
    return out


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


def _s2m_evaluation(lomo_record: dict | None, epochs: int) -> dict:
    """A struc2mapGAN card's evaluation: the leave-one-map-out record, or why there is none."""
    if not lomo_record:
        return {"protocol": "no held-out evaluation of this model: the chapter's book profile "
                            "compares conditioned and unconditioned generators on held-out "
                            "folds"}
    return {"protocol": f"leave one map out: the same recipe with {epochs} epochs, trained "
                        "on four maps and scored on the fifth; the shipped model saw all five",
            **lomo_record}


def refresh_s2m_evaluation(card_path: Path, profile: str = "pretrained") -> None:
    """Put the committed leave-one-map-out run (``results/01_struc2map_gan/<profile>/``) into
    an existing struc2mapGAN card (when the folds and the shipped model trained apart)."""
    from ..pipelines import struc2map as S

    path = repo_root(Path(__file__)) / "results" / S2M_NB / profile / "metrics.json"
    card = json.loads(card_path.read_text())
    card["evaluation"] = _s2m_evaluation(json.loads(path.read_text())["lomo"],
                                         S.PROFILES[profile].lomo_epochs)
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
    fold, _, made = S.run_fold(cfg, S.mirror_pairs(), test, folder=work)
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
    if (out / "gan.json").is_file():
        refresh_s2m_evaluation(out / "gan.json", profile)


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
        result, maps = S.leave_one_map_out(cfg, folder=work, log=lambda m: print(m, flush=True))
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
        torch.save(_slim(generator), out / f"{name}.pt")
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
                "output": "map in [0, 1] on the same grid; 32³ tiles, 20³ cores kept",
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
            "evaluation": _s2m_evaluation(None if condition else lomo_record,
                                          cfg.lomo_epochs),
            "generation_seconds": None if condition or not timing else (
                _generation_seconds(generator, 2)
                | {"threads": 2, "paper": "13.8–53.6 s per map (GPU)"}),
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
    p.add_argument("chapter", choices=("afm", "struc2map"),
                   help="which model (afm: PoseVox, chapter 06; struc2map: the struc2mapGAN "
                        "generators of chapter 01, after their leave-one-map-out evaluation)")
    p.add_argument("--out", type=Path, default=_folder(), help="folder (default: the package)")
    p.add_argument("--seed", type=int, default=0, help="training seed (0)")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    p.add_argument("--cache", type=Path, default=None,
                   help="rendered dataset cache (.npz; the book run's can be reused)")
    p.add_argument("--book-only", action="store_true",
                   help="do not train: put the chapter's latest book run (afm) or the "
                        "committed leave-one-map-out run (struc2map) into the card")
    p.add_argument("--fold", metavar="EMD", default=None,
                   help="struc2map: run only this leave-one-map-out fold (e.g. EMD-3488), so "
                        "that folds can run as parallel processes")
    p.add_argument("--merge", action="store_true",
                   help="struc2map: assemble the folds --fold wrote into the results and card")
    p.add_argument("--no-lomo", action="store_true",
                   help="struc2map: train only the shipped generators (the folds ran apart)")
    p.add_argument("--no-timing", action="store_true",
                   help="struc2map: do not time generation for the card")
    args = p.parse_args(argv)
    if args.chapter == "struc2map" and args.fold:
        s2m_fold(args.out, args.fold, args.seed, args.threads)
    elif args.chapter == "struc2map" and args.merge:
        s2m_merge(args.out)
    elif args.chapter == "struc2map" and args.book_only:
        refresh_s2m_evaluation(args.out / "gan.json")
    elif args.chapter == "struc2map":
        train_struc2map(args.out, args.seed, args.threads, lomo=not args.no_lomo,
                        timing=not args.no_timing)
    elif args.book_only:
        refresh_book_model(args.out / "posevox.json")
    else:
        train_afm(args.out, args.seed, args.epochs, args.threads, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
