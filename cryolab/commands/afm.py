"""``cryolab afm STRUCTURE --views N --out DIR``: virtual AFM images of a structure; and
``cryolab afm-reconstruct VIEWS --out occupancy.mrc``: its 3D shape back from such views."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np

from .. import afm
from ..errors import ConfigError
from ..fanout import add_set_options
from ..outputs import add_overwrite_option, atomic_folder, check_file, check_folder
from ..validation import grid_memory, option

__all__ = ["register"]

GRID = 32  # side of the occupancy grid of grid.json (the reconstruction's)


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
    _register_reconstruct(sub)


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
        centre, voxel = afm.grid_geometry(xyz, radii, GRID)
        (tmp / "grid.json").write_text(json.dumps(
            {"centre_A": centre.tolist(), "voxel_size_A": voxel, "size": GRID}) + "\n")
    print(f"{args.views} views ({args.image_size}² px at {views.pixel_size:.2f} Å) -> {args.out}")
    return 0


# ------------------------------------------------------------------------ afm-reconstruct


def _register_reconstruct(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "afm-reconstruct", help="3D occupancy of a molecule from AFM height images with "
        "known orientations (the shipped PoseVox)",
        description="Reads VIEWS (a folder written by `cryolab afm`, or a views.npy of "
        "heights in Å, V×n×n, with --orientations) and writes the predicted occupancy "
        "probabilities (32³) as an MRC map in the orientations' frame (centred on the "
        "centroid), with its voxel size in Å. The grid box comes from --box, else from the "
        "views folder's grid.json, else from the views' visual hull (an estimate).",
    )
    p.add_argument("views", type=Path, help="folder with views.npy and orientations.csv, or "
                   "a .npy of heights in Å")
    p.add_argument("--orientations", type=Path, default=None,
                   help="orientations.csv as `cryolab afm` writes it (default: VIEWS folder's)")
    p.add_argument("--box", default=None, metavar="X,Y,Z,VOXEL",
                   help="grid centre x,y,z and voxel size, Å (default: grid.json or estimate)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a PoseVox checkpoint (default: the shipped weights, posevox)")
    p.add_argument("--out", type=Path, required=True, help="output map (.mrc, .map[.gz])")
    add_overwrite_option(p)
    p.set_defaults(func=_reconstruct)


def _read_views(args: argparse.Namespace) -> tuple[afm.AFMViews, Path]:
    """The views and the folder of their orientations file."""
    import pandas as pd

    folder = args.views if args.views.is_dir() else args.views.parent
    npy = args.views / "views.npy" if args.views.is_dir() else args.views
    csv = args.orientations or folder / "orientations.csv"
    for path, what in ((npy, "views"), (csv, "--orientations")):
        if not path.is_file():
            raise ConfigError(f"{path}: no such file ({what})")
    try:
        heights = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{npy}: not a readable .npy of heights ({exc})") from None
    if heights.ndim == 2:
        heights = heights[None]
    if heights.ndim != 3 or heights.shape[1] != heights.shape[2] or not np.isfinite(
            heights).all():
        raise ConfigError(f"{npy}: need finite square height images V×n×n in Å, got shape "
                          f"{heights.shape}")
    try:
        table = pd.read_csv(csv)
        quats = table[["qx", "qy", "qz", "qw"]].to_numpy(dtype=np.float64)
        floors = table["substrate_z_A"].to_numpy(dtype=np.float64)
        pixel = table["pixel_size_A"].to_numpy(dtype=np.float64)
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{csv}: not an orientations table with columns qx,qy,qz,qw,"
                          f"substrate_z_A,pixel_size_A ({exc})") from None
    if len(table) != len(heights):
        raise ConfigError(f"{csv}: {len(table)} orientations for {len(heights)} views in {npy}")
    if not (np.all(pixel > 0) and np.allclose(pixel, pixel[0])
            and np.allclose(np.linalg.norm(quats, axis=1), 1, atol=1e-3)):
        raise ConfigError(f"{csv}: quaternions must be unit and the pixel size one positive "
                          "value")
    views = afm.AFMViews(heights.astype(np.float32), heights.astype(np.float32), quats, floors,
                         float(pixel[0]))
    return views, csv.parent


def _grid_box(args: argparse.Namespace, views: afm.AFMViews, folder: Path
              ) -> tuple[np.ndarray, float, str]:
    from .. import carving

    if args.box is not None:
        try:
            *centre, voxel = (float(x) for x in args.box.split(","))
        except ValueError:
            centre, voxel = [], 0.0
        if len(centre) != 3 or not voxel > 0:
            raise ConfigError(f"--box {args.box!r}: give X,Y,Z,VOXEL in Å with VOXEL > 0")
        return np.array(centre), voxel, "--box"
    grid = folder / "grid.json"
    if grid.is_file():
        try:
            spec = json.loads(grid.read_text())
            return np.array(spec["centre_A"], dtype=float), float(spec["voxel_size_A"]), str(
                grid)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{grid}: not a grid description ({exc})") from None
    centre, voxel = carving.hull_box(views, GRID)
    return centre, voxel, "the views' visual hull (estimate)"


def _reconstruct(args: argparse.Namespace) -> int:
    from .. import weights
    from ..io import Volume, write_map
    from ..nn.posevox import PoseVox, reconstruct
    from ..train import load_model

    check_file(args.out, inputs=(args.views, args.orientations, args.checkpoint),
               overwrite=args.overwrite)
    views, folder = _read_views(args)
    centre, voxel, box_from = _grid_box(args, views, folder)
    if args.checkpoint is None:
        model, source = weights.load("posevox"), "shipped weights 'posevox'"
    else:
        model, source = load_model(args.checkpoint, PoseVox), str(args.checkpoint)
    prob = reconstruct(model, views, centre, voxel)
    size = prob.shape[0]
    origin = np.asarray(centre)[::-1] - (size - 1) / 2 * voxel  # (z, y, x) of voxel [0,0,0]
    write_map(args.out, Volume(prob, voxel, origin),
              label=f"cryolab afm-reconstruct ({len(views.heights)} views)")
    print(f"{len(views.heights)} views -> {args.out} ({size}³ at {voxel:.2f} Å; box from "
          f"{box_from}; {source})")
    return 0
