"""Virtual atomic force microscopy: height images of a structure seen by a finite tip.

An AFM scans a sharp tip over a molecule lying on a flat substrate (mica) and records, at each
pixel, the height at which the tip first touches the sample. The simulator follows the
standard *tip–sample convolution* used by afmize and BioAFMviewer:

1. rotate the structure (a random orientation on the substrate) and rest it on the plane
   ``z = 0``;
2. the *height map* ``S(x, y)``: every atom is a sphere of its van der Waals radius and the
   height is the top of the highest sphere above each pixel centre (the substrate elsewhere);
3. the *tip*: a cone of half-angle ``alpha`` ending in a spherical apex of radius ``R``; its
   surface rises ``T(u)`` above the apex at a lateral offset ``u``. The apex height recorded at
   ``x`` is the lowest one at which the tip does not penetrate the sample anywhere::

       I(x) = max_u [ S(x + u) - T(u) ],

   a grey-scale dilation of ``S`` by the non-flat structuring element ``-T``;
4. optional Gaussian height noise.

Units: Å and degrees. Images are (row, column) = (y, x); the microscope looks down the ``-z``
axis of the rotated frame, so a point ``p`` (Å, centred on the structure) appears at column
``p_x / pixel + (n - 1) / 2`` and row ``p_y / pixel + (n - 1) / 2``.

The module needs only numpy and scipy (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .errors import ConfigError

__all__ = [
    "VDW_RADII",
    "vdw_radii",
    "principal_frame",
    "random_rotations",
    "height_map",
    "tip_profile",
    "grey_dilate",
    "tip_dilate",
    "shade",
    "Tip",
    "AFMViews",
    "afm_views",
    "bounding_radius",
    "occupancy_grid",
    "grid_geometry",
]

#: Bondi (1964) van der Waals radii in Å; other elements get :data:`DEFAULT_RADIUS`.
VDW_RADII = {
    "H": 1.20, "C": 1.70, "N": 1.55, "O": 1.52, "F": 1.47, "P": 1.80, "S": 1.80, "Cl": 1.75,
    "Br": 1.85, "I": 1.98, "Se": 1.90, "Na": 2.27, "K": 2.75, "Mg": 1.73, "Zn": 1.39,
    "Fe": 1.94, "Ca": 2.31, "Mn": 1.97, "Cu": 1.40,
}
DEFAULT_RADIUS = 1.80


def vdw_radii(elements: np.ndarray) -> np.ndarray:
    """Van der Waals radius in Å of each element symbol (Bondi; 1.8 Å when unknown).

    Each distinct symbol is looked up once (a structure has a handful among its atoms).
    """
    symbols, which = np.unique(np.asarray(elements, dtype=str), return_inverse=True)
    table = np.array([VDW_RADII.get(str(e).capitalize(), DEFAULT_RADIUS) for e in symbols],
                     dtype=np.float64)
    return table[which.reshape(-1)]


def principal_frame(xyz: np.ndarray) -> np.ndarray:
    """Coordinates (N, 3) Å in the structure's principal-axes frame, centred on the centroid.

    The longest axis of inertia becomes x, the shortest z; signs are fixed so that the third
    moment along each axis is non-negative. This is the *canonical frame* of the occupancy
    targets: a PDB file's own frame is arbitrary, so two similar complexes would otherwise
    have unrelated targets.
    """
    centred = np.asarray(xyz, dtype=np.float64) - np.mean(xyz, axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    out = centred @ vectors[:, ::-1]  # eigh sorts ascending: largest spread first
    signs = np.where(np.sum(out**3, axis=0) < 0, -1.0, 1.0)
    return out * signs


def random_rotations(n: int, rng: np.random.Generator) -> Rotation:
    """``n`` rotations drawn uniformly from SO(3) with ``rng``."""
    return Rotation.random(n, random_state=rng)


def bounding_radius(xyz: np.ndarray, radii: np.ndarray) -> float:
    """Radius in Å of the sphere about the centroid enclosing every atom's vdW sphere."""
    centred = np.asarray(xyz) - np.mean(xyz, axis=0)
    return float(np.max(np.linalg.norm(centred, axis=1) + radii))


# ------------------------------------------------------------------------------- height map


