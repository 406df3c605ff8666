"""``cryolab simulate-tomo CONFIG.yml --out DIR``: a simulated tilt series, tomogram, prior
and atlas from a YAML specimen definition (see :mod:`cryolab.tomo.simulate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..fanout import add_set_options
from ..outputs import add_overwrite_option
from ..validation import option

__all__ = ["register"]

EXAMPLE = """\
seed: 0
specimen:
  size: [2000, 2000, 500]      # x, y, z (ice thickness) in Å
  pixel_size_a: 10
  layers:
    - particles: [ribosome, proteasome_20s]
      density: 0.15
      iterations: 400
  vesicles: {count: 1, radius: [150, 200], proteins: [5gjv_mb]}
  gold: 3
  carbon: true
microscope:
  scheme: dose-symmetric
  min_angle: -60
  max_angle: 60
  step: 2
  defocus_um: 5.0              # µm underfocus
  dose: 100                    # e-/Å² over the series
reconstruction:
  filter: ramp                 # or sirt
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``simulate-tomo`` to the command line."""
    p = sub.add_parser(
        "simulate-tomo",
        help="simulate a cryo-ET tilt series, tomogram, prior and atlas (cryo-TomoSim style)",
        description="Simulate a specimen, image it through a tilt series, reconstruct it, and "
        "write tilt_series.mrc/.tlt, tomogram.mrc, prior.mrc, specimen.mrc, atlas.mrc, "
        "masks/*.mrc and parameters.json into --out (atomically). Example configuration:\n\n"
        + EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="YAML configuration (seed, specimen, microscope, "
                   "reconstruction)")
    p.add_argument("--out", required=True,
                   help="output folder (new, or an earlier run's with --overwrite)")
    p.add_argument("--seed", type=option(integer=True, ge=0), default=None,
                   help="override the configuration's seed")
    add_overwrite_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--n", type=option(integer=True, ge=1), default=None,
                   help="make a set of N tomograms DIR/tomo_0000 ... with seeds derived from "
                        "(seed, index); a re-run makes only the missing ones")
    p.add_argument("--ome-zarr", action="store_true",
                   help="also write tomogram.zarr: the tomogram as multiscale OME-Zarr with the "
                        "atlas and per-class masks as labels (see `cryolab to-ome-zarr`)")
    add_set_options(p, "tomograms")
    p.set_defaults(func=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    if args.n is None:
        status = _run(args)
        if args.ome_zarr:
            from ..omezarr import convert

            convert(args.out, Path(args.out) / "tomogram.zarr")
        return status
    from functools import partial

    from ..fanout import make_set
    from ..tomo.simulate import load_config

    cfg = load_config(args.config)
    seed = cfg.seed if args.seed is None else args.seed
    names = [f"tomo_{i:0{max(4, len(str(args.n - 1)))}d}" for i in range(args.n)]
    report = make_set(partial(_simulate_item, cfg, args.ome_zarr), names, args.out, seed=seed,
                      workers=args.workers, scheduler=args.scheduler, overwrite=args.overwrite,
                      progress=not args.quiet, desc="tomograms")
    print(f"{args.out}: {len(report.made)} tomograms made, {len(report.skipped)} already there")
    return 0


def _simulate_item(cfg, ome_zarr: bool, item, folder: Path) -> Path:  # noqa: ANN001
    """One tomogram of a set (``cfg``: SimulationConfig, ``item``: fanout.Item), simulated
    with the item's own seed; with its OME-Zarr copy when ``ome_zarr``."""
    from ..tomo.simulate import simulate_to_directory

    out = simulate_to_directory(cfg, folder / item.name, seed=item.seed)
    if ome_zarr:
        from ..omezarr import convert

        convert(out, out / "tomogram.zarr")
    return out


def _run(args: argparse.Namespace) -> int:
    from ..tomo.simulate import simulate_to_directory

    out = simulate_to_directory(args.config, args.out, seed=args.seed,
                                progress=not args.quiet, overwrite=args.overwrite)
    print(out)
    return 0
