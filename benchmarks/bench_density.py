"""Benchmark: cryolab's molmap against gemmi's DensityCalculatorE and TEMPy's StructureBlurrer.

Every implementation maps the same structures (copies of haemoglobin 5ME2, cut to 1k … 100k
atoms) at the same resolution onto grids of the same spacing (R/3), in one run; the table gives
seconds per map and the ratio to gemmi (< 1: we are faster). Setup is not timed: building the
structure, allocating gemmi's grid, writing TEMPy's input file, and flattening the gemmi
structure into cryolab's ``Atoms`` arrays — a Python loop over atoms, reported on its own in
the ``atoms_of s`` column (about 6 µs per atom).

TEMPy (PyPI ``biotempy``) pins old dependencies, so it usually lives in its own environment:
the benchmark imports it when it can, else runs it in ``--tempy-python`` (default
``$CRYOLAB_TEMPY_PYTHON`` or ``/tmp/tempyenv/bin/python``) on the same structure files, else
skips it with a message.

    python benchmarks/bench_density.py [--quick] [--resolution 4]

Writes ``results/benchmarks/density.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gemmi
import numpy as np

from cryolab import density
from cryolab.data import fetch
from cryolab.io import atoms_of, read_structure
from cryolab.results import repo_root

TEMPY_SNIPPET = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from TEMPy.protein.structure_blurrer import StructureBlurrer
from TEMPy.protein.structure_parser import PDBParser
path, resolution, repeats = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
prot = PDBParser.read_PDB_file("bench", path, hetatm=True, water=False)
blurrer = StructureBlurrer()
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    blurrer.gaussian_blur_real_space(prot, resolution, sigma_coeff=0.225)
    best = min(best, time.perf_counter() - start)
print(json.dumps(best))
"""


def build_structure(base: gemmi.Structure, n_atoms: int) -> gemmi.Structure:
    """Copies of ``base`` side by side (60 Å apart) until ``n_atoms``, then cut to that size."""
    st = gemmi.Structure()
    st.add_model(gemmi.Model(1))
    model = st[0]
    per_copy = base[0].count_atom_sites()
    copies = int(np.ceil(n_atoms / per_copy))
    side = int(np.ceil(copies ** (1 / 3)))
    count = 0
    for c in range(copies):
        shift = 60.0 * np.array(np.unravel_index(c, (side,) * 3), dtype=float)
        for chain in base[0]:
            new = chain.clone()
            new.name = f"{chain.name}{c}"[:4]
            for residue in new:
                for atom in residue:
                    atom.pos = gemmi.Position(*(np.array(atom.pos.tolist()) + shift))
            model.add_chain(new)
            count += new.count_atom_sites()
    # cut to exactly n_atoms
    excess = count - n_atoms
    for chain in reversed(list(model)):
        while excess > 0 and len(chain) > 0 and len(chain[len(chain) - 1]) <= excess:
            excess -= len(chain[len(chain) - 1])
            del chain[len(chain) - 1]
    st.setup_entities()
    return st


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_gemmi(st: gemmi.Structure, resolution: float, repeats: int) -> float:
    """gemmi DensityCalculatorE on a cell around the atoms, grid spacing R/3 (d_min = R)."""
    st = st.clone()
    xyz = atoms_of(st).xyz
    low, size = xyz.min(axis=0), np.ptp(xyz, axis=0)
    pad = 3 * resolution
    st[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(pad - low).tolist())))
    st.cell = gemmi.UnitCell(*(size + 2 * pad).tolist(), 90, 90, 90)
    st.spacegroup_hm = "P 1"
    dc = gemmi.DensityCalculatorE()
    dc.d_min = resolution
    dc.rate = 1.5
    dc.set_grid_cell_and_spacegroup(st)
    return best_of(lambda: dc.put_model_density_on_grid(st[0]), repeats)


def tempy_python(arg: str | None) -> str | None:
    candidates = [arg, os.environ.get("CRYOLAB_TEMPY_PYTHON"), "/tmp/tempyenv/bin/python"]
    for c in candidates:
        if c and Path(c).is_file():
            return c
    return None


def time_tempy(st: gemmi.Structure, resolution: float, repeats: int, python: str | None):
    """Seconds of TEMPy's gaussian_blur_real_space, or None (with a reason) when unavailable."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pdb"
        st.write_pdb(str(path))
        try:
            import TEMPy  # noqa: F401

            python = sys.executable
        except ImportError:
            if python is None:
                return None, "TEMPy (biotempy) is not importable and no --tempy-python was found"
        run = subprocess.run(
            [python, "-c", TEMPY_SNIPPET, str(path), str(resolution), str(repeats)],
            capture_output=True, text=True, timeout=1800,
        )
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"TEMPy failed in {python}: {last}"
        return float(run.stdout.strip().splitlines()[-1]), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (< 60 s)")
    parser.add_argument("--resolution", type=float, default=4.0, help="R in Å (default 4)")
    parser.add_argument("--tempy-python", help="python of an environment with biotempy")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    sizes = [1000, 10000] if args.quick else [1000, 10000, 30000, 100000]
    tempy_sizes = {1000} if args.quick else {1000, 10000}
    repeats = 1 if args.quick else args.repeats
    base = read_structure(fetch("structures/ccpem/5me2.pdb.gz"))
    python = tempy_python(args.tempy_python)
    rows, notes = [], set()
    print(f"{'atoms':>8} {'atoms_of s':>10} {'direct s':>9} {'fft s':>9} {'gemmi s':>9} "
          f"{'TEMPy s':>9} {'direct/gemmi':>12} {'fft/gemmi':>10}")
    for n in sizes:
        st = build_structure(base, n)
        start = time.perf_counter()
        atoms = atoms_of(st)
        flatten = time.perf_counter() - start
        ours = best_of(lambda a=atoms: density.molmap(a, args.resolution), repeats)
        fft = best_of(lambda a=atoms: density.molmap(a, args.resolution, method="fft"), repeats)
        ref = time_gemmi(st, args.resolution, repeats)
        tempy = None
        if n in tempy_sizes:
            tempy, why = time_tempy(st, args.resolution, 1, python)
            if why:
                notes.add(why)
        row = {"atoms": len(atoms), "atoms_of_s": flatten, "molmap_direct_s": ours,
               "molmap_fft_s": fft,
               "gemmi_s": ref, "tempy_s": tempy, "direct_over_gemmi": ours / ref,
               "fft_over_gemmi": fft / ref,
               "direct_over_tempy": ours / tempy if tempy else None}
        rows.append(row)
        t = f"{tempy:9.3f}" if tempy else f"{'—':>9}"
        print(f"{row['atoms']:>8} {flatten:10.3f} {ours:9.3f} {fft:9.3f} {ref:9.3f} {t} "
              f"{row['direct_over_gemmi']:12.2f} {row['fft_over_gemmi']:10.2f}", flush=True)
    for note in sorted(notes):
        print(f"note: {note}")
    out = repo_root() / "results" / "benchmarks" / "density.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "resolution_A": args.resolution, "grid_step": "R/3", "repeats": repeats,
        "quick": args.quick, "rows": rows, "notes": sorted(notes),
        "machine": {"cpus": os.cpu_count()},
        "caveat": "shared machine; timings are noisy",
    }, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
