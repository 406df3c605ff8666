"""Speed of the tomogram simulator (cryolab.tomo) against its peers.

1. The whole pipeline — specimen → 61-tilt series → WBP tomogram → ideal prior → atlas — for a
   400×400×50-voxel specimen at 10 Å. CTS's own tutorial (MATLAB + IMOD on a laptop): a
   300×400×50 model at 12 Å in under 2 min plus under 1 min of simulation. Target: < 60 s on
   2 CPU cores (torch on CUDA when present).
   Then time and peak memory of ``simulate-tomo`` (the streamed run that writes a folder)
   against size (200², 400² and 800² × 80 voxels, also with ``--quick``), 61 tilts at 10 Å,
   each size in a fresh child process: bytes per voxel of the whole process's peak resident
   memory, and of the peak less the memory after the imports (goal: ≤ 16 bytes per voxel for
   the whole process at 800×800×80). ``--memory-only`` measures only this and replaces the
   memory rows of an existing ``results/benchmarks/tomo.json``, keeping its other numbers.
2. Back-projection: ours (all y slices at once, one sparse product per group of tilts)
   against ``skimage.transform.iradon`` and astra-toolbox's CPU FBP (``FBP`` with a
   ``linear`` projector), both slice by slice, same sinograms, same N×N output. astra's wheel
   needs the CUDA runtime libraries even on a CPU, so it lives in its own environment:
   ``$CRYOLAB_ASTRA_PYTHON`` (default ``/tmp/h23_astra_venv/bin/python``); skipped with a
   reason when absent.

Denoising against Topaz-Denoise is timed by ``benchmarks/bench_topaz.py``.

    python benchmarks/bench_tomo.py [--quick | --memory-only]

Prints a table and writes ``results/benchmarks/tomo.json``. Timings on a shared machine are
noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine, write_result  # noqa: E402

#: simulate-tomo's sizes (Å: x = y, z); the memory goal is set at 800×800×80 voxels
MEMORY_SIZES = [(2000.0, 800.0), (4000.0, 800.0), (8000.0, 800.0)]
MEMORY_BEFORE = ("400x400x80: 10.8 s, 1.3 GB; 800x800x80: 45.5 s, 4.1 GB (about 80 B per voxel "
                 "of the whole process; issue #23, 2 cores). After the first streamed version "
                 "(commit 8c13580): 400x400x80 27.5 B per voxel for the whole process (18.5 "
                 "above the imports), 800x800x80 16.7 (14.5)")

ASTRA_SNIPPET = r"""
import sys, time, numpy as np, astra
sino = np.load(sys.argv[1])  # (slices, n, angles)
theta = np.deg2rad(np.load(sys.argv[2]))
n = sino.shape[1]
vol_geom = astra.create_vol_geom(n, n)
proj_geom = astra.create_proj_geom("parallel", 1.0, n, theta)
projector = astra.create_projector("linear", proj_geom, vol_geom)
out = np.empty((len(sino), n, n), np.float32)
start = time.perf_counter()
for i, s in enumerate(sino):
    sid = astra.data2d.create("-sino", proj_geom, np.ascontiguousarray(s.T))
    rid = astra.data2d.create("-vol", vol_geom)
    cfg = astra.astra_dict("FBP")
    cfg["ProjectorId"], cfg["ProjectionDataId"], cfg["ReconstructionDataId"] = projector, sid, rid
    alg = astra.algorithm.create(cfg)
    astra.algorithm.run(alg)
    out[i] = astra.data2d.get(rid)
    astra.algorithm.delete(alg); astra.data2d.delete([sid, rid])
