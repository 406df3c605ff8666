"""Benchmark: cryolab's simulators against gemmi's DensityCalculatorE (and TEMPy), on the
user's whole path: a gemmi structure in, a boxed :class:`~cryolab.io.Volume` out.

Every implementation maps the same structures (copies of haemoglobin 5ME2, cut to 1k … 1M
atoms) at the same resolution onto grids of the same spacing (R/3 and margin 3R for cryolab;
gemmi's ``d_min = R``, ``rate = 1.5``, i.e. R/3, on a cell with the same margin), in one
process, interleaved, repeated; the table gives the median seconds per map and the ratio to
gemmi (< 1: we are faster). Our timing includes turning the structure into arrays
(:func:`cryolab.io.atoms_of`) and boxing; gemmi's includes sizing its grid, not the shift of
the model into its cell (done once, outside the clock: that favours gemmi). At 1M atoms
molmap (both summations), pdb2mrc and gemmi run once each (blur's wider window and the form
factors take minutes there), and the peak memory of ``molmap`` and ``pdb2mrc`` is measured in
a child process (resident set above the structure). Before any timing, every simulator runs
once on 1k atoms, untimed: that warm-up imports numba and compiles (or loads from its disk
cache) the window-sum and splatting kernels, a one-off cost of about 0.5 s (2.5 s when
nothing is cached yet) that a user pays once per process.

TEMPy (PyPI ``biotempy``) pins old dependencies, so it usually lives in its own environment:
the benchmark imports it when it can, else runs it in ``--tempy-python`` (default
``$CRYOLAB_TEMPY_PYTHON`` or ``/tmp/tempyenv/bin/python``) on the same structure files, else
skips it with a message.

    python benchmarks/bench_density.py [--quick] [--resolution 4] [--repeats 5]

Writes ``results/benchmarks/density.json``. On a shared machine timings are noisy: compare
the ratios (same run, interleaved), not the seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
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

sys.path.insert(0, str(Path(__file__).parent))
from machine import write_result  # noqa: E402

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
        copy = base[0].clone()
        copy.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift.tolist())))
        for chain in copy:
            chain.name = f"{chain.name}{c}"
            model.add_chain(chain)
            count += chain.count_atom_sites()
    # cut to exactly n_atoms
    excess = count - n_atoms
    for chain in reversed(list(model)):
        while excess > 0 and len(chain) > 0 and len(chain[len(chain) - 1]) <= excess:
            excess -= len(chain[len(chain) - 1])
            del chain[len(chain) - 1]
    st.setup_entities()
    return st


def medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable, run interleaved (a, b, a, b, …) so that both see the
    same load on a shared machine."""
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def gemmi_path(st: gemmi.Structure, resolution: float):
    """gemmi DensityCalculatorE on a cell around the atoms, grid spacing R/3 (d_min = R): the
    model is shifted into the cell once here; the callable sizes the grid and sums."""
    st = st.clone()
    box = st.calculate_box()
    low = np.array(box.minimum.tolist())
    size = np.array(box.maximum.tolist()) - low
    pad = 3 * resolution
    st[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(pad - low).tolist())))
    st.cell = gemmi.UnitCell(*(size + 2 * pad).tolist(), 90, 90, 90)
    st.spacegroup_hm = "P 1"

    def run():
        dc = gemmi.DensityCalculatorE()
        dc.d_min = resolution
        dc.rate = 1.5
        dc.set_grid_cell_and_spacegroup(st)
        dc.put_model_density_on_grid(st[0])
        return dc.grid

    return run


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


OURS = {
    "molmap": lambda st, r: density.molmap(st, r),
    "molmap_fft": lambda st, r: density.molmap(st, r, method="fft"),
    "pdb2mrc": lambda st, r: density.pdb2mrc(st, r),
    "blur": lambda st, r: density.blur(st, r),
    "formfactor": lambda st, r: density.formfactor(st, r),
}
#: what runs at 1M atoms besides gemmi (blur's wider windows and the form factors take minutes)
LARGE = ("molmap", "molmap_fft", "pdb2mrc")


def child_peak_memory(n_atoms: int, resolution: float, method: str) -> float:
    """Peak resident memory (GiB) that ``method`` adds to a process holding the structure."""
    run = subprocess.run([sys.executable, __file__, "--resolution", str(resolution),
                          "--peak-memory", method, str(n_atoms)],
                         capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip().splitlines()[-1])
    return int(run.stdout.split()[-1]) / 2**30


