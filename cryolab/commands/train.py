"""``cryolab train CHAPTER --profile PROFILE [--out DIR]``: train a chapter's networks outside
its notebook, with the functions the notebook calls.

Run it as it is for one process (one GPU, or the CPU), or under ``torchrun`` for data-parallel
training on several GPUs or machines (see :mod:`cryolab.train`)::

    cryolab train 05 --profile book
    torchrun --nproc_per_node=8 -m cryolab.cli train 01 --profile paper

Checkpoints go where the notebook looks for them (``results/<notebook>/<profile>/``) unless
``--out`` says otherwise, so a notebook run afterwards finds its networks trained and goes on
from them; an interrupted run resumes from them exactly.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError
from ..results import PROFILES
from ..validation import device, option

__all__ = ["register", "CHAPTERS", "RECIPES", "chapter_key"]

#: chapter number → (notebook name, what is trained)
CHAPTERS = {
    "01": ("01_struc2map_gan", "struc2mapGAN generator + discriminator (and its ablations)"),
    "02": ("02_superres_unet3d", "the 3D U-Net for map super-resolution"),
    "03": ("03_sharpening_vae", "the sharpening VAEs (with and without skips)"),
    "05": ("05_tomogram_learning", "the tomogram denoiser, Noise2Noise and segmenter U-Nets"),
    "06": ("06_afm_pix2vox", "Pix2Vox++ from AFM views"),
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the command line."""
    listing = "\n".join(f"  {k}  {nb}: {what}" for k, (nb, what) in CHAPTERS.items())
    p = sub.add_parser(
        "train", help="train a chapter's networks (one process, or many under torchrun)",
        description="Train a chapter's networks with the code its notebook calls, writing "
        "resumable checkpoints. Under `torchrun --nproc_per_node=N -m cryolab.cli train ...` "
        "it runs DistributedDataParallel (NCCL on GPUs, gloo on CPUs) over the same global "
        "batches. Chapters:\n" + listing,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("chapter", help="chapter number (01, 02, 03, 05, 06) or notebook name")
    p.add_argument("--profile", default="book", choices=PROFILES,
                   help="smoke, book or paper (default book)")
    p.add_argument("--out", type=Path, default=None,
                   help="checkpoint folder (default results/<notebook>/<profile>/)")
    p.add_argument("--epochs", type=option(integer=True, ge=1), default=None,
                   help="train this many epochs instead of the profile's")
    p.add_argument("--device", type=device, default=None,
                   help="torch device for chapters 01-03 (default, and always for 05 and 06: "
                        "this process's GPU when present, else the CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def chapter_key(name: str) -> str:
    """``"1"``, ``"01"`` or ``"01_struc2map_gan"`` → ``"01"``."""
    for key, (notebook, _) in CHAPTERS.items():
        if name in (key, key.lstrip("0"), notebook):
            return key
    raise ConfigError(f"chapter {name!r}: choose one of {', '.join(CHAPTERS)} (chapters 00, "
                      "04 and 99 train no network)")


def _run(args: argparse.Namespace) -> int:
    from torch import distributed as dist

    from ..results import results_dir
    from ..train import init_distributed, is_main_process

    key = chapter_key(args.chapter)
    notebook = CHAPTERS[key][0]
    out = args.out if args.out is not None else results_dir(notebook, args.profile)
    init_distributed()
    try:
        trained = RECIPES[key](args.profile, Path(out), args)
        if is_main_process():
            for checkpoint, history in trained.items():
                loss = history["loss"]
                print(f"{checkpoint}: {len(loss)} epochs, loss {loss[0]:.4g} -> {loss[-1]:.4g}")
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _profile(profiles: dict, name: str):  # noqa: ANN202 - a chapter's profile dataclass
    from ..results import pick_profile

    return pick_profile(profiles, name)


def _threads(count: int | None) -> None:
    import torch

    if count:
        torch.set_num_threads(count)


@contextlib.contextmanager
def _main_process_first() -> Iterator[None]:
    """Run the body on rank 0 first, then on the other processes of a data-parallel run."""
    from torch import distributed as dist

    from ..train import is_main_process

    parallel = dist.is_available() and dist.is_initialized()
    if parallel and not is_main_process():
        dist.barrier()
    yield
    if parallel and is_main_process():
        dist.barrier()


# ------------------------------------------------------- one recipe per chapter, as its notebook


def _struc2map(profile: str, out: Path, args: argparse.Namespace) -> dict:
    import torch

    from ..pipelines import struc2map as s2m

    cfg = _profile(s2m.PROFILES, profile)
    _threads(cfg.torch_threads)
    pairs = s2m.training_pairs(cfg)
    pool = s2m.PatchPool(pairs, cfg.patch, cfg.pool_size, seed=cfg.seed)
    variants = {"gan": (0.01, 1.0)}
    if cfg.ablations:
        variants.update({"no_smoothl1": (0.01, 0.0), "no_adversarial": (0.0, 1.0)})
    trained = {}
    for tag, (adversarial, reconstruction) in variants.items():
        # train_gan draws the initial weights from torch's global generator: seed it, so
        # that every process of a run (and every run) starts from the same weights
        torch.manual_seed(cfg.seed)
        _, trained[out / f"{tag}.pt"] = s2m.train_gan(
            cfg, pool, checkpoint=out / f"{tag}.pt", adversarial_weight=adversarial,
            reconstruction_weight=reconstruction, device=args.device, progress=not args.quiet,
            epochs=args.epochs)
    if cfg.conditioned_epochs:
        torch.manual_seed(cfg.seed)
        conditioned = s2m.PatchPool(pairs, cfg.patch, cfg.pool_size, seed=cfg.seed,
                                    resolutions=s2m.training_resolutions(cfg))
        _, trained[out / "conditioned.pt"] = s2m.train_gan(
            cfg, conditioned, checkpoint=out / "conditioned.pt", condition=cfg.condition,
            epochs=args.epochs or cfg.conditioned_epochs, device=args.device,
            progress=not args.quiet)
    return trained


def _superres(profile: str, out: Path, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from .. import superres as sr

    cfg = _profile(sr.PROFILES, profile)
    torch.set_num_threads(2)  # as the notebook
    entries = sr.load_entries(max_resolution=2.0)
    train, _ = sr.split_by_entry(entries, cfg.n_test, cfg.n_train)
    pairs = sr.make_pairs(train, cfg.noise, np.random.default_rng(cfg.seed))
    _, history = sr.train_unet3d(pairs, cfg, out / "unet3d.pt", device=args.device,
                                 progress=not args.quiet, epochs=args.epochs)
    return {out / "unet3d.pt": history}


def _sharpening(profile: str, out: Path, args: argparse.Namespace) -> dict:
    from ..pipelines import sharpening as sp

    cfg = _profile(sp.PROFILES, profile)
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    data = sp.load_data(cfg)
    trained = {}
    for name, skips in (("vae.pt", False), ("vae_skips.pt", True)):
        _, trained[out / name] = sp.train_vae(data.train, data.val, cfg, skips, out / name,
                                              device=args.device, progress=not args.quiet)
    return trained


def _tomolearn(profile: str, out: Path, args: argparse.Namespace) -> dict:
    from ..pipelines import tomolearn as tl

    cfg = _profile(tl.PROFILES, profile)
    _threads(cfg.threads)
    train = [tl.simulate_sample(cfg, seed=100 + i, halves=True) for i in range(cfg.n_train)]
    even, odd = [s.even for s in train], [s.odd for s in train]
    tomograms = [s.tomogram for s in train]
    runs = {  # checkpoint: (inputs, targets, epochs, classes, seed), as the notebook
        "denoiser.pt": (tomograms, [s.prior for s in train], cfg.epochs_denoise, 1, 1),
        "noise2noise.pt": (even + odd, odd + even, cfg.epochs_n2n, 1, 2),
        "segmenter.pt": (tomograms, [s.atlas for s in train], cfg.epochs_segment,
                         len(tl.CLASSES), 3),
    }
    trained = {}
    for name, (inputs, targets, epochs, classes, seed) in runs.items():
        _, trained[out / name] = tl.train_unet(
            inputs, targets, cfg, args.epochs or epochs, n_classes=classes,
            checkpoint=out / name, seed=seed, progress=not args.quiet)
    return trained


def _afm(profile: str, out: Path, args: argparse.Namespace) -> dict:
    from ..pipelines import afm_views as av

    cfg = _profile(av.PROFILES, profile)
    _threads(cfg.torch_threads)
    out.mkdir(parents=True, exist_ok=True)
    with _main_process_first():  # rank 0 renders and caches; the others read its cache
        ds = av.build_dataset(cfg, out / "afm_dataset.npz", progress=not args.quiet)
    _, history = av.train_pix2vox(ds, cfg, out / "pix2vox.pt", epochs=args.epochs,
                                  progress=not args.quiet)
    return {out / "pix2vox.pt": history}


RECIPES: dict[str, Callable[[str, Path, argparse.Namespace], dict]] = {
    "01": _struc2map, "02": _superres, "03": _sharpening, "05": _tomolearn, "06": _afm,
}
