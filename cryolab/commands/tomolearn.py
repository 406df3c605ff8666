"""``cryolab denoise`` and ``cryolab segment``: apply a trained tomogram U-Net to an MRC file.

Both read a tomogram, normalise it as the training data were
(:func:`~cryolab.normalise.robust_zscore`: median 0, robust standard deviation 1, clipped to
±4), run the network tile by tile (:func:`cryolab.nn.unet.denoise_volume` /
:func:`~cryolab.nn.unet.segment_volume`, so a tomogram of any size runs in bounded network
memory) and write the result on the input's grid (same shape, voxel size and origin), all
through :func:`cryolab.apply.apply_model`:

- ``denoise`` writes the denoised map in the prior's standardised units (mean 0, std 1);
- ``segment`` writes one integer class label per voxel (0 = background).

Without ``--checkpoint`` they use the shipped models (:mod:`cryolab.weights`: ``denoiser``
and ``segmenter``, trained by ``python -m cryolab.weights.train tomo``) and say so.

The tomogram should have the pixel size the network was trained at (10 Å for the shipped
models and the chapter's book profile), with dense matter dark; nothing is resampled here, so
resample it first if it differs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..io import read_map, write_map
from ..outputs import add_overwrite_option, check_file
from ..validation import device, option

__all__ = ["register"]


def _load(args: argparse.Namespace, segmentation: bool):
    """The network and where it came from (the checkpoint, or the shipped model)."""
    from .. import weights
    from ..nn.unet import UNet
    from ..train import load_model

    if args.checkpoint is None:
        name = "segmenter" if segmentation else "denoiser"
        return weights.load(name, device=args.device), f"shipped weights {name!r}"
    model = load_model(args.checkpoint, UNet, device=args.device)
    n_out = model.hparams["out_channels"]
    if segmentation and n_out < 2:
        raise CheckpointError(f"{args.checkpoint}: a denoising network (one output channel); "
                              "use `cryolab denoise`, or pass a segmentation checkpoint")
    if not segmentation and n_out != 1:
        raise CheckpointError(f"{args.checkpoint}: a segmentation network ({n_out} classes); "
                              "use `cryolab segment`, or pass a denoising checkpoint")
    return model, str(args.checkpoint)


def _run(args: argparse.Namespace, segmentation: bool) -> int:
    from ..apply import apply_model
    from ..nn.unet import denoise_volume, segment_volume

    check_file(args.out, inputs=(args.tomogram, args.checkpoint), overwrite=args.overwrite)
    volume = read_map(args.tomogram)
    model, source = _load(args, segmentation)
    network = segment_volume if segmentation else denoise_volume

    def predict(x: np.ndarray) -> np.ndarray:
        return network(model, x, patch=args.patch, stride=args.stride, batch_size=args.batch,
                       progress=True)

    result = apply_model(volume, predict, "robust_zscore", restore_units=False).data
    what = "segment" if segmentation else "denoise"
    write_map(args.out, volume.with_data(result.astype(np.float32)),
              label=f"cryolab {what} {Path(source).name if args.checkpoint else source}")
    extra = (f"; labels {np.unique(result).astype(int).tolist()}" if segmentation else "")
    print(f"wrote {args.out} (grid {volume.shape}, voxel "
          f"{volume.voxel_size[::-1].round(4).tolist()} Å{extra}; {source})")
    return 0


def _common(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("tomogram", type=Path, help="input tomogram (MRC/CCP4, .gz ok)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help=f"trained {what} UNet checkpoint (default: the shipped weights, "
                        f"{'segmenter' if what == 'segmentation' else 'denoiser'})")
    p.add_argument("--out", type=Path, required=True, help="output map (.mrc, .map[.gz])")
    p.add_argument("--patch", type=option("voxels", integer=True, ge=8, le=512), default=64,
                   help="tile edge in voxels (default 64)")
    p.add_argument("--stride", type=option("voxels", integer=True, ge=1), default=None,
                   help="tile step in voxels (default patch/2, fitted to the network)")
    p.add_argument("--batch", type=option("tiles", integer=True, ge=1), default=2,
                   help="tiles per network call")
    p.add_argument("--device", type=device, default=None,
                   help="torch device (default: cuda if present)")
    add_overwrite_option(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cryolab denoise`` and ``cryolab segment``."""
    p = subparsers.add_parser(
        "denoise", help="denoise a tomogram with a trained U-Net (voxel size kept)",
        description="Denoise TOMOGRAM tile by tile with a trained UNet; writes OUT on the "
                    "same grid, in standardised units.",
    )
    _common(p, "denoising")
    p.set_defaults(func=lambda a: _run(a, segmentation=False))
    p = subparsers.add_parser(
        "segment", help="label a tomogram's voxels with a trained U-Net (voxel size kept)",
        description="Segment TOMOGRAM tile by tile with a trained UNet; writes integer class "
                    "labels (0 = background) on the same grid.",
    )
    _common(p, "segmentation")
    p.set_defaults(func=lambda a: _run(a, segmentation=True))