def fft_error(st: gemmi.Structure, resolution: float) -> dict:
    """How far the spreading + filter sum lies from the exact window sum, same grid."""
    exact = density.molmap(st, resolution).data
    fast = density.molmap(st, resolution, method="fft").data
    return {"max_abs_over_peak": float(np.abs(fast - exact).max() / exact.max()),
            "rms_over_peak": float(np.sqrt(np.mean((fast - exact) ** 2)) / exact.max()),
            "correlation": float(np.corrcoef(fast.ravel(), exact.ravel())[0, 1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k atoms only (< 60 s)")
    parser.add_argument("--resolution", type=float, default=4.0, help="R in Å (default 4)")
    parser.add_argument("--tempy-python", help="python of an environment with biotempy")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-memory", nargs=2, metavar=("METHOD", "ATOMS"),
                        help="(child mode) print the bytes METHOD adds to the peak memory")
    args = parser.parse_args(argv)
    base = read_structure(fetch("structures/ccpem/5me2.pdb.gz"))
    if args.peak_memory:
        method, n = args.peak_memory[0], int(args.peak_memory[1])
        st = build_structure(base, n)
        with open("/proc/self/statm") as f:  # resident pages now
            before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        OURS[method](st, args.resolution)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
        return 0

    warm = build_structure(base, 1000)
    for simulate in OURS.values():  # untimed warm-up: numba compiles or loads its kernels
        simulate(warm, args.resolution)
    sizes = [1000, 10000] if args.quick else [1000, 10000, 100000, 1000000]
    tempy_sizes = {1000} if args.quick else {1000, 10000}
    repeats = 2 if args.quick else args.repeats
    python = tempy_python(args.tempy_python)
    rows, notes = [], set()
    print(f"{'atoms':>8} {'atoms_of s':>10} {'gemmi s':>8} "
          + " ".join(f"{k + '/gemmi':>17}" for k in OURS) + f" {'TEMPy s':>8}")
    for n in sizes:
        st = build_structure(base, n)
        start = time.perf_counter()
        atoms_of(st)
        flatten = time.perf_counter() - start
        large = n >= 1_000_000
        fns = {k: (lambda f=f, s=st: f(s, args.resolution)) for k, f in OURS.items()
               if not large or k in LARGE}
        fns["gemmi"] = gemmi_path(st, args.resolution)
        t = medians(fns, 1 if large else repeats)
        tempy = None
        if n in tempy_sizes:
            tempy, why = time_tempy(st, args.resolution, 1, python)
            if why:
                notes.add(why)
        row = {"atoms": n, "atoms_of_s": flatten, "seconds": t, "tempy_s": tempy,
               "over_gemmi": {k: v / t["gemmi"] for k, v in t.items() if "gemmi" in t
                              and k != "gemmi"}}
        if large:
            row["peak_memory_gib"] = {k: child_peak_memory(n, args.resolution, k)
                                      for k in ("molmap", "pdb2mrc")}
        rows.append(row)
        ratios = " ".join(f"{row['over_gemmi'][k]:17.2f}" if k in row["over_gemmi"]
                          else (f"{t[k]:16.2f}s" if k in t else f"{'—':>17}") for k in OURS)
        g = f"{t['gemmi']:8.3f}" if "gemmi" in t else f"{'—':>8}"
        tp = f"{tempy:8.3f}" if tempy else f"{'—':>8}"
        print(f"{n:>8} {flatten:10.3f} {g} {ratios} {tp}", flush=True)
    error = fft_error(build_structure(base, 10000), args.resolution)
    print(f"spreading + filter vs exact window sums (10k atoms): max |Δ| = "
          f"{error['max_abs_over_peak']:.3%} of the peak, rms {error['rms_over_peak']:.3%}, "
          f"correlation {error['correlation']:.6f}")
    for note in sorted(notes):
        print(f"note: {note}")
    write_result("density", {
        "benchmark": "density", "peer": "gemmi DensityCalculatorE",
        "resolution_A": args.resolution, "grid_step": "R/3", "repeats": repeats,
        "quick": args.quick, "rows": rows, "fft_vs_direct_10k": error, "notes": sorted(notes),
        "command": f"python benchmarks/bench_density.py --repeats {args.repeats}"
        + (" --quick" if args.quick else ""),
        "caveat": "shared machine; ratios are medians of interleaved runs",
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
