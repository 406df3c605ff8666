"""``cryolab to-ome-zarr SOURCE --out NAME.zarr``: a map or a simulated tomogram (with its
atlas and per-class masks as labels) as chunked, multiscale OME-Zarr (see
:mod:`cryolab.omezarr`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..outputs import add_overwrite_option
from ..validation import option

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``to-ome-zarr`` to the command line."""
    p = sub.add_parser(
        "to-ome-zarr", help="write a map or a simulated tomogram as OME-Zarr (multiscale)",
        description="Write an MRC map, or a `cryolab simulate-tomo` folder (tomogram.mrc, with "
        "atlas.mrc and masks/*.mrc as labels), as OME-NGFF 0.4 Zarr: resolution levels halving "
        "the grid, chunks of at most --chunk³ voxels, voxel size and origin in Å in the "
        "coordinate transformations, as the CZ cryoET Data Portal serves tomograms.",
    )
    p.add_argument("source", help="an .mrc map or a simulate-tomo output folder")
    p.add_argument("--out", type=Path, required=True, help="the .zarr folder to write")
    p.add_argument("--levels", type=option(integer=True, ge=1, le=16), default=3,
                   help="resolution levels (default 3)")
    p.add_argument("--chunk", type=option(integer=True, ge=8, le=1024), default=64,
                   help="chunk edge in voxels (default 64)")
    add_overwrite_option(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..omezarr import convert, read_omezarr, read_omezarr_labels

    out = convert(args.source, args.out, levels=args.levels, chunk=args.chunk,
                  overwrite=args.overwrite)
    volume, labels = read_omezarr(out), read_omezarr_labels(out)
    print(f"{out}: {volume.shape[::-1]} voxels (x, y, z) of {volume.voxel_size[::-1]} Å"
          + (f", labels {', '.join(labels)}" if labels else ""))
    return 0
