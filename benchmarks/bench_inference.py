"""Speed of applying the book's networks to maps, in voxels per second.

The speed of a network does not depend on its weights, so every network here has random
weights with the chapter's architecture (the shipped ones, where they exist, time the same):

- struc2mapGAN generation of haemoglobin 5ME2 (:func:`cryolab.apply.generate_map`: 2 Å molmap
  on a 1 Å grid, U-Net++ generator of width 32 as in the paper), tiled (32³ tiles, 20³ cores,
  the default) and whole-map (``whole=True``). Goal of issue 23: < 5 s on 2 CPU cores.
- ``sharpen --method unet3d`` (3D U-Net, 64³ tiles), ``denoise`` and ``segment`` (the
  tomogram U-Nets, 3D, 64³ tiles) on random maps.

    python benchmarks/bench_inference.py [--threads 2] [--quick]

Writes ``results/benchmarks/inference.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cryolab import density
from cryolab.apply import generate_map
from cryolab.data import fetch
from cryolab.io import read_structure
from cryolab.nn.unet import UNet, denoise_volume, segment_volume
from cryolab.nn.unet3d import UNet3D
from cryolab.nn.unetpp import UNetPlusPlus3D
from cryolab.tiles import predict_volume

sys.path.insert(0, str(Path(__file__).parent))
from machine import write_result  # noqa: E402


def seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="one repeat, smaller maps")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    repeats = 1 if args.quick else args.repeats
    rows = []

    structure = read_structure(fetch("structures/ccpem/5me2.pdb.gz"))
    gan = UNetPlusPlus3D(32).eval()
    voxels = density.molmap(structure, 2.0, voxel_size=1.0).data.size  # the generator's grid
    for mode, whole in (("tiles", False), ("whole map", True)):
        t = seconds(lambda w=whole: generate_map(gan, structure, whole=w), repeats)
        rows.append({"task": f"GAN 5ME2 ({mode})", "voxels": voxels, "seconds": t,
                     "voxels_per_s": voxels / t})
        print(f"{rows[-1]['task']:<28} {voxels:>10} voxels {t:8.2f} s "
              f"{voxels / t:12.0f} voxels/s", flush=True)

    edge = 64 if args.quick else 128
    volume = np.random.default_rng(0).normal(size=(edge,) * 3).astype(np.float32)
    tasks = {
        "sharpen (3D U-Net)": lambda: predict_volume(UNet3D().eval(), volume, patch=64,
                                                     stride=48, weight="gaussian"),
        "denoise (tomogram U-Net)": lambda: denoise_volume(UNet(dims=3).eval(), volume),
        "segment (tomogram U-Net)": lambda: segment_volume(
            UNet(out_channels=4, dims=3).eval(), volume),
    }
    for task, fn in tasks.items():
        t = seconds(fn, repeats)
        rows.append({"task": task, "voxels": volume.size, "seconds": t,
                     "voxels_per_s": volume.size / t})
        print(f"{task:<28} {volume.size:>10} voxels {t:8.2f} s "
              f"{volume.size / t:12.0f} voxels/s", flush=True)

    write_result("inference", {
        "benchmark": "inference", "threads": args.threads, "repeats": repeats,
        "quick": args.quick, "rows": rows, "goal": "GAN 5ME2 < 5 s on 2 CPU cores",
        "command": "python benchmarks/bench_inference.py" + (" --quick" if args.quick else ""),
        "caveat": "random weights (speed does not depend on them); shared machine",
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