print(time.perf_counter() - start)
np.save(sys.argv[3], out)
"""


def peer_python(variable: str, default: str) -> str | None:
    path = os.environ.get(variable, default)
    return path if Path(path).is_file() else None


def pipeline_config(size_xy: float, thickness: float, seed: int = 0):
    """The benchmark's specimen (two particle layers, vesicles with membrane proteins, a
    microtubule, gold, carbon) of ``size_xy``² × ``thickness`` Å at 10 Å, 61 tilts."""
    from cryolab.tomo.microscope import MicroscopeConfig
    from cryolab.tomo.simulate import SimulationConfig
    from cryolab.tomo.specimen import Layer, SpecimenConfig, VesicleConfig

    return SimulationConfig(
        specimen=SpecimenConfig(
            size=(size_xy, size_xy, thickness), pixel_size_a=10.0,
            layers=[Layer(["ribosome", "proteasome_20s"], 0.15, 600),
                    Layer(["rubisco"], 0.05, 400)],
            vesicles=VesicleConfig(count=2, radius=(120.0, 160.0), proteins=["5gjv_mb"]),
            microtubules=1, gold=4, carbon=True,
        ),
        microscope=MicroscopeConfig(min_angle=-60, max_angle=60, step=2),
        seed=seed,
    )


def pipeline(size_xy: float, thickness: float, seed: int = 0) -> dict:
    from cryolab.tomo.simulate import simulate

    cfg = pipeline_config(size_xy, thickness, seed)
    start = time.perf_counter()
    sim = simulate(cfg)
    total = time.perf_counter() - start
    return {
        "shape_xyz": list(sim.tomogram.shape[::-1]),
        "n_tilts": int(sim.tilt_series.images.shape[0]),
        "n_particles": sim.summary()["n_particles"],
        "stages_s": {k: round(v, 3) for k, v in sim.timings.items()},
        "total_s": round(total, 3),
    }


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(size_xy: float, thickness: float) -> None:
    """(child mode) Run ``simulate-tomo``'s path (:func:`simulate_to_directory`) once and print
    its seconds, the resident memory before it (imports done) and the process's peak."""
    from cryolab.tomo.simulate import simulate_to_directory

    cfg = pipeline_config(size_xy, thickness)
    with tempfile.TemporaryDirectory() as tmp:
        before = _resident_bytes()
        start = time.perf_counter()
        simulate_to_directory(cfg, Path(tmp) / "run")
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "baseline_bytes": before, "peak_bytes": peak}))


def memory_vs_size(sizes: list[tuple[float, float]]) -> list[dict]:
    """Seconds and peak memory of ``simulate-tomo`` (written to a folder) against the number
    of voxels, each size in a fresh child process: bytes per voxel of the whole process (peak
    resident memory / voxels) and above the imports ((peak − the resident memory after the
    imports) / voxels)."""
    rows = []
    for size_xy, thickness in sizes:
        run = subprocess.run([sys.executable, __file__, "--memory-child", str(size_xy),
                              str(thickness)], capture_output=True, text=True, timeout=3600)
        if run.returncode != 0:
            raise RuntimeError((run.stderr.strip().splitlines() or ["failed"])[-1])
        m = json.loads(run.stdout.strip().splitlines()[-1])
        shape = [int(round(size_xy / 10.0))] * 2 + [int(round(thickness / 10.0))]
        voxels = int(np.prod(shape))
        rows.append({"shape_xyz": shape, "voxels": voxels, "seconds": round(m["seconds"], 2),
                     "peak_gib": round(m["peak_bytes"] / 2**30, 3),
                     "baseline_gib": round(m["baseline_bytes"] / 2**30, 3),
                     "bytes_per_voxel_whole_process": round(m["peak_bytes"] / voxels, 1),
                     "bytes_per_voxel_above_imports": round(
                         (m["peak_bytes"] - m["baseline_bytes"]) / voxels, 1)})
    return rows


def backprojection(n: int, n_slices: int, n_angles: int = 61) -> dict:
    from skimage.transform import iradon

    from cryolab.tomo.reconstruct import weighted_backprojection

    rng = np.random.default_rng(0)
    theta = np.linspace(-60, 60, n_angles)
    sinograms = rng.standard_normal((n_slices, n, n_angles)).astype(np.float32)  # (y, u, angle)
    start = time.perf_counter()
    ref = np.stack([iradon(s, theta=theta, filter_name="ramp", circle=True)
                    for s in sinograms])  # (y, z, x)
    t_sk = time.perf_counter() - start
    tilts = np.ascontiguousarray(sinograms.transpose(2, 0, 1))  # (angle, y, u)
    start = time.perf_counter()
    ours = weighted_backprojection(tilts, -theta, n, cutoff=None)  # (z, y, x)
    t_ours = time.perf_counter() - start
    yy, xx = np.mgrid[:n, :n] - n // 2
    inside = yy**2 + xx**2 < (n // 2 - 4) ** 2
    r = np.corrcoef(ours.transpose(1, 0, 2)[:, inside].ravel(), ref[:, inside].ravel())[0, 1]
    record = {"n": n, "slices": n_slices, "angles": n_angles, "skimage_s": round(t_sk, 3),
              "ours_s": round(t_ours, 3), "speedup": round(t_sk / t_ours, 1),
              "correlation": round(float(r), 5)}
    python = peer_python("CRYOLAB_ASTRA_PYTHON", "/tmp/h23_astra_venv/bin/python")
    if python is None:
        record["astra_skipped"] = "no astra environment ($CRYOLAB_ASTRA_PYTHON)"
        return record
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(Path(tmp) / f) for f in ("sino.npy", "theta.npy", "out.npy")]
        np.save(paths[0], sinograms)
        np.save(paths[1], theta)
        run = subprocess.run([python, "-c", ASTRA_SNIPPET, *paths], capture_output=True,
                             text=True, timeout=1800)
        if run.returncode != 0:
            record["astra_skipped"] = (run.stderr.strip().splitlines() or ["failed"])[-1]
            return record
        astra_out = np.load(paths[2])
    # astra's image axes differ from iradon's: report the best match of the flips
    best = max(abs(np.corrcoef(np.asarray(a)[:, inside].ravel(), ref[:, inside].ravel())[0, 1])
               for a in (astra_out, astra_out[:, ::-1], astra_out[:, :, ::-1],
                         astra_out.transpose(0, 2, 1)))
    t_astra = float(run.stdout.split()[-1])
    record.update(astra_s=round(t_astra, 3), astra_over_ours=round(t_astra / t_ours, 2),
                  astra_correlation_with_iradon=round(float(best), 5))
    return record


