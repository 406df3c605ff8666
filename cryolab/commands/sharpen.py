"""``cryolab sharpen``: improve a cryo-EM map with a chosen method, keeping its grid.

Methods live in :data:`METHODS`, a dict from name to ``fn(volume, args) -> volume``; a chapter
adds its own method by adding an entry there (and its options in :func:`register`). The
output map always has the input's shape, voxel size and origin.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..apply import apply_model
from ..errors import ConfigError
from ..io import Volume, read_map, write_map
from ..outputs import add_overwrite_option, check_file
from ..validation import device, grid_memory, option

__all__ = ["METHODS", "register", "sharpen_unet3d", "sharpen_bfactor", "sharpen_vae"]

SharpenMethod = Callable[[Volume, argparse.Namespace], Volume]


def sharpen_unet3d(volume: Volume, args: argparse.Namespace) -> Volume:
    """Super-resolve with a trained :class:`~cryolab.nn.unet3d.UNet3D` checkpoint.

    The map is resampled to the network's 1 Å grid, divided by its 99.9th percentile,
    predicted tile by tile, scaled back to the input's units and resampled onto the input grid
    (:func:`cryolab.apply.apply_model`).
    """
    from ..nn.unet3d import UNet3D
    from ..tiles import predict_volume
    from ..train import load_model

    if not args.checkpoint:
        raise ConfigError("--method unet3d needs --checkpoint CKPT (a trained UNet3D)")
    model = load_model(args.checkpoint, UNet3D, device=args.device)
    step = model.divisor
    patch = int(np.ceil(args.patch / step) * step)
    stride = args.stride or patch // 2

    def predict(x: np.ndarray) -> np.ndarray:
        return predict_volume(model, x, patch=patch, stride=stride, weight="gaussian",
                              batch_size=4, progress=True)

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
    from ..nn.vae import VAE3D
    from ..tiles import predict_volume
    from ..train import load_model

    if not args.checkpoint:
        raise ConfigError("--method vae needs --checkpoint CKPT (a trained VAE3D)")
    model = load_model(args.checkpoint, VAE3D, device=args.device)
    patch = int(np.ceil(args.patch / model.divisor) * model.divisor)

    def predict(x: np.ndarray) -> np.ndarray:
        return predict_volume(model, x, patch=patch, stride=args.stride or patch // 2,
                              weight="gaussian", batch_size=4, progress=True)

    return apply_model(volume, predict, "zscore", voxel_size=1.0)


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
    volume = read_map(args.map)
    _check_resolution(args, volume)
    if args.method in NETWORK_METHODS:  # these work on the map resampled to 1 Å voxels
        grid_memory(np.ceil(np.array(volume.shape) * volume.voxel_size), f"{args.map} on "
                    f"the 1 Å grid of --method {args.method}", bytes_per_voxel=4 * 4,
                    advice="crop the map first")
    result = METHODS[args.method](volume, args)
    write_map(args.out, result, label=f"cryolab sharpen --method {args.method}")
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
    p.add_argument("--checkpoint", type=Path, help="trained network (unet3d, vae)")
    p.add_argument("--patch", type=option("voxels", integer=True, ge=8, le=512), default=32,
                   help="tile edge in voxels (unet3d, vae)")
    p.add_argument("--resolution", type=option("Å", gt=0, le=500),
                   help="map resolution in Å (bfactor)")
    p.add_argument("--fit-low", type=option("Å", gt=0, le=1000), default=10.0,
                   help="low-resolution end of the Guinier fit in Å (bfactor; default 10)")
    p.add_argument("--stride", type=option("voxels", integer=True, ge=1), default=None,
                   help="tile step in voxels (default patch/2)")
    p.add_argument("--device", type=device, default=None,
                   help="torch device (default: cuda if present)")
    add_overwrite_option(p)
    p.set_defaults(func=_run)
