"""Speed of tomogram denoising: the shipped 2.5D U-Net (``cryolab denoise``'s path) against
Topaz-Denoise's shipped 3D U-Nets (``topaz denoise3d``, run in its own environment).

A simulated tomogram of the chapter-05 kind (10 Å voxels) is denoised by each method on the
CPU (ours with ``cryolab denoise``'s default 64-voxel tiles); for Topaz the time is that of
its whole process (start, model load, network), as a user would meet it, run as chapter 05
runs it (:func:`cryolab.pipelines.tomoeval.run_topaz`: one pass over the whole tomogram;
``--topaz-tiles`` adds Topaz's own default of 96-voxel tiles with 48 of padding, which costs
it about 30 times as much on a 50-slice tomogram). Topaz runs only where
``CRYOLAB_TOPAZ_PYTHON`` names the Python of an environment with topaz-em installed;
otherwise its rows say why they are missing.

    python benchmarks/bench_topaz.py [--quick] [--topaz-tiles]

Prints a table and writes ``results/benchmarks/topaz.json``. Timings on a shared machine are
noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 96×96×40-voxel tomogram")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for each method")
    parser.add_argument("--topaz-tiles", action="store_true",
                        help="also time Topaz in its default tiles (slow)")
    args = parser.parse_args()
    os.environ.setdefault("CRYOLAB_DATA_DIR", str(Path(__file__).resolve().parents[2]
                                                  / "shared" / "data"))
    import torch

    from cryolab import weights
    from cryolab.pipelines.tomoeval import TOPAZ_MODELS, run_topaz, topaz_available
    from cryolab.pipelines.tomolearn import PROFILES, denoise_tomogram, simulation_config
    from cryolab.tomo.simulate import simulate

    torch.set_num_threads(args.threads)
    size = (960.0, 960.0, 400.0) if args.quick else (2000.0, 2000.0, 500.0)
    cfg = dataclasses.replace(PROFILES["book"], size=size)
    tomogram = simulate(simulation_config(cfg, seed=4242)).tomogram
    voxels = int(tomogram.size)
    rows = {}
    model = weights.load("denoiser")
    start = time.perf_counter()
    denoise_tomogram(model, tomogram)
    rows["cryolab U-Net (shipped, 2.5D)"] = time.perf_counter() - start
    reason = topaz_available()
    for name in TOPAZ_MODELS:
        if reason:
            rows[f"Topaz {name}"] = None
            continue
        _, rows[f"Topaz {name}"] = run_topaz(tomogram, cfg.pixel_size, name,
                                             threads=args.threads)
        if args.topaz_tiles:
            _, rows[f"Topaz {name}, its tiles"] = run_topaz(
                tomogram, cfg.pixel_size, name, patch=96, padding=48, threads=args.threads)
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "threads": args.threads},
        "quick": args.quick,
        "shape_zyx": list(tomogram.shape),
        "seconds": {k: (round(v, 2) if v is not None else None) for k, v in rows.items()},
        "megavoxels_per_s": {k: (round(voxels / v / 1e6, 4) if v else None)
                             for k, v in rows.items()},
        "topaz_skipped": reason,
    }
    print(f"{'method':<34}{'seconds':>10}{'Mvoxel/s':>10}   "
          f"({'x'.join(map(str, tomogram.shape[::-1]))} voxels, {args.threads} thread(s))")
    for k, v in rows.items():
        print(f"  {k:<32}" + (f"{v:>10.2f}{voxels / v / 1e6:>10.3f}" if v else
                              f"{'skipped':>10}"))
    if reason:
        print(reason)
    out = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "topaz.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
