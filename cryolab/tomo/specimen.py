"""Specimen models for the tomogram simulator: particles, vesicles, filaments, carbon, gold, ice.

The specimen is a potential map on a (z, y, x) grid whose voxels hold the *sum of atomic
numbers* they contain, the stand-in for the scattering potential that cryo-TomoSim (CTS) uses.
Bulk materials are given the same unit through their electron densities (atomic number per Å³):

========================  =========  ==========================================
material                  e⁻ / Å³    source
========================  =========  ==========================================
vitreous ice              0.314      0.94 g/cm³ water, 10 e⁻ per molecule
protein                   0.43       1.35 g/cm³
lipid head groups         0.47       peaks of the bilayer profile
lipid tails               0.30       trough between the peaks
amorphous carbon          0.60       2.0 g/cm³
gold                      4.66       19.3 g/cm³, Z = 79
========================  =========  ==========================================

Every class of object (one per particle type, ``membrane``, ``carbon``, ``gold``, filaments)
is kept as its own volume (:class:`ClassVolumes`: the blocks its objects added, not a whole
grid per class); :meth:`Specimen.atlas` labels each voxel with the class that holds the most
potential there (0 = background / ice). Whole-grid work (ice, potential, atlas) goes slab by
slab along z, so a specimen needs about 4 bytes per voxel (its ice) plus its objects' blocks
and the instance labels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..density import splat
from ..errors import ConfigError
from ..io import Volume
from ..validation import grid_memory, number

__all__ = [
    "ICE_DENSITY",
    "PROTEIN_DENSITY",
    "Particle",
    "Placement",
    "Layer",
    "VesicleConfig",
    "SpecimenConfig",
    "Specimen",
    "ClassVolumes",
    "ParticleSource",
    "voxelize_atoms",
    "rotate_density",
    "vesicle",
    "build_specimen",
    "add_filaments",
    "axis_distance",
]

ICE_DENSITY = 0.314  # e-/Å³
PROTEIN_DENSITY = 0.43
LIPID_HEAD_DENSITY = 0.47
LIPID_TAIL_DENSITY = 0.30
CARBON_DENSITY = 0.60
GOLD_DENSITY = 4.66

# ------------------------------------------------------------------------------- particles


@dataclass(frozen=True)
class Particle:
    """One kind of particle on the specimen grid.

    Attributes:
        name: class name (used in the atlas).
        density: cube (z, y, x) of atomic-number sums per voxel, centred, big enough for any
            rotation (edge = the particle's diameter).
        pixel_size: voxel edge in Å.
        membrane: True for a membrane protein (z axis = membrane normal).
    """

    name: str
    density: np.ndarray
    pixel_size: float
    membrane: bool = False

    @property
    def mask(self) -> np.ndarray:
        """Voxels the particle occupies (a 1-voxel-smoothed density above 10 % of its peak)."""
        return _mask_of(self.density)


#: Where particles come from: ``particles(name, pixel_size) -> Particle``.
ParticleSource = Callable[[str, float], Particle]


def _mask_of(density: np.ndarray) -> np.ndarray:
    smooth = ndimage.gaussian_filter(density, 1.0)
    return smooth > 0.1 * smooth.max()


def _pad_to_sphere(density: np.ndarray) -> np.ndarray:
    """Pad a centred box into a cube whose edge is its diagonal, so any rotation fits."""
    mask = _mask_of(density)
    centre = (np.array(density.shape) - 1) / 2
    pts = np.argwhere(mask)
    radius = np.sqrt(((pts - centre) ** 2).sum(1)).max() if len(pts) else 1.0
    edge = int(2 * math.ceil(radius + 2) + 1)
    out = np.zeros((edge,) * 3, np.float32)
    # crop or pad each axis around the centre
    src, dst = [], []
    for n in density.shape:
        lo = (n - edge) / 2
        if lo >= 0:
            s = int(round(lo))
            src.append(slice(s, s + edge))
            dst.append(slice(0, edge))
        else:
            d = int(round(-lo))
            src.append(slice(0, n))
            dst.append(slice(d, d + n))
    out[tuple(dst)] = density[tuple(src)]
    return out


def voxelize_atoms(
    xyz: np.ndarray, atomic_number: np.ndarray, pixel_size: float, edge: int | None = None
) -> np.ndarray:
    """Accumulate each atom's atomic number into the voxel that holds it.

    Args:
        xyz: (N, 3) atom positions x, y, z in Å.
        atomic_number: (N,) weights (atomic numbers).
        pixel_size: voxel edge in Å.
        edge: cube edge in voxels; default just big enough for any rotation about the centroid.

    Returns:
        (edge, edge, edge) float32 cube in (z, y, x) order with the centroid at its centre.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    rel = (xyz - xyz.mean(0)) / pixel_size
    if edge is None:
        edge = int(2 * math.ceil(np.sqrt((rel**2).sum(1)).max() + 2) + 1)
    grid = splat(rel[:, ::-1] + edge / 2, atomic_number, (edge,) * 3, linear=False)
    return grid.astype(np.float32)


def _stamp(out: np.ndarray, index: np.ndarray, kernel: np.ndarray) -> None:
    """Add a copy of ``kernel`` (an odd cube) centred on each point of ``index`` (N, 3;
    fractional z, y, x voxels) to ``out``, shared between the 8 voxels around the point with
    trilinear weights (a share whose voxel is off the grid is dropped): the convolution of
    the points splatted trilinearly (:func:`~cryolab.density.splat`) with the kernel, without
    a grid of points, and exactly 0 where no kernel reaches (an FFT would leave rounding noise
    everywhere)."""
    half = kernel.shape[0] // 2
    base = np.floor(index).astype(int)
    frac = index - base
    for point, f in zip(base, frac, strict=True):
        for corner in np.ndindex(2, 2, 2):
            at = point + corner
            if np.any(at < 0) or np.any(at >= out.shape):  # a share off the grid is dropped
                continue
            weight = np.prod(np.where(corner, f, 1 - f))
            lo = at - half
            src, dst = [], []
            for a in range(3):
                a0, a1 = max(lo[a], 0), min(lo[a] + kernel.shape[a], out.shape[a])
                if a0 >= a1:
                    break
                dst.append(slice(a0, a1))
                src.append(slice(a0 - lo[a], a1 - lo[a]))
            else:
                out[tuple(dst)] += np.float32(weight) * kernel[tuple(src)]


def _zyx_matrix(rotation: Rotation) -> np.ndarray:
    """A rotation's matrix acting on (z, y, x) vectors."""
    return rotation.as_matrix()[::-1, ::-1]


def rotate_density(density: np.ndarray, rotation: Rotation) -> np.ndarray:
    """Rotate a centred cube about its centre (trilinear; ``rotation`` acts on x, y, z)."""
    inverse = _zyx_matrix(rotation).T
    centre = (np.array(density.shape) - 1) / 2
    out = ndimage.affine_transform(
        density, inverse, offset=centre - inverse @ centre, order=1, mode="constant"
    )
    return np.clip(out, 0, None)


# ---------------------------------------------------------------------------- configuration


@dataclass
class Layer:
    """Particles placed together: each placement picks one of ``particles`` at random.

    Attributes:
        particles: particle names (see :func:`cryolab.tomo.particles.load_particle`).
        density: stop when the layer occupies this fraction of the ice volume.
        iterations: stop after this many placement attempts.
    """

    particles: list[str]
    density: float = 0.2
    iterations: int = 500

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """:class:`ConfigError` for a value of the wrong type, not finite, or out of range."""
        if not isinstance(self.particles, (list, tuple)) or not self.particles or not all(
                isinstance(p, str) for p in self.particles):
            raise ConfigError(f"particles must be a non-empty list of names, got "
                              f"{self.particles!r}")
        number(self.density, "density", "(fraction of the ice volume)", gt=0, le=1)
        number(self.iterations, "iterations", integer=True, ge=0)


@dataclass
class VesicleConfig:
    """Lipid vesicles, optionally studded with membrane proteins.

    Attributes:
        count: number of vesicles to try to place.
        radius: (min, max) radius in Å to the bilayer's mid-plane (clamped to fit the ice).
        irregularity: 0 = sphere; ~0.3 = clearly irregular.
        proteins: membrane-protein names (``*_mb`` templates).
        protein_density: proteins per 10⁴ Å² of membrane (a cap; overlaps are rejected).
    """

    count: int = 0
    radius: tuple[float, float] = (250.0, 500.0)
    irregularity: float = 0.2
    proteins: list[str] = field(default_factory=list)
    protein_density: float = 0.2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """:class:`ConfigError` for a value of the wrong type, not finite, or out of range."""
        number(self.count, "count", "vesicles", integer=True, ge=0)
        if not isinstance(self.radius, (list, tuple)) or len(self.radius) != 2:
            raise ConfigError(f"radius must be (min, max) in Å, got {self.radius!r}")
        lo = number(self.radius[0], "radius[0]", "Å", gt=0)
        number(self.radius[1], "radius[1]", "Å", ge=lo)
        number(self.irregularity, "irregularity", ge=0, le=1)
        if not isinstance(self.proteins, (list, tuple)) or not all(
                isinstance(p, str) for p in self.proteins):
            raise ConfigError(f"proteins must be a list of names, got {self.proteins!r}")
        number(self.protein_density, "protein_density", "per 10⁴ Å²", ge=0)


@dataclass
class SpecimenConfig:
    """What the specimen holds.

    Attributes:
        size: edge lengths in Å in (x, y, z) order, as a microscopist gives a field of view
            and an ice thickness (z); :attr:`shape` is the grid in the arrays' (z, y, x) order.
        pixel_size_a: voxel edge in Å.
        layers: particle layers, filled in turn.
        vesicles: vesicle settings.
        microtubules: number of microtubules (built from the tubulin template).
        gold: number of gold fiducials.
        gold_radius: fiducial radius in Å.
        carbon: add a carbon support film with a circular hole whose edge is in view.
        carbon_hole_radius: hole radius in Å (default 4 × the field of view).
        ice_texture: relative amplitude of the ice's random texture.
        orientations: rotated copies cached per particle kind (placements draw from them).
        memory_limit_gb: refuse boxes whose volumes would need more than this.
    """

    size: tuple[float, float, float] = (2000.0, 2000.0, 500.0)
    pixel_size_a: float = 10.0
    layers: list[Layer] = field(default_factory=list)
    vesicles: VesicleConfig = field(default_factory=VesicleConfig)
    microtubules: int = 0
    gold: int = 0
    gold_radius: float = 50.0
    carbon: bool = False
    carbon_hole_radius: float | None = None
    ice_texture: float = 0.05
    orientations: int = 24
    memory_limit_gb: float = 8.0

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (z, y, x) in voxels."""
        x, y, z = (int(round(s / self.pixel_size_a)) for s in self.size)
        return (z, y, x)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """:class:`ConfigError` for a value of the wrong type, not finite, or out of range, or
        a box too large for memory (checked when the configuration is made)."""
        pixel = number(self.pixel_size_a, "pixel_size_a", "Å", gt=0, le=1000)
        if not isinstance(self.size, (list, tuple)) or len(self.size) != 3:
            raise ConfigError(f"size must be three lengths (x, y, z) in Å, got {self.size!r}")
        for axis, length in zip("xyz", self.size, strict=True):
            number(length, f"size {axis}", "Å", gt=0)
        shape = self.shape
        if min(shape) < 8:
            raise ConfigError(f"box {shape[::-1]} voxels is too small (min 8); use a smaller "
                              "pixel_size_a or a larger size")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigError(f"layers[{i}] must be a layer, got {layer!r}")
        if not isinstance(self.vesicles, VesicleConfig):
            raise ConfigError(f"vesicles must be vesicle settings, got {self.vesicles!r}")
        for name in ("microtubules", "gold", "orientations"):
            number(getattr(self, name), name, integer=True, ge=1 if name == "orientations" else 0)
        number(self.gold_radius, "gold_radius", "Å", gt=0)
        if self.carbon_hole_radius is not None:
            number(self.carbon_hole_radius, "carbon_hole_radius", "Å", gt=0)
        if not isinstance(self.carbon, bool):
            raise ConfigError(f"carbon must be true or false, got {self.carbon!r}")
        number(self.ice_texture, "ice_texture", ge=0)
        limit = number(self.memory_limit_gb, "memory_limit_gb", "GB", gt=0)
        grid_memory(shape[::-1], f"pixel_size_a {pixel:g} Å", bytes_per_voxel=BYTES_PER_VOXEL,
                    limit_gb=limit, advice="use a larger pixel_size_a or a smaller size")
        if self.microtubules and self.size[2] < 280:
            raise ConfigError(f"microtubules (250 Å wide) need ice ≥ 280 Å thick, got "
                              f"{self.size[2]} Å")


# ------------------------------------------------------------------------------- specimen


@dataclass
class Placement:
    """One placed object: class name, centre (z, y, x) in voxels, rotation (x, y, z Euler
    angles, degrees, extrinsic), the voxels it occupies in the box, and how many of those it
    shares with earlier objects (only membrane proteins, which cross their vesicle's
    membrane, may share any)."""

    name: str
    centre: tuple[int, int, int]
    euler_xyz: tuple[float, float, float]
    n_voxels: int
    shared: int = 0


#: peak memory of a simulation per voxel of its box, a bound with margin: ``simulate-tomo``
#: (streamed) measured 12–17 B above the imports at 400²–800² × 80 voxels
#: (``benchmarks/bench_tomo.py``); an in-memory :func:`~cryolab.tomo.simulate.simulate` also
#: holds its results (about 20 B)
BYTES_PER_VOXEL = 24

#: z planes per slab of the whole-grid passes (ice, potential, atlas)
SLAB = 16
#: the whole grid, as a box
ALL = (slice(None),) * 3
#: widest block (voxels in y and x) that :class:`ClassVolumes` keeps uncut
TILE = 64


def _slabs(n: int) -> Iterator[tuple[int, int]]:
    """First and end plane of each slab of :data:`SLAB` planes along z (of ``n``)."""
    for z0 in range(0, n, SLAB):
        yield z0, min(z0 + SLAB, n)


class ClassVolumes(Mapping):
    """The potential of each class (atomic-number sums per voxel), kept as the blocks its
    objects added: a float32 block and the (z, y, x) voxel where it starts. A specimen so
    holds about its objects' voxels rather than one grid per class.

    Reading a class (``volumes[name]``) gives its whole (z, y, x) float32 grid, and
    :meth:`slab` a range of z planes of it; either sums the blocks in the order they were
    added, so the values are those of adding each object to a grid of zeros.
    """

    def __init__(self, shape: tuple[int, int, int]):
        self.shape = tuple(int(n) for n in shape)
        self._blocks: dict[str, list[tuple[tuple[int, ...], np.ndarray]]] = {}

    def add(self, name: str, box: tuple[slice, ...], block: np.ndarray) -> None:
        """Add ``block`` (float32) to class ``name`` at the box's slices. A block wider than
        :data:`TILE` voxels in y or x is cut into tiles of that width, and each tile is
        trimmed of its all-zero margins and dropped when empty: a film or a filament crossing
        the grid keeps about the voxels it reaches."""
        blocks = self._blocks.setdefault(name, [])
        start = [int(b.start or 0) for b in box]
        for y in range(0, block.shape[1], TILE):
            for x in range(0, block.shape[2], TILE):
                tile = block[:, y:y + TILE, x:x + TILE]
                nonzero = [np.flatnonzero(tile.any(axis=tuple(a for a in range(3) if a != axis)))
                           for axis in range(3)]
                if any(len(n) == 0 for n in nonzero):
                    continue
                trim = tuple(slice(n[0], n[-1] + 1) for n in nonzero)
                corner = (start[0] + trim[0].start, start[1] + y + trim[1].start,
                          start[2] + x + trim[2].start)
                piece = np.asarray(tile[trim], np.float32)
                if piece.base is not None and piece.size < piece.base.size:
                    piece = piece.copy()  # a cut of a larger grid: do not keep the grid alive
                blocks.append((corner, piece))

    def slab(self, name: str, z0: int, z1: int) -> np.ndarray:
        """Planes ``z0:z1`` of class ``name``'s grid."""
        out = np.zeros((z1 - z0, *self.shape[1:]), np.float32)
        for corner, block in self._blocks[name]:
            lo, hi = max(corner[0], z0), min(corner[0] + block.shape[0], z1)
            if lo < hi:
                y, x = corner[1], corner[2]
                out[lo - z0:hi - z0, y:y + block.shape[1], x:x + block.shape[2]] += \
                    block[lo - corner[0]:hi - corner[0]]
        return out

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._blocks:
            raise KeyError(name)
        return self.slab(name, 0, self.shape[0])

    def __iter__(self) -> Iterator[str]:
        return iter(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    def copy(self, drop: str | None = None) -> ClassVolumes:
        """Another set with the same blocks (shared, never changed in place), less class
        ``drop``."""
        other = ClassVolumes(self.shape)
        other._blocks = {k: list(v) for k, v in self._blocks.items() if k != drop}
        return other

    def nbytes(self) -> int:
        """Bytes the blocks hold."""
        return sum(b.nbytes for blocks in self._blocks.values() for _, b in blocks)


@dataclass
class Specimen:
    """A specimen model.

    Attributes:
        classes: each class's potential (atomic-number sums per voxel) as
            :class:`ClassVolumes`; ``classes[name]`` is its (z, y, x) float32 grid.
        ice: the vitreous ice volume (excluded where other matter is); None once
            :meth:`take_potential` has used it.
        instances: label of the placed object (index into ``placements`` + 1) per voxel:
            uint16 while there are fewer than 65 536 objects, else int32.
        placements: every placed object.
        pixel_size: voxel edge in Å.
    """

    classes: ClassVolumes
    ice: np.ndarray | None
    instances: np.ndarray
    placements: list[Placement]
    pixel_size: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.classes.shape  # type: ignore[return-value]

    @property
    def potential(self) -> np.ndarray:
        """The whole specimen: ice plus every class (added slab by slab, class after class)."""
        return dataclasses.replace(self, ice=self.ice.copy()).take_potential().data

    def take_potential(self) -> Volume:
        """:attr:`potential_map` computed in place of the ice, which saves a grid; the
        specimen has no ice afterwards (``ice`` is None): for a caller done with it."""
        total, self.ice = self.ice, None
        for z0, z1 in _slabs(self.shape[0]):
            for name in self.classes:
                total[z0:z1] += self.classes.slab(name, z0, z1)
        return Volume(total, self.pixel_size, 0.0)

    @property
    def potential_map(self) -> Volume:
        """:attr:`potential` on its grid: voxels of :attr:`pixel_size` Å, origin 0."""
        return Volume(self.potential, self.pixel_size, 0.0)

    def overlap_free(self) -> bool:
        """True when no two placed objects share a voxel, except membrane proteins with the
        vesicle they cross: the labelled voxels add up to the placements' own voxels."""
        if any(p.shared and not p.name.endswith("_mb") for p in self.placements):
            return False
        expected = sum(p.n_voxels - p.shared for p in self.placements)
        return int(np.count_nonzero(self.instances)) == expected

    @property
    def class_names(self) -> list[str]:
        """Atlas label -> name: index 0 is ``background``."""
        return ["background", *self.classes]

    def class_threshold(self) -> float:
        """Potential per voxel above which a class claims the voxel (5 % of protein)."""
        return 0.05 * PROTEIN_DENSITY * self.pixel_size**3

    def atlas(self) -> np.ndarray:
        """uint8 labels: argmax over the class volumes where one exceeds
        :meth:`class_threshold`, else 0 (background / ice); slab by slab along z, the first
        class winning ties, as ``np.argmax`` does."""
        labels = np.zeros(self.shape, np.uint8)
        for z0, z1 in _slabs(self.shape[0]):
            best, part = None, labels[z0:z1]
            for label, name in enumerate(self.classes, start=1):
                values = self.classes.slab(name, z0, z1)
                if best is None:
                    best = values
                    part[:] = label
                    continue
                better = values > best
                part[better] = label
                best[better] = values[better]
            if best is not None:
                part[best <= self.class_threshold()] = 0
        return labels


class _Builder:
    """Places objects into a box, tracking occupancy."""

    def __init__(self, cfg: SpecimenConfig, rng: np.random.Generator,
                 particles: ParticleSource | None):
        self.cfg = cfg
        self.rng = rng
        self.particle = particles or _no_particles
        self.px = float(cfg.pixel_size_a)
        self.shape = cfg.shape
        self.classes = ClassVolumes(self.shape)
        self.occupied = np.zeros(self.shape, bool)
        self.membrane = np.zeros(self.shape, bool)
        self.instances = np.zeros(self.shape, np.uint16)
        self.placements: list[Placement] = []
        self._pools: dict[str, list] = {}

    def label(self, box: tuple[slice, ...], mask: np.ndarray, placement: Placement) -> None:
        """Record ``placement`` and write its label into the ``mask`` voxels of ``box``."""
        self.placements.append(placement)
        if len(self.placements) > np.iinfo(self.instances.dtype).max:
            self.instances = self.instances.astype(np.int32)
        self.instances[box][mask] = len(self.placements)

    # -- generic placement of a small dense block --------------------------------------
    def _window(self, centre: np.ndarray, shape: tuple[int, ...]):
        """Slices of the box and of a block of ``shape`` centred at ``centre`` (clipped)."""
        box, blk = [], []
        for c, n, size in zip(centre, shape, self.shape, strict=True):
            lo = int(c) - n // 2
            a, b = max(lo, 0), min(lo + n, size)
            if a >= b:
                return None
            box.append(slice(a, b))
            blk.append(slice(a - lo, b - lo))
        return tuple(box), tuple(blk)

    def try_place(self, name: str, density: np.ndarray, mask: np.ndarray, centre: np.ndarray,
                  euler: tuple[float, float, float], ignore_membrane: bool = False) -> bool:
        win = self._window(centre, mask.shape)
        if win is None:
            return False
        box, blk = win
        m = mask[blk]
        busy = self.occupied[box]
        if ignore_membrane:
            busy = busy & ~self.membrane[box]
        if np.any(busy & m):
            return False
        self.occupied[box] |= m
        self.classes.add(name, box, density[blk])
        shared = int(np.count_nonzero(self.instances[box][m]))
        self.label(box, m, Placement(name, tuple(int(c) for c in centre), euler, int(m.sum()),
                                     shared))
        return True

    def _oriented(self, particle: Particle) -> tuple[np.ndarray, np.ndarray, tuple]:
        """A random orientation from the particle's pool (rotated lazily, then cached)."""
        pool = self._pools.setdefault(particle.name, [None] * self.cfg.orientations)
        i = int(self.rng.integers(len(pool)))
        if pool[i] is None:
            rot = Rotation.random(random_state=self.rng)
            dens = rotate_density(particle.density, rot)
            mask = _mask_of(dens)
            zz, yy, xx = np.nonzero(mask)
            # crop to the mask's bounding box, keeping the centre in the middle
            c = (np.array(dens.shape) - 1) // 2
            half = np.max(np.abs(np.stack([zz, yy, xx]).T - c), axis=0) + 1
            sl = tuple(slice(ci - h, ci + h + 1) for ci, h in zip(c, half, strict=True))
            pool[i] = (dens[sl], mask[sl], tuple(rot.as_euler("xyz", degrees=True)))
        return pool[i]

    # -- layers ---------------------------------------------------------------------------
    def fill_layer(self, layer: Layer) -> int:
        particles = [self.particle(n, self.px) for n in layer.particles]
        cap = layer.density * self.occupied.size
        filled, placed, too_tall = 0, 0, set()
        nz, ny, nx = self.shape
        for _ in range(layer.iterations):
            if filled >= cap:
                break
            p = particles[int(self.rng.integers(len(particles)))]
            dens, mask, euler = self._oriented(p)
            hz = mask.shape[0] // 2
            if 2 * hz + 1 > nz:  # this orientation does not fit in the ice
                too_tall.add(p.name)
                continue
            centre = np.array([self.rng.integers(hz, nz - hz), self.rng.integers(ny),
                               self.rng.integers(nx)])
            if self.occupied[tuple(centre)]:
                continue
            if self.try_place(p.name, dens, mask, centre, euler):
                filled += self.placements[-1].n_voxels
                placed += 1
        if not placed and too_tall:
            raise ConfigError(f"particles {sorted(too_tall)} do not fit in {nz * self.px:.0f} Å "
                              f"of ice; use thicker ice (specimen.size z)")
        return placed

    # -- vesicles -------------------------------------------------------------------------
    def vesicles(self) -> None:
        vc = self.cfg.vesicles
        nz = self.shape[0]
        half_ice = nz * self.px / 2
        for _ in range(vc.count * 20):
            if sum(p.name == "membrane" for p in self.placements) >= vc.count:
                break
            outer = 25.0 * (1 + vc.irregularity) + 2 * self.px
            r_max = min(vc.radius[1], half_ice / (1 + vc.irregularity) - outer)
            if r_max < 50:
                raise ConfigError(f"specimen.vesicles: {nz * self.px:.0f} Å of ice is too thin "
                                  f"for vesicles; use thicker ice or no vesicles")
            radius = self.rng.uniform(min(vc.radius[0], r_max), r_max)
            density, mask, lumen, mid = vesicle(radius, self.px, vc.irregularity, self.rng)
            hz = mask.shape[0] // 2
            centre = np.array([self.rng.integers(hz, nz - hz) if nz > 2 * hz else nz // 2,
                               self.rng.integers(self.shape[1]), self.rng.integers(self.shape[2])])
            if self.try_place("membrane", density, mask | lumen, centre, (0.0, 0.0, 0.0)):
                box, blk = self._window(centre, mask.shape)
                # membrane proteins may cross this vesicle's membrane and reach into its lumen
                self.membrane[box] |= (mask | lumen)[blk]
                if vc.proteins:
                    surface = np.argwhere(mid) - mask.shape[0] // 2 + centre
                    inside = np.all((surface >= 0) & (surface < self.shape), axis=1)
                    self._membrane_proteins(centre, radius, surface[inside], vc)

    def _membrane_proteins(self, centre: np.ndarray, radius: float, surface: np.ndarray,
                           vc: VesicleConfig) -> None:
        """Insert membrane proteins through the vesicle membrane, their z axis along the
        local normal (taken as the radial direction) and a random spin about it."""
        particles = [self.particle(n, self.px) for n in vc.proteins]
        n_target = int(round(vc.protein_density * 4 * np.pi * radius**2 / 1e4))
        if not len(surface) or not n_target:
            return
        placed = 0
        for _ in range(n_target * 3):
            if placed >= n_target:
                break
            p = particles[int(self.rng.integers(len(particles)))]
            point = surface[int(self.rng.integers(len(surface)))]
            if self.occupied[tuple(point)] and not self.membrane[tuple(point)]:
                continue
            spin = Rotation.from_euler("z", self.rng.uniform(0, 360), degrees=True)
            rot = _rotation_from_z((point - centre)[::-1].astype(float)) * spin
            dens = rotate_density(p.density, rot)
            mask = _mask_of(dens)
            placed += self.try_place(p.name, dens, mask, point,
                                     tuple(rot.as_euler("xyz", degrees=True)),
                                     ignore_membrane=True)

    # -- filaments ------------------------------------------------------------------------
    def microtubules(self, count: int) -> None:
        """Straight 13-protofilament microtubules lying in the ice plane, crossing the view."""
        tubulin = self.particle("tubulin", self.px)
        nz, ny, nx = self.shape
        for _ in range(count * 10):
            if sum(p.name == "microtubule" for p in self.placements) >= count:
                break
            psi = self.rng.uniform(0, np.pi)
            through = np.array([nz / 2, self.rng.uniform(0.2, 0.8) * ny,
                                self.rng.uniform(0.2, 0.8) * nx])
            points = _microtubule_lattice(self.px, float(np.hypot(ny, nx)) * self.px)
            # map the lattice (axis along local x) onto the filament direction
            spin = Rotation.from_euler("x", self.rng.uniform(0, 360), degrees=True)
            frame = Rotation.from_euler("z", psi)  # lattice axis x -> the filament direction
            xyz = (frame * spin).apply(points) / self.px
            zyx = xyz[:, ::-1] + through
            # the tube lies in the ice plane: work in the z planes its monomers and lumen reach
            reach = tubulin.density.shape[0] // 2 + 2
            z0 = max(0, int(min(zyx[:, 0].min(), through[0] - 125.0 / self.px)) - reach)
            z1 = min(nz, int(max(zyx[:, 0].max(), through[0] + 125.0 / self.px)) + reach + 1)
            box = (slice(z0, z1), slice(None), slice(None))
            density = np.zeros((z1 - z0, ny, nx), np.float32)
            _stamp(density, zyx - [z0, 0, 0], tubulin.density)
            direction = (0.0, np.sin(psi), np.cos(psi))  # z, y, x
            lumen = np.concatenate([
                axis_distance((min(SLAB, z1 - z), ny, nx), through - [z, 0, 0], direction)
                <= 125.0 / self.px for z in range(z0, z1, SLAB)])
            mask = (density > 0.1 * density.max()) | lumen
            if np.any(self.occupied[box] & mask):
                continue
            self.occupied[box] |= mask
            self.classes.add("microtubule", box, density)
            self.label(box, mask, Placement("microtubule", tuple(int(c) for c in through),
                                            (0.0, 0.0, float(np.degrees(psi))), int(mask.sum())))

    # -- gold, carbon -------------------------------------------------------------------
    def gold(self, count: int, radius: float) -> None:
        r = radius / self.px
        half = int(math.ceil(r)) + 1
        ax = np.arange(-half, half + 1)
        z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
        dist = np.sqrt(x**2 + y**2 + z**2)
        ball = np.clip(r + 0.5 - dist, 0, 1).astype(np.float32)  # anti-aliased sphere
        density = ball * GOLD_DENSITY * self.px**3
        mask = ball > 0
        nz, ny, nx = self.shape
        placed = 0
        for _ in range(count * 20):
            if placed >= count:
                break
            hz = min(half, nz // 2)
            centre = np.array([self.rng.integers(hz, max(nz - hz, hz + 1)),
                               self.rng.integers(ny), self.rng.integers(nx)])
            placed += self.try_place("gold", density, mask, centre, (0.0, 0.0, 0.0))

    def carbon(self, hole_radius: float | None) -> None:
        nz, ny, nx = self.shape
        field = max(ny, nx) * self.px
        radius = hole_radius or 4 * field
        psi = self.rng.uniform(0, 2 * np.pi)
        normal = np.array([np.sin(psi), np.cos(psi)])  # y, x
        edge_at = self.rng.uniform(0.15, 0.35) * field  # the edge crosses the view here
        centre = np.array([ny, nx]) * self.px / 2 - (radius - edge_at) * normal
        yy, xx = np.meshgrid(np.arange(ny) * self.px, np.arange(nx) * self.px, indexing="ij")
        dist = np.hypot(yy - centre[0], xx - centre[1])
        film = np.clip((dist - radius) / self.px + 0.5, 0, 1)  # soft 1-voxel edge
        density = _smooth_noise((nz, ny, nx), 1.5, self.rng)  # the texture's noise, in place
        for z0, z1 in _slabs(nz):
            z = slice(z0, z1)
            texture = 1 + 0.15 * density[z]
            density[z] = film[None] * texture * CARBON_DENSITY * self.px**3
            density[z] *= ~self.occupied[z]
        mask = density > 0.5 * CARBON_DENSITY * self.px**3
        self.occupied |= mask
        self.classes.add("carbon", ALL, density)
        self.label(ALL, mask, Placement("carbon", (nz // 2, int(centre[0] / self.px),
                                                   int(centre[1] / self.px)),
                                        (0.0, 0.0, 0.0), int(mask.sum())))


def _no_particles(name: str, pixel_size: float) -> Particle:
    raise ConfigError(f"the specimen needs particle {name!r}: pass particles= to build_specimen "
                      "(e.g. cryolab.tomo.particles.load_particle)")


def vesicle(radius: float, pixel_size: float, irregularity: float = 0.0,
            rng: np.random.Generator | int | None = None):
    """A lipid vesicle in a centred cube: the bilayer's bimodal radial profile (two head-group
    Gaussian peaks 36 Å apart, σ = 5 Å or 0.6 voxel, on a flat tail plateau between them, so
    the profile dips at the bilayer's middle) around a surface
    ``radius·(1 + irregularity·f(u))`` with f a smooth random function of the direction u.

    Returns:
        density (atomic-number sums per voxel), membrane mask (``|d| ≤ 25`` Å), lumen mask, and the
        membrane's mid-surface (``|d|`` ≤ half a voxel), all (z, y, x) cubes.
    """
    rng = np.random.default_rng(rng)
    px = float(pixel_size)
    half = int(math.ceil((radius * (1 + irregularity) + 40) / px)) + 1
    ax = (np.arange(-half, half + 1) * px).astype(np.float32)
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    r = np.sqrt(x**2 + y**2 + z**2) + 1e-6
    u = np.stack([z, y, x], -1) / r[..., None]
    axes = Rotation.random(3, random_state=rng).apply([0, 0, 1])
    freq = rng.uniform(1.0, 3.0, 3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    wobble = sum(np.cos(freq[j] * np.arccos(np.clip(u @ axes[j], -1, 1)) + phase[j])
                 for j in range(3)) / 3
    d = r - radius * (1 + irregularity * wobble)
    s = max(5.0, 0.6 * px)
    heads = LIPID_HEAD_DENSITY * (np.exp(-0.5 * ((d - 18) / s) ** 2)
                                  + np.exp(-0.5 * ((d + 18) / s) ** 2))
    tails = LIPID_TAIL_DENSITY / (1 + np.exp((np.abs(d) - 18) / 2.0))
    density = ((heads + tails) * px**3).astype(np.float32)
    mask = np.abs(d) <= 25
    return density * mask, mask, d < -25, np.abs(d) <= max(0.5 * px, 3.0)


def _rotation_from_z(vector_xyz: np.ndarray) -> Rotation:
    """The shortest rotation taking the z axis onto ``vector_xyz``."""
    v = vector_xyz / (np.linalg.norm(vector_xyz) + 1e-12)
    axis = np.cross([0.0, 0.0, 1.0], v)
    s, c = np.linalg.norm(axis), float(v[2])
    if s < 1e-9:
        return Rotation.identity() if c > 0 else Rotation.from_euler("x", np.pi)
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c))


def _smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation, float32. The draws are
    made plane group by plane group (the same numbers as one call) and filtered in place, so
    it needs about 4 bytes per voxel."""
    field = np.empty(shape, np.float32)
    for z0, z1 in _slabs(shape[0]):
        field[z0:z1] = rng.standard_normal((z1 - z0, *shape[1:]))
    ndimage.gaussian_filter(field, sigma, output=field)
    field /= _std(field) + 1e-12
    return field


def _std(values: np.ndarray, leaf: int = 1 << 20) -> np.float32:
    """``values.std()`` of a float32 array, the very same number, without the temporary of
    the deviations of every value (4 bytes per value): numpy divides the float32 sums in
    float64 and sums pairwise, halving a run at a multiple of 8 values, so the squared
    deviations are summed over the same halves, ``leaf`` values at a time."""
    flat = values.reshape(-1)
    n = flat.size
    mean = np.float32(float(_pairwise_sum(flat, lambda x: x, 0, n, leaf)) / n)
    squares = _pairwise_sum(flat, lambda x: np.square(x - mean), 0, n, leaf)
    return np.sqrt(np.float32(float(squares) / n))


def _pairwise_sum(flat: np.ndarray, term: Callable[[np.ndarray], np.ndarray], start: int,
                  n: int, leaf: int) -> np.float32:
    """``term(flat[start:start + n]).sum()`` of a 1D float32 array, split into numpy's own
    pairwise halves down to runs of at most ``leaf`` values (numpy splits no run of 128
    values or fewer)."""
    if n <= max(leaf, 128):
        return term(flat[start:start + n]).sum()
    half = n // 2 - (n // 2) % 8
    return (_pairwise_sum(flat, term, start, half, leaf)
            + _pairwise_sum(flat, term, start + half, n - half, leaf))


def _microtubule_lattice(px: float, length: float, n_pf: int = 13) -> np.ndarray:
    """Monomer centres (N, 3) x, y, z in Å of a 13-protofilament, 3-start microtubule whose
    axis is x: protofilaments on a 112 Å radius, 40 Å monomer spacing."""
    radius, spacing = 112.0, 40.0
    rise = 3 * spacing / n_pf
    m = np.arange(-int(length / 2 / spacing) - 1, int(length / 2 / spacing) + 2)
    j = np.arange(n_pf)
    jj, mm = np.meshgrid(j, m, indexing="ij")
    phi = 2 * np.pi * jj / n_pf
    x = mm * spacing + jj * rise
    return np.stack([x.ravel(), (radius * np.cos(phi)).ravel(),
                     (radius * np.sin(phi)).ravel()], axis=1)


def axis_distance(shape: tuple[int, ...], centre: Sequence[float], direction: Sequence[float]
                  ) -> np.ndarray:
    """The geometry of a tube or cylinder: the distance (voxels) of every voxel of a (z, y, x)
    grid of ``shape`` from the straight line through ``centre`` (z, y, x, voxels) along
    ``direction`` (z, y, x; any length)."""
    unit = np.asarray(direction, np.float64)
    unit = unit / np.linalg.norm(unit)
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij", sparse=True)
    rel = [g - c for g, c in zip(grids, centre, strict=True)]
    along = sum(r * u for r, u in zip(rel, unit, strict=True))
    return np.sqrt(sum((r - along * u) ** 2 for r, u in zip(rel, unit, strict=True)))


def add_filaments(specimen: Specimen, count: int, angle: float, rng: np.random.Generator,
                  jitter: float = 10.0, radius: float = 125.0, wall: float = 50.0) -> Specimen:
    """A copy of ``specimen`` with ``count`` straight hollow filaments added as class
    ``"filament"`` (microtubule-like tubes: outer ``radius`` Å, protein wall ``wall`` Å thick).

    Filaments lie in the ice mid-plane at ``angle`` ± ``jitter`` degrees from the tilt axis
    (y): 0 = parallel to the tilt axis, 90 = perpendicular. They replace the ice they occupy
    and are not placed where they would overlap earlier objects. (Microtubules with their
    tubulin lattice are :attr:`SpecimenConfig.microtubules`; these smooth tubes are for
    experiments where only the orientation matters, such as the missing wedge.)
    """
    nz, ny, nx = specimen.shape
    px = specimen.pixel_size
    occupied = specimen.instances > 0
    density = np.zeros(specimen.shape, np.float32)
    instances = specimen.instances.copy()
    placements = list(specimen.placements)
    placed = 0
    for _ in range(count * 20):
        if placed >= count:
            break
        psi = np.radians(angle + rng.uniform(-jitter, jitter))
        cy, cx = rng.uniform(0.15, 0.85) * ny, rng.uniform(0.15, 0.85) * nx
        # psi from the y axis, in the (y, x) plane
        r = axis_distance(specimen.shape, ((nz - 1) / 2, cy, cx),
                          (0.0, np.cos(psi), np.sin(psi))) * px
        wall_profile = np.clip((radius + px / 2 - r) / px, 0, 1) * np.clip(
            (r - (radius - wall) + px / 2) / px, 0, 1)
        tube = r <= radius + px / 2
        if np.any(occupied & tube):
            continue
        occupied |= tube
        density += (wall_profile * PROTEIN_DENSITY * px**3).astype(np.float32)
        placements.append(Placement("filament", (nz // 2, int(cy), int(cx)),
                                    (0.0, 0.0, float(np.degrees(psi))), int(tube.sum())))
        instances[tube] = len(placements)
        placed += 1
    classes = specimen.classes.copy(drop="filament")  # a second call replaces the first
    classes.add("filament", ALL, density)
    ice = specimen.ice * (density == 0)
    return Specimen(classes, ice.astype(np.float32), instances, placements, px)


def build_specimen(cfg: SpecimenConfig, seed: int | np.random.Generator = 0,
                   particles: ParticleSource | None = None) -> Specimen:
    """Build a specimen: microtubules, carbon (cut around them), vesicles (with membrane
    proteins), particle layers in turn, gold, then the vitreous ice that fills what is left.

    ``particles(name, pixel_size)`` gives the :class:`Particle` of a name, e.g.
    :func:`cryolab.tomo.particles.load_particle` (templates and structures of the data mirror;
    :func:`cryolab.tomo.simulate.simulate` passes it). This module reads no files: a specimen
    that names particles needs ``particles``.

    Each particle placement picks a particle, a random orientation and a location not known
    to be occupied, and is rejected if its voxels overlap anything already placed. Particles
    may cross the x/y borders (they are clipped) but stay inside the ice in z.
    """
    cfg.validate()
    rng = np.random.default_rng(seed)
    b = _Builder(cfg, rng, particles)
    if cfg.microtubules:
        b.microtubules(cfg.microtubules)
    if cfg.carbon:
        b.carbon(cfg.carbon_hole_radius)
    if cfg.vesicles.count:
        b.vesicles()
    for layer in cfg.layers:
        b.fill_layer(layer)
    if cfg.gold:
        b.gold(cfg.gold, cfg.gold_radius)
    px3 = cfg.pixel_size_a**3
    del b.occupied, b.membrane
    ice = _smooth_noise(b.shape, 1.0, rng)  # becomes the ice, slab by slab
    for z0, z1 in _slabs(b.shape[0]):
        displaced = np.zeros((z1 - z0, *b.shape[1:]), np.float32)
        for name in b.classes:
            displaced += b.classes.slab(name, z0, z1)
        displaced = np.clip(displaced / (PROTEIN_DENSITY * px3), 0, 1)
        texture = 1 + cfg.ice_texture * ice[z0:z1]
        ice[z0:z1] = ICE_DENSITY * px3 * texture * (1 - displaced)
    return Specimen(b.classes, ice, b.instances, b.placements, float(cfg.pixel_size_a))