def print_memory(rows: list[dict]) -> None:
    print(f"{'simulate-tomo (streamed)':<28}{'seconds':>10}{'peak GiB':>10}"
          f"{'B/voxel':>9}{'above imports':>15}")
    for m in rows:
        print(f"  {'x'.join(map(str, m['shape_xyz'])):<26}{m['seconds']:>10.2f}"
              f"{m['peak_gib']:>10.3f}{m['bytes_per_voxel_whole_process']:>9.1f}"
              f"{m['bytes_per_voxel_above_imports']:>15.1f}")


def replace_memory_rows(memory: dict) -> None:
    """(``--memory-only``) Put new memory rows into ``results/benchmarks/tomo.json``, with the
    machine they were measured on (``memory_machine``); its other numbers stay."""
    path = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "tomo.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no tomogram benchmark yet; run without --memory-only first")
    record = {**json.loads(path.read_text()), **memory, "memory_machine": machine()}
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, except the memory sizes (about 2 min, plus Topaz)")
    parser.add_argument("--memory-only", action="store_true",
                        help="only simulate-tomo's time and memory against size, written into "
                             "the existing results/benchmarks/tomo.json")
    parser.add_argument("--memory-child", nargs=2, type=float, metavar=("SIZE_XY", "THICKNESS"),
                        help="(child mode) time and peak memory of one simulate-tomo run")
    args = parser.parse_args()
    os.environ.setdefault("CRYOLAB_DATA_DIR", str(Path(__file__).resolve().parents[2]
                                                  / "shared" / "data"))
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    memory = {"memory": memory_vs_size(MEMORY_SIZES), "memory_target_bytes_per_voxel": 16,
              "memory_before": MEMORY_BEFORE}
    print_memory(memory["memory"])
    if args.memory_only:
        replace_memory_rows(memory)
        return
    if args.quick:
        pipe = pipeline(2000.0, 400.0)
        bp = backprojection(127, 16)
    else:
        pipe = pipeline(4000.0, 500.0)
        bp = backprojection(399, 64)
    record = {
        "quick": args.quick,
        "pipeline": pipe,
        "pipeline_reference": "CTS tutorial: 300x400x50 @ 12 Å, < 2 min model + < 1 min "
                              "simulation (MATLAB + IMOD, laptop)",
        "pipeline_target_s": 60,
        **memory,
        "backprojection": bp,
    }
    print(f"{'step':<28}{'seconds':>10}")
    for k, v in pipe["stages_s"].items():
        print(f"  {k:<26}{v:>10.2f}")
    print(f"{'pipeline total':<28}{pipe['total_s']:>10.2f}   "
          f"({'x'.join(map(str, pipe['shape_xyz']))} voxels, {pipe['n_tilts']} tilts, "
          f"{pipe['n_particles']} particles; target < 60 s)")
    print(f"{'back-projection':<28}{'ours':>10}{'iradon':>10}{'ratio':>8}{'corr':>9}")
    print(f"  {bp['slices']} slices of {bp['n']}²{'':<6}{bp['ours_s']:>10.2f}"
          f"{bp['skimage_s']:>10.2f}{bp['speedup']:>8.1f}{bp['correlation']:>9.4f}")
    if "astra_s" in bp:
        print(f"  astra CPU FBP{'':<15}{bp['astra_s']:>10.2f}  (astra / ours "
              f"{bp['astra_over_ours']:.2f}, corr. with iradon "
              f"{bp['astra_correlation_with_iradon']:.4f})")
    else:
        print(f"  astra skipped: {bp['astra_skipped']}")
    write_result("tomo", record)


if __name__ == "__main__":
    main()
