"""Benchmark: AFM images per second, cryolab's stacked tip dilation against scipy's; and the
time to reconstruct a shape from V views (space carving, back-projection, the shipped PoseVox).

Both renderers compute the same images of the same structures in one run: the vectorised
height map (``cryolab.afm.height_map``), then the tip–sample dilation either with
``cryolab.afm.tip_dilate`` (one ``np.maximum`` per pixel of the tip's footprint over the whole
stack of views at once) or with ``scipy.ndimage.grey_dilation(structure=-T)`` image by image,
the reference implementation the unit tests compare against. The table gives images per second
(the best of ``--repeats``), the ratio to scipy (> 1: we are faster) and the largest difference
between the two (it must be 0). Structure reading and rotation are not timed. The second table
gives milliseconds per structure (best of ``--repeats``) to carve a 32³ grid from V views, to
back-project them (:func:`cryolab.carving.backproject`) and to run the shipped PoseVox on the
result (one thread). A last line times what chapter 06 scores, carving with every number of
views of its tables: one :func:`cryolab.carving.carve` per count against one projection shared
by all counts (:func:`cryolab.carving.prefix_depths`); the hulls must be the same.

    python benchmarks/bench_afm.py [--quick]

Writes ``results/benchmarks/afm.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from cryolab import afm
from cryolab.data import fetch
from cryolab.io import atoms_of, read_structure
from cryolab.results import repo_root

STRUCTURES = ["structures/bm5/1AK4_target.pdb.gz", "structures/ccpem/5me2.pdb.gz",
              "structures/locscale/pdb3j5p_refined.pdb.gz"]


def _render(views_xyz, radii, size, pixel, tip, dilate) -> np.ndarray:
    raw = np.stack([afm.height_map(v, radii, size, pixel, np.zeros(2)) for v in views_xyz])
    return dilate(raw, tip, pixel)


def _scipy_dilate(raw: np.ndarray, tip: afm.Tip, pixel: float) -> np.ndarray:
    out = np.empty_like(raw)
    span = float(raw.max() - raw.min())
    profile = afm.tip_profile(tip, pixel, span)
    footprint = np.isfinite(profile)
    structure = np.where(footprint, -profile, 0.0)[::-1, ::-1]
    for k, image in enumerate(raw):
        out[k] = ndimage.grey_dilation(image, footprint=footprint[::-1, ::-1],
                                       structure=structure, mode="nearest")
    return out


def _best(repeats: int, *args) -> tuple[float, np.ndarray]:
    """Shortest of ``repeats`` timings of ``_render(*args)``, and its images."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = _render(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def _ms(repeats: int, fn, *args) -> float:
    """Shortest of ``repeats`` timings of ``fn(*args)`` in milliseconds."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def _reconstruction_rows(name: str, repeats: int) -> list[dict]:
    import torch

    from cryolab import carving, weights
    from cryolab.pipelines.afm_views import pose_predict

    torch.set_num_threads(1)
    model = weights.load("posevox")
    atoms = atoms_of(read_structure(fetch(name)), hydrogens=False)
    xyz, radii = afm.principal_frame(atoms.xyz), afm.vdw_radii(atoms.element)
    views = afm.afm_views(xyz, radii, 10, np.random.default_rng(0), noise=1.0)
    centre, voxel = afm.grid_geometry(xyz, radii, 32)
    rows = []
    for v in (1, 5, 10):
        evidence = carving.backproject(views, centre, voxel, 32, n_views=v)[None]
        rows.append(dict(
            structure=Path(name).name, views=v,
            carve_ms=_ms(repeats, carving.carve, views, centre, voxel, 32, 0.0, v),
            backproject_ms=_ms(repeats, carving.backproject, views, centre, voxel, 32, v),
            posevox_ms=_ms(repeats, pose_predict, model, evidence, v),
        ))
    return rows


def _all_counts_row(name: str, repeats: int, counts=(1, 3, 5, 8, 10)) -> dict:
    """Milliseconds to carve one structure with each of ``counts`` views: one carve per count,
    or one projection into the views shared by every count."""
    from cryolab import carving

    atoms = atoms_of(read_structure(fetch(name)), hydrogens=False)
    xyz, radii = afm.principal_frame(atoms.xyz), afm.vdw_radii(atoms.element)
    views = afm.afm_views(xyz, radii, max(counts), np.random.default_rng(0), noise=1.0)
    centre, voxel = afm.grid_geometry(xyz, radii, 32)

    def separately() -> list[np.ndarray]:
        return [carving.carve(views, centre, voxel, 32, n_views=v) for v in counts]

    def shared() -> list[np.ndarray]:
        depths = carving.prefix_depths(views, centre, voxel, 32, list(counts))
        return [carving.carved(*depths[v], 32) for v in counts]

    same = all(np.array_equal(a, b) for a, b in zip(separately(), shared(), strict=True))
    return dict(structure=Path(name).name, counts=list(counts),
                separately_ms=_ms(repeats, separately), shared_ms=_ms(repeats, shared),
                same_hulls=same)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one structure, one tip (< 60 s)")
    parser.add_argument("--views", type=int, default=25)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    names = STRUCTURES[:1] if args.quick else STRUCTURES
    tips = [afm.Tip(10, 10)] if args.quick else [afm.Tip(10, 10), afm.Tip(20, 20)]
    views = 10 if args.quick else args.views
    rng = np.random.default_rng(0)
    rows = []
    for name in names:
        atoms = atoms_of(read_structure(fetch(name)), hydrogens=False)
        xyz, radii = afm.principal_frame(atoms.xyz), afm.vdw_radii(atoms.element)
        pixel = 2 * afm.bounding_radius(xyz, radii) / args.size
        rot = afm.random_rotations(views, rng)
        views_xyz = []
        for r in rot:
            v = r.apply(xyz)
            v[:, 2] -= np.min(v[:, 2] - radii)
            views_xyz.append(v)
        for tip in tips:
            common = (views_xyz, radii, args.size, pixel, tip)
            ours_s, ours = _best(args.repeats, *common, afm.tip_dilate)
            peer_s, peer = _best(args.repeats, *common, _scipy_dilate)
            footprint = int(np.isfinite(afm.tip_profile(tip, pixel, float(np.ptp(ours)))).sum())
            rows.append(dict(
                structure=Path(name).name, atoms=len(xyz), pixel_A=round(pixel, 2),
                tip=f"R={tip.radius:g} Å, α={tip.half_angle:g}°", footprint_px=footprint,
                ours_images_per_s=views / ours_s, scipy_images_per_s=views / peer_s,
                speedup=peer_s / ours_s, max_abs_diff=float(np.max(np.abs(ours - peer))),
            ))
    header = f"{'structure':28s} {'atoms':>6s} {'tip':>16s} {'fp px':>6s} {'ours im/s':>10s} " \
             f"{'scipy im/s':>10s} {'speedup':>8s} {'max diff':>9s}"
    print(header)
    for r in rows:
        print(f"{r['structure']:28s} {r['atoms']:6d} {r['tip']:>16s} {r['footprint_px']:6d} "
              f"{r['ours_images_per_s']:10.1f} {r['scipy_images_per_s']:10.1f} "
              f"{r['speedup']:8.2f} {r['max_abs_diff']:9.2g}")
    recon = _reconstruction_rows(names[0], args.repeats)
    print(f"\n{'structure':28s} {'views':>5s} {'carve ms':>9s} {'backproject ms':>15s} "
          f"{'PoseVox ms':>11s}")
    for r in recon:
        print(f"{r['structure']:28s} {r['views']:5d} {r['carve_ms']:9.1f} "
              f"{r['backproject_ms']:15.1f} {r['posevox_ms']:11.1f}")
    counts = _all_counts_row(names[0], args.repeats)
    print(f"\ncarving with {counts['counts']} views: {counts['separately_ms']:.1f} ms one count at "
          f"a time, {counts['shared_ms']:.1f} ms sharing the projection (same hulls: "
          f"{counts['same_hulls']})")
    out = repo_root() / "results" / "benchmarks" / "afm.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"quick": args.quick, "image_size": args.size, "views": views,
                               "note": "timings on a shared 2-core machine are noisy",
                               "rows": rows, "reconstruction": recon,
                               "carving_all_counts": counts}, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
