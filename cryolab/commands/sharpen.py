"""``cryolab sharpen``: improve a cryo-EM map with a chosen method, keeping its grid.

Methods live in :data:`METHODS`, a dict from name to ``fn(volume, args) -> volume``; a chapter
adds its own method by adding an entry there (and its options in :func:`register`). The
output map always has the input's shape, voxel size and origin.

The network methods use the shipped models (:mod:`cryolab.weights`: ``superres`` for
``unet3d``, ``vae`` for ``vae``) when ``--checkpoint`` is absent, and say so. Doing no harm
comes first: the input's resolution (``--resolution``, or estimated without half maps by
:func:`cryolab.superres.estimate_resolution`: the map–model FSC with ``--model``, else the
amplitude fall-off) must lie in the shipped model's training range, or the command declines
with one line. ``--method vae`` also writes the per-voxel uncertainty (the spread of decodes,
times the card's calibration scale) as ``OUT`` with ``_uncertainty`` before the suffix.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..apply import apply_model
from ..errors import ConfigError
from ..io import Volume, read_map, write_map
from ..outputs import add_overwrite_option, check_file
from ..validation import device, grid_memory, option

__all__ = ["METHODS", "register", "sharpen_unet3d", "sharpen_bfactor", "sharpen_vae",
           "SHIPPED", "uncertainty_path", "RANGE_MARGIN"]

#: The shipped model each network method uses without ``--checkpoint``.
SHIPPED = {"unet3d": "superres", "vae": "vae"}
#: How far (Å) an input's resolution may lie outside a shipped model's training range.
RANGE_MARGIN = 0.5

SharpenMethod = Callable[[Volume, argparse.Namespace], Volume]


def sharpen_unet3d(volume: Volume, args: argparse.Namespace) -> Volume:
    """Super-resolve with a trained :class:`~cryolab.nn.unet3d.UNet3D` checkpoint.

    The map is resampled to the network's 1 Å grid, divided by its 99.9th percentile,
    predicted tile by tile, scaled back to the input's units and resampled onto the input grid
    (:func:`cryolab.apply.apply_model`). The shipped model (no ``--checkpoint``) runs by the
    path of its card and chapter 02 (:func:`cryolab.superres.real_map_predictor`: the mean
    over the 8 axis flips, the map's own content up to 10 Å put back, then the output
    sharpened to its training targets' Guinier B without a low-pass).
    """
    from ..nn.unet3d import UNet3D
    from ..tiles import predict_volume

    model = _network(args, UNet3D)
    step = model.divisor
    patch = int(np.ceil(args.patch / step) * step)
    stride = args.stride or patch // 2

    if args.checkpoint:
        def predict(x: np.ndarray) -> np.ndarray:
            return predict_volume(model, x, patch=patch, stride=stride, weight="gaussian",
                                  batch_size=4, progress=True)
    else:
        from ..superres import KEPT_RESOLUTION, PROFILES, TARGET_BFACTOR, real_map_predictor

        shipped = real_map_predictor(model, replace(PROFILES["pretrained"], patch=patch,
                                                    stride=stride), args.device)
        print(f"shipped path: mean over 8 flips, the map's own content kept up to "
              f"{KEPT_RESOLUTION:g} Å, sharpened to B = {TARGET_BFACTOR:g} Å² (no low-pass)")

        def predict(x: np.ndarray) -> np.ndarray:
            return shipped(Volume(x, 1.0, 0.0)).data

    return apply_model(volume, predict, "percentile", voxel_size=1.0)


def sharpen_bfactor(volume: Volume, args: argparse.Namespace) -> Volume:
    """``--method bfactor --resolution R``: Guinier fit from ``--fit-low`` (default 10 Å) to R,
    ``exp(B s²/4)`` and a low-pass at R (:func:`cryolab.sharpen.bfactor_sharpen`)."""
    from ..sharpen import bfactor_sharpen

    resolution = getattr(args, "resolution", None)
    if not resolution:
        raise ConfigError("--method bfactor needs --resolution Å (the map's resolution)")
    sharp, fit = bfactor_sharpen(volume, resolution, low=getattr(args, "fit_low", None) or 10.0)
    print(f"Guinier B = {fit.bfactor:.1f} Å² ({fit.low:g}–{fit.high:g} Å)")
    return sharp


def sharpen_vae(volume: Volume, args: argparse.Namespace) -> Volume:
    """``--method vae --checkpoint CKPT``: the map resampled to 1 Å, z-scored, decoded tile by
    tile from ``z = μ``, put back in the input's units and grid
    (:func:`cryolab.apply.apply_model`)."""
    from ..nn.vae import VAE3D, sample_volume

    model = _network(args, VAE3D)
    patch = int(np.ceil(args.patch / model.divisor) * model.divisor)
    scale, n = 1.0, 8
    if not args.checkpoint:
        from .. import weights

        scale = float(weights.card("vae")["uncertainty"]["scale"])
        n = int(weights.card("vae")["uncertainty"]["n_samples"])
    spread: dict[str, np.ndarray] = {}

    def predict(x: np.ndarray) -> np.ndarray:
        mean, std = sample_volume(model, x, n=n, patch=patch, stride=args.stride or patch // 2,
                                  seed=0)
        spread["std"] = std
        return mean

    sharp = apply_model(volume, predict, "zscore", voxel_size=1.0)
    # the spread in the input's units: z units times the 1 Å map's standard deviation
    std = apply_model(volume, lambda x: spread["std"], "zscore", voxel_size=1.0,
                      restore_units=False)
    args.uncertainty = std.with_data(np.clip(std.data, 0, None) * scale * _input_std(volume))
    how = "calibrated" if not args.checkpoint else "uncalibrated: no card for --checkpoint"
    print(f"uncertainty: spread of {n} decodes × {scale:.3g} ({how})")
    return sharp


def _input_std(volume: Volume) -> float:
    """The standard deviation of the map on the networks' 1 Å grid (the z-score's unit)."""
    from ..density import resample

    return float(resample(volume, 1.0, order=3, mode="nearest").data.std())


def _network(args: argparse.Namespace, model_class: type):  # noqa: ANN202 - a torch module
    """``--checkpoint`` rebuilt as ``model_class``, or the shipped model of ``--method``."""
    from ..train import load_model

    if args.checkpoint:
        return load_model(args.checkpoint, model_class, device=args.device)
    from .. import weights

    name = _shipped_name(args.method)
    print(f"using the shipped model {name!r} ({weights.path(name)}; no --checkpoint given)")
    return weights.load(name, device=args.device)


def _shipped_name(method: str) -> str:
    """The shipped model of a network method; :class:`ConfigError` when none is installed."""
    from .. import weights

    name = SHIPPED[method]
    if name not in weights.available():
        raise ConfigError(f"--method {method} needs --checkpoint CKPT (no shipped model "
                          f"{name!r} in this installation)")
    return name


def uncertainty_path(out: Path) -> Path:
    """Where ``--method vae`` writes the uncertainty map: ``OUT`` with ``_uncertainty``
    before its suffixes (``sharp.mrc`` → ``sharp_uncertainty.mrc``)."""
    suffixes = "".join(out.suffixes)
    stem = out.name[: len(out.name) - len(suffixes)] if suffixes else out.name
    return out.with_name(f"{stem}_uncertainty{suffixes}")


def _check_training_range(args: argparse.Namespace, volume: Volume) -> None:
    """Decline (:class:`ConfigError`, one line) a map whose resolution lies outside the shipped
    model's training range by more than :data:`RANGE_MARGIN` Å."""
    from .. import weights
    from ..superres import estimate_resolution

    low, high = weights.card(_shipped_name(args.method))["resolution_range"]
    if args.resolution is not None:
        resolution, how = float(args.resolution), "--resolution"
    elif args.model is not None:
        from ..density import ground_truth_map, resample
        from ..io import read_structure

        model_map = resample(ground_truth_map(read_structure(args.model), voxel=1.0),
                             like=volume, order=1)
        resolution = estimate_resolution(volume, model_map)
        how = f"map–model FSC 0.5 with {args.model}"
    else:
        resolution, how = estimate_resolution(volume), "estimated from the amplitude fall-off"
    print(f"input resolution {resolution:.2f} Å ({how}); the shipped model was trained on "
          f"{low:g}–{high:g} Å")
    if not low - RANGE_MARGIN <= resolution <= high + RANGE_MARGIN:
        raise ConfigError(
            f"{args.map}: resolution {resolution:.2f} Å ({how}) is outside the shipped "
            f"{args.method} model's training range {low:g}–{high:g} Å; declined so as not to "
            "make it worse (give --resolution if the estimate is wrong, or --checkpoint)")


