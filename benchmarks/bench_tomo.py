"""Speed of the tomogram simulator (cryolab.tomo) against its peers.

1. The whole pipeline — specimen → 61-tilt series → WBP tomogram → ideal prior → atlas — for a
   400×400×50-voxel specimen at 10 Å. CTS's own tutorial (MATLAB + IMOD on a laptop): a
   300×400×50 model at 12 Å in under 2 min plus under 1 min of simulation. Target: < 60 s on
   2 CPU cores (torch on CUDA when present).
2. Back-projection: ours (all y slices at once, one sparse product per group of tilts)
   against ``skimage.transform.iradon`` slice by slice, same sinograms, same N×N output.

    python benchmarks/bench_tomo.py [--quick]

Prints a table and writes ``results/benchmarks/tomo.json``. Timings on a shared machine are
noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def pipeline(size_xy: float, thickness: float, seed: int = 0) -> dict:
    from cryolab.tomo.microscope import MicroscopeConfig
    from cryolab.tomo.simulate import SimulationConfig, simulate
    from cryolab.tomo.specimen import Layer, SpecimenConfig, VesicleConfig

    cfg = SimulationConfig(
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
    return {"n": n, "slices": n_slices, "angles": n_angles, "skimage_s": round(t_sk, 3),
            "ours_s": round(t_ours, 3), "speedup": round(t_sk / t_ours, 1),
            "correlation": round(float(r), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 60 s)")
    args = parser.parse_args()
    os.environ.setdefault("CRYOLAB_DATA_DIR", str(Path(__file__).resolve().parents[2]
                                                  / "shared" / "data"))
    if args.quick:
        pipe = pipeline(2000.0, 400.0)
        bp = backprojection(127, 16)
    else:
        pipe = pipeline(4000.0, 500.0)
        bp = backprojection(399, 64)
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "quick": args.quick,
        "pipeline": pipe,
        "pipeline_reference": "CTS tutorial: 300x400x50 @ 12 Å, < 2 min model + < 1 min "
                              "simulation (MATLAB + IMOD, laptop)",
        "pipeline_target_s": 60,
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
    out = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "tomo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
