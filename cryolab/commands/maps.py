"""``cryolab simulate-map``: a density map from a structure (classical simulators or the GAN)."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np

from .. import density
from ..errors import ConfigError
from ..fanout import add_set_options
from ..io import Volume, read_map, read_structure, write_map
from ..outputs import add_overwrite_option, check_file
from ..validation import device, option

__all__ = ["register"]

METHODS = (*density.METHODS, "gan")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``simulate-map`` to the command line."""
    p = sub.add_parser(
        "simulate-map",
        help="simulate a cryo-EM map from a PDB/mmCIF structure",
        description="Simulate a density map from a structure with molmap (ChimeraX), pdb2mrc "
        "(EMAN2), blur (TEMPy), electron form factors (gemmi) or a trained struc2mapGAN.",
    )
    p.add_argument("structure", nargs="+",
                   help="PDB or mmCIF file (may be gzipped); several make a set: --out is "
                        "then a folder of NNNN_NAME.mrc maps, made on Dask workers")
    p.add_argument("--resolution", type=option("Å", ge=0.5, le=500), default=None,
                   help="resolution in Å (required except for --method gan, whose input is "
                        "molmap at 2 Å; a resolution-conditioned gan checkpoint needs it)")
    p.add_argument("--method", choices=METHODS, default="molmap",
                   help=f"one of {', '.join(METHODS)} (default molmap)")
    p.add_argument("--on-grid", metavar="MAP", help="sample on this map's grid")
    p.add_argument("--voxel-size", type=option("Å", gt=0, le=100),
                   help="voxel size in Å of the automatic box (default R/3; 1 Å for gan)")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="trained struc2mapGAN (method gan; default: the shipped generator, or "
                        "the shipped resolution-conditioned one when --resolution is given)")
    p.add_argument("--device", type=device,
                   help="torch device for gan (default: cuda if present)")
    p.add_argument("--inference", choices=("auto", "whole", "tiles"), default="auto",
                   help="gan: run the generator over the whole map at once, or over 32³ tiles "
                        "(default auto: the whole map when it needs at most 2 GiB)")
    p.add_argument("--out", required=True, help="output map (.mrc, .map, optionally .gz); "
                   "for several structures, the set's folder")
    add_overwrite_option(p)
    add_set_options(p, "maps")
    p.add_argument("--quiet", action="store_true", help="no progress bar (sets)")
    p.set_defaults(func=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    """One structure: one map at --out; several (or --workers/--scheduler): a set."""
    if len(args.structure) == 1 and args.workers is None and args.scheduler is None:
        return _run(argparse.Namespace(**{**vars(args), "structure": args.structure[0]}))
    from ..fanout import structure_set

    return structure_set(_map_item, args, "maps", suffix=".mrc")


def _map_item(settings: dict, item, folder: Path) -> Path:  # noqa: ANN001 - fanout.Item
    """The map of structure ``item.index`` of the list."""
    out = folder / item.name
    with contextlib.redirect_stdout(io.StringIO()):  # the set reports, not each item
        _run(argparse.Namespace(**{**settings, "structure": settings["structure"][item.index],
                                   "out": str(out), "overwrite": False}))
    return out


def _check_overlap(structure, grid: Volume, name: str) -> None:  # noqa: ANN001
    """:class:`ConfigError` unless some atom of ``structure`` lies inside ``grid``'s box."""
    index = grid.index_of(density.atoms_from(structure).xyz)
    inside = np.all((index >= -0.5) & (index <= np.array(grid.shape) - 0.5), axis=1)
    if not inside.any():
        low, high = grid.position_of([[0, 0, 0], np.array(grid.shape) - 1])
        raise ConfigError(f"--on-grid {name}: no atom of the structure lies in the map's box "
                          f"(x, y, z from {low.round(1).tolist()} to {high.round(1).tolist()} "
                          "Å); fit the model into the map first")


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not out.name.lower().removesuffix(".gz").endswith((".mrc", ".map", ".ccp4")):
        raise ConfigError(f"--out {out}: use a .mrc, .map or .ccp4 name (optionally .gz)")
    check_file(out, inputs=(args.structure, args.on_grid, args.checkpoint),
               overwrite=args.overwrite)
    if args.method != "gan" and args.resolution is None:
        raise ConfigError(f"--resolution is required for --method {args.method}")
    structure = read_structure(args.structure)
    grid = read_map(args.on_grid) if args.on_grid else None
    if grid is not None:
        _check_overlap(structure, grid, args.on_grid)
    if args.method == "gan":
        volume = _gan(args, structure, grid)
    else:
        options = {"on_grid": grid}
        if grid is None and args.voxel_size:
            options["voxel_size"] = args.voxel_size
        volume = density.simulate(structure, args.resolution, args.method, **options)
    write_map(out, volume, label=f"cryolab simulate-map {args.method}")
    print(f"{out}: {volume.shape[::-1]} voxels (x, y, z) of {volume.voxel_size[::-1]} Å")
    return 0


def _shipped_generator(resolution: float | None) -> str:
    """The shipped struc2mapGAN to use without ``--checkpoint``: the resolution-conditioned
    generator when a resolution is asked for (and shipped), else the plain one."""
    from .. import weights

    shipped = weights.available()
    if resolution is not None and "gan_conditioned" in shipped:
        return "gan_conditioned"
    if "gan" not in shipped:
        raise ConfigError("--method gan: no shipped generator in this installation; give "
                          "--checkpoint CKPT (a trained struc2mapGAN)")
    return "gan"


def _gan(args: argparse.Namespace, structure, grid):  # noqa: ANN001, ANN202
    from .. import weights
    from ..apply import generate_map
    from ..nn.unetpp import UNetPlusPlus3D
    from ..train import load_model

    if args.checkpoint:
        checkpoint = args.checkpoint
    else:
        name = _shipped_generator(args.resolution)
        checkpoint = weights.path(name)
        trained = weights.card(name)["training"]
        print(f"using the shipped generator {name!r} ({checkpoint.name}: trained on "
              f"{', '.join(trained['maps'])}; --checkpoint overrides)")
    generator = load_model(checkpoint, UNetPlusPlus3D, name="generator", device=args.device)
    if grid is None and args.voxel_size:  # the generator works at 1 Å; resample afterwards
        grid = density.box_around(density.atoms_from(structure).xyz, args.voxel_size, 6.0)
    if generator.hparams.get("in_channels", 1) == 2 and args.resolution is None:
        raise ConfigError("this checkpoint is resolution-conditioned: give --resolution")
    whole = {"auto": None, "whole": True, "tiles": False}[args.inference]
    return generate_map(generator, structure, on_grid=grid, device=args.device, progress=True,
                        resolution=args.resolution, whole=whole)
