"""``cryolab emringer MODEL MAP``: the EMRinger score and a per-residue table (csv)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..emringer import emringer
from ..io import read_map, read_structure
from ..outputs import add_overwrite_option, atomic_file, check_file

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    out = args.csv or Path(Path(args.model).name.split(".")[0] + "_emringer.csv")
    check_file(out, option="--csv", inputs=(args.model, args.map), overwrite=args.overwrite)
    structure = read_structure(args.model)
    volume = read_map(args.map)
    result = emringer(volume, structure)
    with atomic_file(out) as tmp:
        result.table.to_csv(tmp, index=False, float_format="%.4f")
    print(f"EMRinger score:    {result.score:.3f}")
    print(f"optimal threshold: {result.optimal_threshold:.4g}")
    print(f"rotamer ratio:     {result.rotamer_ratio:.3f}")
    print(f"max z-score:       {result.zscore:.3f}")
    print(f"residues scanned:  {result.n_residues} ({len(result.skipped)} skipped)")
    print(f"per-residue table: {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cryolab emringer``."""
    p = subparsers.add_parser(
        "emringer", help="EMRinger score of a model in a map",
        description="Score side-chain density of MODEL in MAP (Barad et al. 2015).",
    )
    p.add_argument("model", type=Path, help="PDB/mmCIF model")
    p.add_argument("map", type=Path, help="MRC/CCP4 map in the model's frame")
    p.add_argument("--csv", type=Path, default=None,
                   help="per-residue table (default: <model>_emringer.csv)")
    add_overwrite_option(p)
    p.set_defaults(func=_run)
