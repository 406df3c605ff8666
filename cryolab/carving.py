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
from .errors import ConfigError

__all__ = ["voxel_centres", "depths", "prefix_depths", "carve", "carved", "backproject",
           "evidence", "hull_box"]


def voxel_centres(centre: np.ndarray, voxel_size: float, size: int) -> np.ndarray:
    """(size³, 3) x, y, z in Å of the centres of a cubic grid of ``size`` voxels a
    side, in (z, y, x) order."""
    axis = (np.arange(size) - (size - 1) / 2) * voxel_size
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1) + np.asarray(centre)


def depths(
    views: AFMViews,
    centre: np.ndarray,
    voxel_size: float,
    size: int = 32,
    n_views: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """How far below the measured surface and above the substrate each voxel centre lies.

    Every voxel centre of the cubic grid (``size`` voxels a side) is rotated into each view,
    projected onto the nearest pixel, and compared with the height measured there.

    Args:
        views: the AFM views (heights in Å, rotations, substrate floors, pixel size), in the
            canonical frame centred on the centroid that :func:`cryolab.afm.afm_views` uses.
        centre: grid centre (x, y, z) in Å in that frame; ``voxel_size`` in Å.
        size: grid side in voxels.
        n_views: how many views to use (default all).

    Returns:
        ``(below, above)``, each (V, size³) in Å: the measured surface minus the voxel's
        height (``-inf`` where the voxel projects outside the image), and the voxel's height
        minus the substrate's. A voxel can be occupied only where both are ≥ 0.
    """
    points = voxel_centres(centre, voxel_size, size)
    count = len(views.heights) if n_views is None else n_views
    n = views.heights.shape[-1]
    p = np.einsum("vij,pj->vpi", views.rotations[:count].as_matrix(), points)  # (V, P, 3)
    col = np.rint(p[..., 0] / views.pixel_size + (n - 1) / 2).astype(int)
    row = np.rint(p[..., 1] / views.pixel_size + (n - 1) / 2).astype(int)
    seen = (col >= 0) & (col < n) & (row >= 0) & (row < n)
    floors = np.asarray(views.floors[:count], dtype=np.float64)[:, None]
    heights = np.asarray(views.heights[:count], dtype=np.float64)
    view = np.broadcast_to(np.arange(count)[:, None], seen.shape)
    surface = np.full(seen.shape, -np.inf)  # outside the image: nothing there
    surface[seen] = heights[view[seen], row[seen], col[seen]]
    return surface + floors - p[..., 2], p[..., 2] - floors


def prefix_depths(
    views: AFMViews,
    centre: np.ndarray,
    voxel_size: float,
    size: int,
    counts: list[int] | tuple[int, ...],
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """:func:`depths` of the first ``V`` views for each ``V`` in ``counts``, every voxel
    projected into each view once: the rows of the largest count are shared (row ``k`` is
    view ``k``'s whatever the number of views)."""
    below, above = depths(views, centre, voxel_size, size, max(counts))
    return {v: (below[:v], above[:v]) for v in counts}


def carved(below: np.ndarray, above: np.ndarray, size: int, margin: float = 0.0) -> np.ndarray:
    """Boolean (z, y, x) visual hull from :func:`depths`: the voxels that lie, in every view,
    no more than ``margin`` Å above the measured surface and below the substrate."""
    occupied = np.all((below >= -margin) & (above >= -margin), axis=0)
    return occupied.reshape(size, size, size)


def carve(
    views: AFMViews,
    centre: np.ndarray,
    voxel_size: float,
    size: int = 32,
    margin: float = 0.0,
    n_views: int | None = None,
) -> np.ndarray:
    """Boolean (z, y, x) visual hull carved from the first ``n_views`` height images.

    A voxel survives when, in every view, it lies no more than ``margin`` Å above the
    measured surface and below the substrate (arguments as :func:`depths`).
    """
    return carved(*depths(views, centre, voxel_size, size, n_views), size, margin)


def evidence(below: np.ndarray, above: np.ndarray, voxel_size: float, size: int,
             clip: float = 3.0) -> np.ndarray:
    """The soft visual hull (2, size, size, size) float32 of :func:`backproject`, from
    :func:`depths` (Å) of its views."""
    below, above = (np.clip(d / voxel_size, -clip, clip) / clip for d in (below, above))
    hull = np.minimum(below, above).min(axis=0)
    volumes = np.stack([hull, below.mean(axis=0)]).astype(np.float32)
    return volumes.reshape(2, size, size, size)


def backproject(
    views: AFMViews,
    centre: np.ndarray,
    voxel_size: float,
    size: int = 32,
    n_views: int | None = None,
    clip: float = 3.0,
) -> np.ndarray:
    """A soft visual hull: (2, size, size, size) float32 evidence volumes in [-1, 1].

    Channel 0 is the carving test made continuous: the smallest, over views, of the voxel's
    depth below the surface and height above the substrate, in voxels, clipped to ``±clip``
    and divided by ``clip`` (> 0 inside the hull, < 0 carved away). Channel 1 is the mean
    over views of the clipped depth below the surface: how deep inside the views agree the
    voxel is. Arguments as :func:`depths`.
    """
    return evidence(*depths(views, centre, voxel_size, size, n_views), voxel_size, size, clip)


def hull_box(views: AFMViews, size: int = 32, fine: int = 64) -> tuple[np.ndarray, float]:
    """Grid centre (x, y, z) Å and voxel size Å of a cubic grid of ``size`` voxels a side,
    estimated from the views alone: the bounding box of the visual hull carved on a cubic grid
    of ``fine`` voxels a side spanning the image (the structure's centroid is at the image
    centre in every view).

    The box is what :func:`cryolab.afm.grid_geometry` gives from the atoms when the views
    see the whole structure; with few views, or a blunt tip, it is larger.
    """
    step = views.heights.shape[-1] * views.pixel_size / fine
    hull = carve(views, np.zeros(3), step, fine)
    if not hull.any():
        raise ConfigError("the views carve away the whole field of view: are the heights in Å "
                          "and the orientations those of these views?")
    occupied = np.argwhere(hull)  # (z, y, x)
    lo = (occupied.min(axis=0) - (fine - 1) / 2 - 0.5) * step
    hi = (occupied.max(axis=0) - (fine - 1) / 2 + 0.5) * step
    return ((lo + hi) / 2)[::-1], float(np.max(hi - lo) / size)
