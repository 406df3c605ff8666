"""``cryolab simulate-tomo CONFIG.yml --out DIR``: a simulated tilt series, tomogram, prior
and atlas from a YAML specimen definition (see :mod:`cryolab.tomo.simulate`)."""

from __future__ import annotations

import argparse

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
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..tomo.simulate import simulate_to_directory

    out = simulate_to_directory(args.config, args.out, seed=args.seed,
                                progress=not args.quiet, overwrite=args.overwrite)
    print(out)
    return 0
