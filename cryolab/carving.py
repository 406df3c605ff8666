"""Space carving: the visual hull of a structure from AFM height images with known orientations.

A height image says, for each pixel, where the sample's top surface is: along the viewing
direction nothing of the molecule lies *above* that surface, and nothing lies below the
substrate it rests on. A voxel is therefore empty as soon as, in one view, its centre projects
onto the image above the measured height (plus a tolerance ``margin``) or below the substrate.
What no view carves away is the estimate. Unlike Pix2Vox it needs the orientations, and it
can only over-estimate: cavities and the undersides hidden in every view stay full, and the
tip's dilation makes every height too high.

Needs only numpy and scipy (no torch).
"""

from __future__ import annotations

import numpy as np

from .afm import AFMViews

__all__ = ["voxel_centres", "carve"]


def voxel_centres(centre: np.ndarray, voxel_size: float, size: int) -> np.ndarray:
    """(size³, 3) x, y, z in Å of the centres of a cubic grid of ``size`` voxels a
    side, in (z, y, x) order."""
    axis = (np.arange(size) - (size - 1) / 2) * voxel_size
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1) + np.asarray(centre)


def carve(
    views: AFMViews,
    centre: np.ndarray,
    voxel_size: float,
    size: int = 32,
    margin: float = 0.0,
    n_views: int | None = None,
) -> np.ndarray:
    """Boolean (z, y, x) visual hull carved from the first ``n_views`` height images.

    Args:
        views: the AFM views (heights in Å, rotations, substrate floors, pixel size), in the
            canonical frame centred on the centroid that :func:`cryolab.afm.afm_views` uses.
        centre: grid centre (x, y, z) in Å in that frame; ``voxel_size`` in Å.
        size: grid side in voxels.
        margin: tolerance in Å added above each measured surface (and below the substrate).
        n_views: how many views to use (default all).
    """
    points = voxel_centres(centre, voxel_size, size)
    count = len(views.heights) if n_views is None else n_views
    n = views.heights.shape[-1]
    occupied = np.ones(len(points), dtype=bool)
    for height, rot, floor in zip(
        views.heights[:count], views.rotations[:count], views.floors[:count], strict=True
    ):
        p = rot.apply(points)
        col = np.rint(p[:, 0] / views.pixel_size + (n - 1) / 2).astype(int)
        row = np.rint(p[:, 1] / views.pixel_size + (n - 1) / 2).astype(int)
        seen = (col >= 0) & (col < n) & (row >= 0) & (row < n)
        surface = np.full(len(points), -np.inf)  # outside the image: nothing there
        surface[seen] = height[row[seen], col[seen]] + floor
        occupied &= (p[:, 2] <= surface + margin) & (p[:, 2] >= floor - margin)
    return occupied.reshape(size, size, size)