def height_map(
    xyz: np.ndarray,
    radii: np.ndarray,
    image_size: int,
    pixel_size: float,
    centre: np.ndarray | None = None,
    floor: float | None = None,
) -> np.ndarray:
    """Top surface (Å above the substrate) of a set of spheres seen from ``+z``.

    Args:
        xyz: (N, 3) atom centres x, y, z in Å (already rotated into the view frame).
        radii: (N,) sphere radii in Å.
        image_size: the image is ``image_size`` × ``image_size`` pixels.
        pixel_size: pixel edge in Å.
        centre: (x, y) in Å that falls on the image centre; default the centroid.
        floor: z in Å of the substrate plane; default the bottom of the lowest sphere, so the
            molecule rests on the substrate.

    Returns:
        (image_size, image_size) float64 heights ``z_top - floor`` ≥ 0 (0 on the substrate).

    Each atom touches only the pixels within its radius: all (atom, pixel offset) pairs are
    formed at once and reduced with ``np.maximum.at`` (no Python loop over atoms).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(xyz),))
    if pixel_size <= 0 or image_size < 1:
        raise ConfigError(f"pixel_size must be > 0 Å and image_size ≥ 1 (got {pixel_size}, "
                          f"{image_size})")
    centre = np.mean(xyz[:, :2], axis=0) if centre is None else np.asarray(centre)
    floor = float(np.min(xyz[:, 2] - radii)) if floor is None else float(floor)
    # fractional pixel coordinates of the atom centres
    col = (xyz[:, 0] - centre[0]) / pixel_size + (image_size - 1) / 2
    row = (xyz[:, 1] - centre[1]) / pixel_size + (image_size - 1) / 2
    reach = int(np.ceil(radii.max() / pixel_size))
    offsets = np.arange(-reach, reach + 1)
    dr, dc = (a.ravel() for a in np.meshgrid(offsets, offsets, indexing="ij"))
    pr = np.rint(row)[:, None].astype(np.int64) + dr[None, :]  # (N, K) candidate pixels
    pc = np.rint(col)[:, None].astype(np.int64) + dc[None, :]
    d2 = ((pr - row[:, None]) ** 2 + (pc - col[:, None]) ** 2) * pixel_size**2
    r2 = radii[:, None] ** 2
    hit = (d2 <= r2) & (pr >= 0) & (pr < image_size) & (pc >= 0) & (pc < image_size)
    top = xyz[:, 2:3] + np.sqrt(np.where(hit, r2 - d2, 0.0)) - floor
    image = np.zeros(image_size * image_size)
    np.maximum.at(image, pr[hit] * image_size + pc[hit], top[hit])
    return image.reshape(image_size, image_size)


# ---------------------------------------------------------------------------------- the tip


@dataclass(frozen=True)
class Tip:
    """An AFM tip: a cone of ``half_angle`` degrees ending in a sphere of ``radius`` Å.

    ``radius = 0`` and ``half_angle = 0`` is an ideal needle (the raw height map).
    """

    radius: float = 10.0
    half_angle: float = 10.0

    def __post_init__(self) -> None:
        if self.radius < 0 or not 0 <= self.half_angle < 90:
            raise ConfigError(
                f"tip radius must be ≥ 0 Å and half-angle in [0, 90)°, got {self.radius} Å, "
                f"{self.half_angle}°"
            )


def tip_profile(tip: Tip, pixel_size: float, max_height: float) -> np.ndarray:
    """Height ``T(u)`` in Å of the tip surface above its apex on a pixel grid.

    The grid is square and odd, centred on the apex, and just large enough to hold every
    offset where ``T(u) ≤ max_height``: farther parts of the tip can never touch a sample
    whose heights span less than ``max_height``, so cutting them off changes nothing.
    Offsets the tip cannot reach (a needle's sides) are ``+inf``.

    With ``alpha`` the half-angle, the cone is tangent to the apex sphere at lateral distance
    ``r_t = R cos(alpha)`` and height ``R (1 - sin(alpha))``:
    ``T(r) = R - sqrt(R² - r²)`` for ``r ≤ r_t``, else
    ``R (1 - sin(alpha)) + (r - r_t) / tan(alpha)``.
    """
    alpha = np.deg2rad(tip.half_angle)
    radius = tip.radius
    r_t = radius * np.cos(alpha)
    h_t = radius * (1 - np.sin(alpha))
    reach = r_t + max(max_height - h_t, 0.0) * np.tan(alpha)
    half = int(np.floor(reach / pixel_size))
    u = np.arange(-half, half + 1) * pixel_size
    r = np.hypot(u[:, None], u[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        sphere = radius - np.sqrt(np.maximum(radius**2 - r**2, 0.0))
        cone = h_t + (r - r_t) / np.tan(alpha) if alpha > 0 else np.full_like(r, np.inf)
    profile = np.where(r <= r_t, sphere, cone)
    profile[half, half] = 0.0
    return np.where(profile <= max_height, profile, np.inf)


def grey_dilate(images: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Grey-scale dilation ``out[x] = max_y (in[x - y] + s[y])`` over the last two axes.

    Same definition and boundary handling (``mode="nearest"``) as
    ``scipy.ndimage.grey_dilation(image, structure=s, mode="nearest")`` for an odd structure,
    but for a whole stack of images at once: one ``np.maximum`` per finite element of the
    structure over shifted views of the edge-padded stack. ``-inf`` elements are skipped, so a
    disc-shaped tip costs only its disc.
    """
    images = np.asarray(images, dtype=np.float64)
    structure = np.asarray(structure, dtype=np.float64)
    ky, kx = structure.shape
    if ky % 2 == 0 or kx % 2 == 0:
        raise ConfigError(f"the structuring element must have odd sides, got {structure.shape}")
    hy, hx = ky // 2, kx // 2
    pad = [(0, 0)] * (images.ndim - 2) + [(hy, hy), (hx, hx)]
    padded = np.pad(images, pad, mode="edge")
    ny, nx = images.shape[-2:]
    out = np.full(images.shape, -np.inf)
    for i, j in zip(*np.nonzero(np.isfinite(structure)), strict=True):
        # in[x - y] for y = (i - hy, j - hx) is padded[x - y + h]
        shifted = padded[..., 2 * hy - i : 2 * hy - i + ny, 2 * hx - j : 2 * hx - j + nx]
        np.maximum(out, shifted + structure[i, j], out=out)
    return out


def tip_dilate(heights: np.ndarray, tip: Tip, pixel_size: float) -> np.ndarray:
    """The AFM image of height map(s) ``heights`` (Å) scanned with ``tip``.

    ``I(x) = max_u [S(x + u) - T(u)]``, i.e. :func:`grey_dilate` with ``s[y] = -T(-y)``.
    """
    heights = np.asarray(heights, dtype=np.float64)
    span = float(heights.max() - heights.min())
    structure = -tip_profile(tip, pixel_size, span)[::-1, ::-1]
    return grey_dilate(heights, structure)


def shade(heights: np.ndarray, pixel_size: float, light: tuple[float, float, float] = (
        -1.0, 1.0, 1.5)) -> np.ndarray:
    """Lambertian shading in [0, 1] of a height surface lit from direction ``light`` (x, y, z).

    This is the paper's "rendered" mode: a shaded picture of the molecule's top surface
    rather than a height measurement.
    """
    gy, gx = np.gradient(np.asarray(heights, dtype=np.float64), pixel_size, axis=(-2, -1))
    normal = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    direction = np.asarray(light, dtype=np.float64) / np.linalg.norm(light)
    return np.clip(normal @ direction, 0.0, 1.0)


# ---------------------------------------------------------------------------- random views


@dataclass
class AFMViews:
    """Simulated AFM views of one structure.

    Attributes:
        images: (V, n, n) float32: heights in Å above the substrate ("height" mode) or
            shading in [0, 1] ("rendered" mode).
        heights: (V, n, n) float32 tip-dilated heights in Å (also kept in "rendered" mode, for
            space carving).
        quaternions: (V, 4) scalar-last unit quaternions of the rotations taking the canonical
            frame (centred on the centroid) to each view frame.
        floors: (V,) z in Å, in the centred view frame, of the substrate plane.
        pixel_size: Å per pixel.
    """

    images: np.ndarray
    heights: np.ndarray
    quaternions: np.ndarray
    floors: np.ndarray
    pixel_size: float

    @property
    def rotations(self) -> Rotation:
        """The view rotations as a scipy ``Rotation`` stack."""
        return Rotation.from_quat(self.quaternions)

    def select(self, index: np.ndarray | list[int]) -> AFMViews:
        """The views numbered ``index``, in that order."""
        index = np.asarray(index)
        return AFMViews(self.images[index], self.heights[index], self.quaternions[index],
                        self.floors[index], self.pixel_size)


def afm_views(
    xyz: np.ndarray,
    radii: np.ndarray,
    n_views: int,
    rng: np.random.Generator,
    image_size: int = 64,
    pixel_size: float | None = None,
    tip: Tip | None = None,
    noise: float = 0.0,
    mode: str = "height",
    rotations: Rotation | None = None,
) -> AFMViews:
    """Simulate ``n_views`` AFM images of a structure in uniformly random orientations.

    Args:
        xyz: (N, 3) atom positions in Å in the canonical frame (see :func:`principal_frame`).
        radii: (N,) vdW radii in Å.
        n_views: number of views.
        rng: random generator (orientations and noise).
        image_size: pixels per side.
        pixel_size: Å per pixel; default ``2 * bounding_radius / image_size``, so that the
            structure fills the image whatever its orientation.
        tip: the tip (default :class:`Tip` ``(10 Å, 10°)``); ``Tip(0, 0)`` for none.
        noise: standard deviation in Å of Gaussian height noise.
        mode: ``"height"`` (AFM height images) or ``"rendered"`` (shaded surfaces).
        rotations: use these instead of random orientations.
    """
    if mode not in ("height", "rendered"):
        raise ConfigError(f"unknown AFM mode {mode!r}; choose 'height' or 'rendered'")
    tip = Tip() if tip is None else tip
    centred = np.asarray(xyz, dtype=np.float64) - np.mean(xyz, axis=0)
    if pixel_size is None:
        pixel_size = 2 * bounding_radius(centred, radii) / image_size
    rot = random_rotations(n_views, rng) if rotations is None else rotations
    raw = np.empty((len(rot), image_size, image_size))
    floors = np.empty(len(rot))
    for v, r in enumerate(rot):
        view = r.apply(centred)
        floors[v] = np.min(view[:, 2] - radii)
        raw[v] = height_map(view, radii, image_size, pixel_size, np.zeros(2), floors[v])
    heights = tip_dilate(raw, tip, pixel_size)
    if noise > 0:
        heights = heights + rng.normal(0.0, noise, heights.shape)
    images = heights if mode == "height" else shade(heights, pixel_size)
    return AFMViews(
        images.astype(np.float32), heights.astype(np.float32), rot.as_quat(), floors,
        float(pixel_size),
    )


# ------------------------------------------------------------------------ occupancy targets


def grid_geometry(xyz: np.ndarray, radii: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Centre (x, y, z) Å and voxel size Å of the occupancy grid of a structure.

    The grid is centred on the centre of the bounding box of the atoms' spheres, and its
    voxel size makes the longest side of that box span the grid.
    """
    lo = np.min(xyz - radii[:, None], axis=0)
    hi = np.max(xyz + radii[:, None], axis=0)
    return (lo + hi) / 2, float(np.max(hi - lo) / size)


def occupancy_grid(
    xyz: np.ndarray,
    radii: np.ndarray,
    size: int = 32,
    oversample: int = 2,
    probe: float = 1.4,
) -> np.ndarray:
    """Boolean (z, y, x) occupancy grid of a structure, ``size`` voxels a side, its longest side
    filling it.

    As in the paper (a 256³ voxelisation down-sampled to 32³), the structure is first
    voxelised on a grid ``oversample`` times finer into its solvent-excluded volume (the
    spheres grown by a ``probe`` radius, then shrunk by it again — a morphological closing that
    fills packing gaps, with every atom given the mean radius), enclosed cavities are filled,
    and each coarse voxel is occupied when at least half of its fine voxels are.
    """
    from scipy import ndimage

    xyz = np.asarray(xyz, dtype=np.float64)
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(xyz),))
    centre, voxel = grid_geometry(xyz, radii, size)
    fine_n, fine_voxel = size * oversample, voxel / oversample
    # fractional fine index (z, y, x) of each atom
    index = (xyz[:, ::-1] - centre[::-1]) / fine_voxel + (fine_n - 1) / 2
    seeds = np.ones((fine_n,) * 3, dtype=bool)
    inside = np.all((index > -0.5) & (index < fine_n - 0.5), axis=1)
    seeds[tuple(np.rint(index[inside]).astype(int).T)] = False
    distance = ndimage.distance_transform_edt(seeds) * fine_voxel
    grown = distance <= float(np.mean(radii)) + probe
    fine = ndimage.distance_transform_edt(grown) * fine_voxel > probe
    fine = ndimage.binary_fill_holes(fine)
    blocks = fine.reshape(size, oversample, size, oversample, size, oversample)
    return blocks.mean(axis=(1, 3, 5)) >= 0.5
