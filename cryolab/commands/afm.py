"""``cryolab afm STRUCTURE --views N --out DIR``: virtual AFM images of a structure."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np

from .. import afm
from ..errors import ConfigError
from ..fanout import add_set_options
from ..outputs import add_overwrite_option, atomic_folder, check_folder
from ..validation import grid_memory, option

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``afm`` to the command line."""
    p = sub.add_parser(
        "afm", help="simulate AFM height images of a structure in random orientations",
        description="Writes view_NNN.png, views.npy (heights in Å, shape V×n×n) and "
        "orientations.csv (quaternions x,y,z,w and ZYZ Euler angles in degrees, taking the "
        "structure's principal-axes frame to each view) into DIR.",
    )
    p.add_argument("structure", nargs="+",
                   help="PDB/mmCIF file, or a catalogue name such as "
                   "structures/bm5/1AK4_target.pdb.gz; several make a set DIR/NNNN_NAME/, one "
                   "folder per structure, each with its own seed derived from (--seed, index)")
    p.add_argument("--views", type=option("views", integer=True, ge=1), default=25,
                   help="number of views (default 25)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--image-size", type=option("pixels", integer=True, ge=4, le=4096),
                   default=64, help="pixels per side (default 64)")
    p.add_argument("--pixel-size", type=option("Å", gt=0, le=1000), default=None,
                   help="Å per pixel (default: the structure fills the image)")
    p.add_argument("--tip-radius", type=option("Å", ge=0, le=10000), default=10.0,
                   help="apex radius in Å (10)")
    p.add_argument("--tip-angle", type=option("°", ge=0, lt=90), default=10.0,
                   help="cone half-angle in ° (10)")
    p.add_argument("--noise", type=option("Å", ge=0), default=0.0,
                   help="height noise sd in Å (0)")
    p.add_argument("--mode", choices=("height", "rendered"), default="height",
                   help="height images (AFM) or shaded surfaces (the paper's renderer)")
    p.add_argument("--seed", type=option(integer=True, ge=0), default=0,
                   help="random seed (0)")
    add_overwrite_option(p)
    add_set_options(p, "view sets")
    p.add_argument("--quiet", action="store_true", help="no progress bar (sets)")
    p.set_defaults(func=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    """One structure: its views in DIR; several (or --workers/--scheduler): a set."""
    if len(args.structure) == 1 and args.workers is None and args.scheduler is None:
        return _run(argparse.Namespace(**{**vars(args), "structure": args.structure[0]}))
    from ..fanout import structure_set

    return structure_set(_views_item, args, "AFM view sets", seed=args.seed)


def _views_item(settings: dict, item, folder: Path) -> Path:  # noqa: ANN001 - fanout.Item
    """The views of structure ``item.index`` of the list, with the item's seed."""
    out = folder / item.name
    structure = settings["structure"][item.index]
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):  # the set reports
        _run(argparse.Namespace(**{**settings, "structure": structure, "out": out,
                                   "seed": item.seed, "overwrite": False}))
    return out


def _structure_path(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    from ..data import fetch, registry

    if name in registry():
        return fetch(name)
    raise ConfigError(f"{name}: no such structure file (give a PDB/mmCIF path or a catalogue "
                      "name from `cryolab data --kind structure`)")


def _run(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    from ..io import atoms_of, read_structure

    path = _structure_path(args.structure)
    check_folder(args.out, inputs=(path,), overwrite=args.overwrite)
    grid_memory((args.views, args.image_size, args.image_size), "--views × --image-size²",
                bytes_per_voxel=8, advice="ask for fewer views or smaller images")
    atoms = atoms_of(read_structure(path), hydrogens=False)
    xyz, radii = afm.principal_frame(atoms.xyz), afm.vdw_radii(atoms.element)
    views = afm.afm_views(
        xyz, radii, args.views, np.random.default_rng(args.seed), image_size=args.image_size,
        pixel_size=args.pixel_size, tip=afm.Tip(args.tip_radius, args.tip_angle),
        noise=args.noise, mode=args.mode,
    )
    with atomic_folder(args.out, "cryolab afm") as tmp:
        np.save(tmp / "views.npy", views.images)
        lo, hi = float(views.images.min()), float(views.images.max())
        for k, image in enumerate(tqdm(views.images, desc="writing PNGs", leave=False)):
            plt.imsave(tmp / f"view_{k:03d}.png", image[::-1], cmap="afmhot", vmin=lo, vmax=hi)
        euler = views.rotations.as_euler("ZYZ", degrees=True)
        rows = ["view,qx,qy,qz,qw,alpha_deg,beta_deg,gamma_deg,substrate_z_A,pixel_size_A"]
        rows += [
            ",".join([str(k), *(f"{q:.8f}" for q in quat), *(f"{e:.4f}" for e in eul),
                      f"{floor:.3f}", f"{views.pixel_size:.4f}"])
            for k, (quat, eul, floor) in enumerate(
                zip(views.quaternions, euler, views.floors, strict=True))
        ]
        (tmp / "orientations.csv").write_text("\n".join(rows) + "\n")
    print(f"{args.views} views ({args.image_size}² px at {views.pixel_size:.2f} Å) -> {args.out}")
    return 0
