"""Speed of applying the book's networks to maps, in voxels per second.

- struc2mapGAN generation of haemoglobin 5ME2 (:func:`cryolab.apply.generate_map`: 2 Å
  molmap on a 1 Å grid) with the *shipped* generator (width 8, ``cryolab/weights/gan.pt``):
  over 32³ tiles with 20³ cores kept, over the whole map (``whole=True``), and the default
  (whole when :func:`cryolab.apply.whole_map_fits`). A second pair of rows times a generator
  of the paper's width 32 (random weights: speed does not depend on them). Goal of issue 23:
  < 5 s on 2 CPU cores.
- Quality of whole-map against tiled generation (InstanceNorm makes them differ): the paper's
  scores (:func:`cryolab.pipelines.struc2map.evaluate_map`) of the shipped generator's map
  against the curated experimental map, for EMD-3488 (5ME2) and EMD-0093 (6GYN), masked 3 Å
  around the model as in chapter 01. The shipped generator was trained on patches of both
  maps, so these scores measure the inference path, not generalisation.
- ``sharpen --method unet3d``, ``denoise`` and ``segment`` with the shipped networks and the
  commands' tiling on a random map.

Every network runs under ``torch.inference_mode``.

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

from cryolab import density, weights
from cryolab.apply import generate_map, whole_map_fits
from cryolab.data import fetch
from cryolab.io import read_structure
from cryolab.nn.unet import denoise_volume, segment_volume
from cryolab.nn.unetpp import UNetPlusPlus3D
from cryolab.tiles import predict_volume

sys.path.insert(0, str(Path(__file__).parent))
from machine import write_result  # noqa: E402

GAN_MODES = {"tiles": False, "whole map": True, "default": None}
#: maps of the whole-versus-tiles quality check (chapter 01's registered pairs)
QUALITY_MAPS = ("EMD-3488", "EMD-0093")


def seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def row(task: str, voxels: int, t: float, **extra) -> dict:
    print(f"{task:<34} {voxels:>10} voxels {t:8.2f} s {voxels / t:12.0f} voxels/s", flush=True)
    return {"task": task, "voxels": voxels, "seconds": t, "voxels_per_s": voxels / t, **extra}


def quality(generator, names: tuple[str, ...]) -> list[dict]:  # noqa: ANN001
    """The paper's scores of the whole-map and the tiled map against the experimental map."""
    from cryolab.pipelines import struc2map as s2m

    rows = []
    for name in names:
        held = s2m.MIRROR[name]
        pair = s2m.load_pair(held.map, held.model)
        structure = s2m.mirror_structure(held.model)
        for mode in ("tiles", "whole map"):
            made = generate_map(generator, structure, on_grid=pair.target, mask_radius=3.0,
                                whole=GAN_MODES[mode])
            scores = s2m.evaluate_map(made.data, pair.target.data)
            rows.append({"map": name, "mode": mode, "shape": list(pair.target.shape), **scores})
            print(f"{name} {mode:<10} " + " ".join(f"{k} {v:.3f}" for k, v in scores.items()),
                  flush=True)
    return rows


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
    shape = density.molmap(structure, 2.0, voxel_size=1.0).shape  # the generator's grid
    voxels = int(np.prod(shape))
    shipped = weights.load("gan", device="cpu")
    paper = UNetPlusPlus3D(32).eval()
    for label, gan in ((f"shipped, width {shipped.hparams['base_channels']}", shipped),
                       ("paper width 32, random", paper)):
        for mode, whole in GAN_MODES.items():
            if mode == "default" and gan is paper:
                continue
            t = seconds(lambda g=gan, w=whole: generate_map(g, structure, whole=w), repeats)
            chosen = "whole map" if whole_map_fits(gan, shape) else "tiles"
            rows.append(row(f"GAN 5ME2 {label} ({mode})", voxels, t,
                            **({"chooses": chosen} if whole is None else {})))

    edge = 64 if args.quick else 128
    volume = np.random.default_rng(0).normal(size=(edge,) * 3).astype(np.float32)
    superres, denoiser, segmenter = (weights.load(n, device="cpu")
                                     for n in ("superres", "denoiser", "segmenter"))
    tasks = {  # the commands' default tiling
        "sharpen (3D U-Net, shipped)": lambda: predict_volume(
            superres, volume, patch=32, stride=16, weight="gaussian", batch_size=4),
        "denoise (tomogram U-Net, shipped)": lambda: denoise_volume(denoiser, volume,
                                                                    batch_size=2),
        "segment (tomogram U-Net, shipped)": lambda: segment_volume(segmenter, volume,
                                                                    batch_size=2),
    }
    for task, fn in tasks.items():
        rows.append(row(task, volume.size, seconds(fn, repeats)))
    scores = quality(shipped, QUALITY_MAPS[:1] if args.quick else QUALITY_MAPS)

    write_result("inference", {
        "benchmark": "inference", "threads": args.threads, "repeats": repeats,
        "quick": args.quick, "rows": rows, "goal": "GAN 5ME2 < 5 s on 2 CPU cores",
        "gan_grid": list(shape), "whole_vs_tiles": scores,
        "command": f"python benchmarks/bench_inference.py --threads {args.threads}"
                   + (" --quick" if args.quick else ""),
        "caveat": "shared machine (see load_average); the width-32 generator has random "
                  "weights (speed does not depend on them)",
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