#: Methods that run a network on the map resampled to 1 Å voxels.
NETWORK_METHODS = ("unet3d", "vae")

#: Sharpening methods by name: ``fn(volume, args) -> volume`` on the same grid.
METHODS: dict[str, SharpenMethod] = {
    "unet3d": sharpen_unet3d,
    "bfactor": sharpen_bfactor,
    "vae": sharpen_vae,
}


def _check_resolution(args: argparse.Namespace, volume: Volume) -> None:
    """:class:`ConfigError` for a ``--resolution`` beyond the map's Nyquist limit (2 voxels)
    or at or above ``--fit-low``."""
    if args.resolution is None:
        return
    nyquist = 2 * float(volume.voxel_size.max())
    if args.resolution < nyquist:
        raise ConfigError(f"--resolution {args.resolution:g} Å is beyond Nyquist for "
                          f"{args.map} ({nyquist:g} Å = 2 × its voxel size)")
    if args.fit_low <= args.resolution:
        raise ConfigError(f"--fit-low {args.fit_low:g} Å must be above --resolution "
                          f"{args.resolution:g} Å")


def _run(args: argparse.Namespace) -> int:
    if args.method not in METHODS:
        raise ConfigError(f"unknown --method {args.method!r}; choose one of {sorted(METHODS)}")
    check_file(args.out, inputs=(args.map, args.checkpoint), overwrite=args.overwrite)
    if args.method == "vae":
        check_file(uncertainty_path(args.out), inputs=(args.map, args.checkpoint),
                   overwrite=args.overwrite)
    volume = read_map(args.map)
    _check_resolution(args, volume)
    if args.method in NETWORK_METHODS and not args.checkpoint:
        _check_training_range(args, volume)
    if args.method in NETWORK_METHODS:  # these work on the map resampled to 1 Å voxels
        grid_memory(np.ceil(np.array(volume.shape) * volume.voxel_size), f"{args.map} on "
                    f"the 1 Å grid of --method {args.method}", bytes_per_voxel=4 * 4,
                    advice="crop the map first")
    result = METHODS[args.method](volume, args)
    write_map(args.out, result, label=f"cryolab sharpen --method {args.method}")
    if args.method == "vae":
        write_map(uncertainty_path(args.out), args.uncertainty,
                  label="cryolab sharpen --method vae: uncertainty (std)")
        print(f"wrote {uncertainty_path(args.out)} (per-voxel standard deviation)")
    print(f"wrote {args.out} ({args.method}; grid {volume.shape}, "
          f"voxel {volume.voxel_size[::-1].round(4).tolist()} Å)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cryolab sharpen``."""
    p = subparsers.add_parser(
        "sharpen", help="sharpen / super-resolve a map (voxel size and origin kept)",
        description="Sharpen or super-resolve MAP with a method; writes OUT on the same grid.",
    )
    p.add_argument("map", type=Path, help="input MRC/CCP4 map")
    p.add_argument("--method", default="unet3d", help=f"one of {sorted(METHODS)}")
    p.add_argument("--out", type=Path, required=True, help="output map (.mrc, .map[.gz])")
    p.add_argument("--checkpoint", type=Path,
                   help="trained network (unet3d, vae; default: the shipped model)")
    p.add_argument("--model", type=Path, default=None,
                   help="atomic model fitted to MAP (unet3d, vae): the resolution check then "
                        "uses the map–model FSC")
    p.add_argument("--patch", type=option("voxels", integer=True, ge=8, le=512), default=32,
                   help="tile edge in voxels (unet3d, vae)")
    p.add_argument("--resolution", type=option("Å", gt=0, le=500),
                   help="map resolution in Å (bfactor; unet3d, vae: skips the estimate)")
    p.add_argument("--fit-low", type=option("Å", gt=0, le=1000), default=10.0,
                   help="low-resolution end of the Guinier fit in Å (bfactor; default 10)")
    p.add_argument("--stride", type=option("voxels", integer=True, ge=1), default=None,
                   help="tile step in voxels (default patch/2)")
    p.add_argument("--device", type=device, default=None,
                   help="torch device (default: cuda if present)")
    add_overwrite_option(p)
    p.set_defaults(func=_run)
