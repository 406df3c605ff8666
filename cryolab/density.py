"""Structure → density map: the classical simulators struc2mapGAN compares itself with.

Every simulator turns the atoms of a model into a sum of 3D Gaussians (or, for
:func:`formfactor`, of electron scattering factors) sampled on a grid, at a nominal
resolution ``R`` in Å:

======================  =========================  ==============================================
simulator               weight of an atom          width
======================  =========================  ==============================================
:func:`molmap`          atomic number Z            σ = R/(π√2) ≈ 0.225·R (ChimeraX ``molmap``)
:func:`pdb2mrc`         electrons (H 1, C 6, …)    Fourier transform falls to 1/e at 1/R (EMAN2)
:func:`blur`            atomic mass (Da)           σ = k·R, k = 0.356 by default (TEMPy)
:func:`formfactor`      electron form factor       gemmi ``DensityCalculatorE``, low-passed to R
======================  =========================  ==============================================

Each Gaussian is normalised so that its integral over space (Å³) equals the atom's weight:
``ρ(r) = w (2πσ²)^(-3/2) exp(-|r - r_atom|² / 2σ²)``, cut off at ``cutoff``·σ (5 by default).
A Gaussian of width σ has the Fourier transform ``exp(-2π²σ²k²)``, which falls to 1/e at
``k = 1/(π√2·σ)``: with σ = R/(π√2) that is exactly ``k = 1/R`` — the meaning of "resolution"
in ChimeraX's molmap and EMAN2's pdb2mrc.

Two ways to sum Gaussians on a grid (``method=``):

- ``"direct"`` evaluates every atom's Gaussian on the voxels of a small window around it. The
  Gaussian is separable, so each atom needs three short 1D profiles, whose outer product is
  added to its window (see :func:`_window_sums`, compiled by numba). Exact up to the cutoff;
  cost grows with atoms × window³, i.e. with (σ / voxel)³.
- ``"fft"`` first spreads each atom's weight over its 8 neighbouring voxels (trilinear, which
  keeps the total weight and the centre of mass exactly), then convolves the whole grid with
  the Gaussian (``scipy.ndimage.gaussian_filter``, separable). Its cost barely depends on the
  number of atoms or on σ. The price: trilinear spreading adds, on average over sub-voxel
  positions, a variance of h²/6 per axis (h the voxel size); we subtract it from σ² so the
  blob has the right width on average, but an individual atom's blob is slightly too narrow
  when it sits on a voxel centre and slightly too wide halfway between — errors of a few
  percent of the peak (the tests bound them against ``"direct"``). EMAN2's pdb2mrc works
  this way too (atoms put on the grid, then a Gaussian low-pass), so :func:`pdb2mrc` uses it.

Grids: by default a box around the atoms with voxel size R/3 and a margin of 3R (ChimeraX's
defaults); or exactly the grid of a given map (``on_grid=``, like ``molmap … onGrid``).
Atom coordinates are x, y, z; arrays are z, y, x (see :mod:`cryolab.io`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping

import gemmi
import numpy as np
from scipy import ndimage

from .errors import ConfigError, FormatError
from .io import Atoms, Volume, atoms_of, read_structure
from .validation import grid_memory

__all__ = [
    "METHODS",
    "MOLMAP_SIGMA_FACTOR",
    "BLUR_SIGMA_FACTORS",
    "ELECTRONS",
    "atoms_from",
    "box_around",
    "gaussian_density",
    "splat",
    "molmap",
    "pdb2mrc",
    "blur",
    "formfactor",
    "electron_counts",
    "simulate",
    "ground_truth_map",
    "resample",
]

#: σ = MOLMAP_SIGMA_FACTOR · R makes the Fourier transform fall to 1/e at 1/R.
MOLMAP_SIGMA_FACTOR = 1.0 / (np.pi * np.sqrt(2.0))
#: TEMPy's ``sigma_coeff`` choices (0.356 is its default; 0.225 equals molmap's width).
BLUR_SIGMA_FACTORS = (0.187, 0.225, 0.356, 0.4247)
#: Electron counts used by EMAN2's e2pdb2mrc; other elements use their atomic number.
ELECTRONS: Mapping[str, float] = {"H": 1, "C": 6, "N": 7, "O": 8, "P": 15, "S": 16}
#: The simulators :func:`simulate` knows.
METHODS = ("molmap", "pdb2mrc", "blur", "formfactor")

StructureLike = gemmi.Structure | Atoms | str | os.PathLike


# ----------------------------------------------------------------------------------- grids


def atoms_from(structure: StructureLike) -> Atoms:
    """The atoms of a structure given as :class:`Atoms`, a gemmi structure or a file."""
    if isinstance(structure, Atoms):
        return structure
    if isinstance(structure, gemmi.Structure):
        return atoms_of(structure)
    return atoms_of(read_structure(structure))


def _check_resolution(resolution: float) -> float:
    if not np.isfinite(resolution) or resolution <= 0:
        raise ConfigError(f"resolution must be a positive number of Å, got {resolution}")
    return float(resolution)


def box_around(xyz: np.ndarray, voxel_size: float, padding: float) -> Volume:
    """An empty cubic-voxel grid covering atoms ``xyz`` (N, 3; x, y, z in Å) plus ``padding`` Å.

    The box is snapped to whole voxels: its origin (centre of voxel 0) is the atoms' minimum
    corner minus the padding, rounded down to a multiple of ``voxel_size``, so a map written
    from it has NSTART × voxel size = ORIGIN and every MRC reader places it alike. A box too
    large for memory is refused before it is allocated.
    """
    if not voxel_size > 0 or not padding >= 0:
        raise ConfigError(f"need voxel_size > 0 and padding >= 0 (Å), got {voxel_size}, {padding}")
    xyz = np.asarray(xyz, dtype=np.float64)
    low = np.floor((xyz.min(axis=0)[::-1] - padding) / voxel_size) * voxel_size  # z, y, x
    high = xyz.max(axis=0)[::-1] + padding
    shape = np.ceil((high - low) / voxel_size) + 1
    grid_memory(shape[::-1], f"a box of {voxel_size:g} Å voxels around the model")
    return Volume(np.zeros(tuple(shape.astype(int)), dtype=np.float32), voxel_size, low)


def _grid_for(
    xyz: np.ndarray,
    resolution: float,
    on_grid: Volume | None,
    voxel_size: float | None,
    padding: float | None,
) -> Volume:
    if on_grid is not None:
        return Volume(np.zeros(on_grid.shape, np.float32), on_grid.voxel_size, on_grid.origin)
    step = resolution / 3.0 if voxel_size is None else float(voxel_size)
    pad = 3.0 * resolution if padding is None else float(padding)
    return box_around(xyz, step, pad)


# ------------------------------------------------------------------------ sums of Gaussians


def gaussian_density(
    xyz: np.ndarray,
    weights: np.ndarray,
    sigma: float,
    grid: Volume,
    cutoff: float = 5.0,
    method: str = "direct",
) -> np.ndarray:
    """Sum of normalised 3D Gaussians, one per atom, sampled on ``grid``.

    Args:
        xyz: (N, 3) atom positions, x, y, z in Å.
        weights: (N,) integral of each atom's Gaussian (e.g. Z, electrons, Da).
        sigma: standard deviation in Å.
        grid: the grid (its values are ignored).
        cutoff: Gaussians are zero beyond ``cutoff``·σ along each axis.
        method: ``"direct"`` (exact window sums) or ``"fft"`` (trilinear spreading + Gaussian
            filter); see the module docstring for the trade-off.
    Returns:
        float32 array (z, y, x) of density in weight units per Å³; its sum times the voxel
        volume equals ``weights.sum()`` for atoms well inside the grid.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(weights) != len(xyz):
        raise ConfigError(f"need xyz (N, 3) and N weights, got {xyz.shape} and {weights.shape}")
    if not sigma > 0 or not cutoff > 0:
        raise ConfigError(f"sigma and cutoff must be positive, got {sigma} Å and {cutoff}")
    if not np.all(np.isfinite(xyz)):
        raise FormatError("atom coordinates hold NaN or inf")
    if method == "direct":
        out = np.zeros(grid.shape, np.float32)
        norm = (2 * np.pi) ** -1.5 / sigma**3  # so that each Gaussian integrates to its weight
        _compiled(_window_sums)(  # contiguous float64 arguments: one compiled signature
            np.ascontiguousarray(grid.index_of(xyz), np.float64), weights * norm,
            np.asarray(grid.voxel_size, np.float64) / sigma, float(cutoff), out)
    elif method == "fft":
        out = _spread_and_filter(xyz, weights, sigma, grid, cutoff)
    else:
        raise ConfigError(f"unknown summation method {method!r}; use 'direct' or 'fft'")
    return out.astype(np.float32, copy=False)


@functools.cache
def _compiled(function: Callable) -> Callable:
    """``function`` compiled by numba on first use (imported only then); the machine code is
    cached on disk (beside the module, else in numba's user cache folder or
    ``$NUMBA_CACHE_DIR``), so later processes load it in a fraction of a second. Where no
    folder is writable it is compiled for this process only."""
    import numba

    try:
        return numba.njit(cache=True, nogil=True, fastmath=True)(function)
    except RuntimeError:  # numba: "cannot cache function …: no locator available"
        return numba.njit(nogil=True, fastmath=True)(function)


def _window_sums(
    index: np.ndarray, weights: np.ndarray, step_over_sigma: np.ndarray, cutoff: float,
    out: np.ndarray,
) -> None:
    """Add one Gaussian per atom to ``out`` (z, y, x float32), each on its own window.

    Atom ``n`` sits at fractional voxel ``index[n]`` (z, y, x) and adds
    ``weights[n]·gz(z)·gy(y)·gx(x)`` with ``g(p) = exp(-d²/2)``, ``d`` the distance from the
    atom in σ (``(p - index)·step_over_sigma``), zero where ``|d| > cutoff`` along any axis:
    the voxels within ±cutoff·σ, at most ``floor(2·reach) + 1`` per axis. The three 1D
    profiles are computed once per atom in float32, and their outer product added in float32:
    a relative difference of about 3e-7 of the peak from float64 sums. Written for numba
    (:func:`_compiled`): plain loops, no temporaries per atom.
    """
    shape = out.shape
    flat = out.reshape(-1)
    reach = np.empty(3)
    width = np.empty(3, np.int64)
    for a in range(3):
        reach[a] = cutoff / step_over_sigma[a]  # cutoff in voxels
        width[a] = int(math.floor(2 * reach[a])) + 1
    profile = np.zeros((3, width.max()), np.float32)
    lo = np.empty(3, np.int64)
    hi = np.empty(3, np.int64)
    for n in range(index.shape[0]):
        for a in range(3):
            first = int(math.ceil(index[n, a] - reach[a]))
            lo[a] = max(first, 0)
            hi[a] = min(first + width[a], shape[a])
            for p in range(lo[a], hi[a]):
                d = np.float32((p - index[n, a]) * step_over_sigma[a])
                inside = abs(d) <= cutoff
                profile[a, p - lo[a]] = np.exp(np.float32(-0.5) * d * d) if inside else 0.0
        w = np.float32(weights[n])
        for z in range(lo[0], hi[0]):
            wz = w * profile[0, z - lo[0]]
            for y in range(lo[1], hi[1]):
                wzy = wz * profile[1, y - lo[1]]
                row = (z * shape[1] + y) * shape[2] + lo[2]
                for i in range(hi[2] - lo[2]):
                    flat[row + i] += wzy * profile[2, i]


def _spread_and_filter(
    xyz: np.ndarray, w: np.ndarray, sigma: float, grid: Volume, cutoff: float
) -> np.ndarray:
    counts = splat(grid.index_of(xyz), w, grid.shape)
    # trilinear spreading adds (on average) h²/6 of variance per axis: take it off σ²
    s_vox = np.sqrt(np.maximum((sigma / grid.voxel_size) ** 2 - 1.0 / 6.0, 1e-6))
    blurred = ndimage.gaussian_filter(
        counts.astype(np.float32), s_vox, mode="constant", truncate=cutoff
    )
    return blurred / float(np.prod(grid.voxel_size))


def splat(index: np.ndarray, weights: np.ndarray, shape: tuple[int, ...], linear: bool = True
          ) -> np.ndarray:
    """Put point weights on a grid: the one atom-to-grid splatter of cryolab.

    Args:
        index: (N, 3) fractional voxel indices (z, y, x) of the points (for atoms, see
            :meth:`cryolab.io.Volume.index_of`).
        weights: (N,) weight of each point (atomic number, electrons, 1, ...).
        shape: grid shape (z, y, x).
        linear: share each weight between the 8 voxels around the point with trilinear
            weights (the sum is kept for points inside); False puts it whole into the voxel
            that holds the point (``floor`` of the index).

    Returns:
        float64 grid; shares falling outside it are dropped.

    Examples:
        >>> import numpy as np
        >>> from cryolab.density import splat
        >>> grid = splat(np.array([[0.5, 0.0, 0.0]]), np.array([2.0]), (2, 2, 2))
        >>> grid[:, 0, 0].tolist()
        [1.0, 1.0]
    """
    out = np.zeros(tuple(int(n) for n in shape), np.float64)
    _compiled(_splat_sums)(np.ascontiguousarray(index, dtype=np.float64),
                           np.ascontiguousarray(weights, dtype=np.float64), bool(linear), out)
    return out


def _splat_sums(index: np.ndarray, weights: np.ndarray, linear: bool, out: np.ndarray) -> None:
    """Add each point's weight to ``out`` (z, y, x float64): shared between the 8 voxels
    around it with trilinear weights, or whole into the voxel ``floor(index)``; shares that
    fall outside ``out`` are dropped. Written for numba (:func:`_compiled`)."""
    shape = out.shape
    flat = out.reshape(-1)
    corners = 2 if linear else 1
    share = np.empty((3, 2))
    base = np.empty(3, np.int64)
    for n in range(index.shape[0]):
        for a in range(3):
            base[a] = int(math.floor(index[n, a]))
            frac = index[n, a] - base[a]
            share[a, 0] = 1.0 - frac if linear else 1.0
            share[a, 1] = frac
        for i in range(corners):
            z = base[0] + i
            if z < 0 or z >= shape[0]:
                continue
            for j in range(corners):
                y = base[1] + j
                if y < 0 or y >= shape[1]:
                    continue
                wzy = weights[n] * share[0, i] * share[1, j]
                for k in range(corners):
                    x = base[2] + k
                    if 0 <= x < shape[2]:
                        flat[(z * shape[1] + y) * shape[2] + x] += wzy * share[2, k]


# ---------------------------------------------------------------------------- simulators


def molmap(
    structure: StructureLike,
    resolution: float,
    on_grid: Volume | None = None,
    voxel_size: float | None = None,
    padding: float | None = None,
    sigma_factor: float = MOLMAP_SIGMA_FACTOR,
    cutoff: float = 5.0,
    method: str = "direct",
) -> Volume:
    """ChimeraX ``molmap``: Gaussians weighted by atomic number, σ = ``sigma_factor``·R.

    Args:
        structure: a gemmi structure, :class:`~cryolab.io.Atoms`, or a PDB/mmCIF path.
        resolution: R in Å.
        on_grid: sample on this map's grid (shape, voxel size and origin) instead of a box.
        voxel_size: grid step of the automatic box (default R/3).
        padding: margin of the automatic box in Å (default 3R).
        sigma_factor: σ / R (default 1/(π√2) ≈ 0.225).
        cutoff: in σ (default 5).
        method: ``"direct"`` or ``"fft"`` (see :func:`gaussian_density`).

    Examples:
        >>> import numpy as np
        >>> from cryolab.density import molmap
        >>> from cryolab.io import Atoms
        >>> carbon = Atoms(np.zeros((1, 3)), np.array([6]), np.array([12.0]), np.array(["C"]))
        >>> m = molmap(carbon, resolution=4.0, voxel_size=0.5)
        >>> round(float(m.data.sum() * 0.5**3), 3)    # the blob integrates to Z = 6
        6.0
    """
    r = _check_resolution(resolution)
    atoms = atoms_from(structure)
    grid = _grid_for(atoms.xyz, r, on_grid, voxel_size, padding)
    data = gaussian_density(atoms.xyz, atoms.atomic_number, sigma_factor * r, grid, cutoff, method)
    return grid.with_data(data)


def electron_counts(atoms: Atoms) -> np.ndarray:
    """EMAN2's electron count per atom (:data:`ELECTRONS`, else the atomic number)."""
    symbols, which = np.unique(atoms.element.astype(str), return_inverse=True)
    symbols = np.char.upper(symbols)
    known = np.array([s in ELECTRONS for s in symbols])[which]
    counts = np.array([ELECTRONS.get(s, 0.0) for s in symbols], dtype=np.float64)[which]
    return np.where(known, counts, np.asarray(atoms.atomic_number, dtype=np.float64))


def pdb2mrc(
    structure: StructureLike,
    resolution: float,
    on_grid: Volume | None = None,
    voxel_size: float | None = None,
    padding: float | None = None,
) -> Volume:
    """EMAN2 ``e2pdb2mrc``: electrons put on the grid, then a Gaussian low-pass whose transfer
    falls to 1/e at 1/R (so σ = R/(π√2) in real space; the ``"fft"`` summation)."""
    r = _check_resolution(resolution)
    atoms = atoms_from(structure)
    grid = _grid_for(atoms.xyz, r, on_grid, voxel_size, padding)
    sigma = MOLMAP_SIGMA_FACTOR * r
    data = gaussian_density(atoms.xyz, electron_counts(atoms), sigma, grid, 5.0, "fft")
    return grid.with_data(data)


def blur(
    structure: StructureLike,
    resolution: float,
    sigma_factor: float = 0.356,
    on_grid: Volume | None = None,
    voxel_size: float | None = None,
    padding: float | None = None,
    cutoff: float = 5.0,
    method: str = "direct",
) -> Volume:
    """TEMPy ``StructureBlurrer``-style map: mass-weighted Gaussians with σ = ``sigma_factor``·R.

    ``sigma_factor`` is TEMPy's ``sigma_coeff`` (:data:`BLUR_SIGMA_FACTORS`): 0.187 (Situs:
    the Fourier transform falls to half its maximum at 1/R), 0.225 (Chimera: to 1/e at 1/R),
    0.356 (TEMPy's default: the Gaussian's 1/e-of-height width equals R) and 0.4247 (σ is
    half the width at half maximum... of a Gaussian of FWHM = R). Any positive value works.
    """
    r = _check_resolution(resolution)
    if not sigma_factor > 0:
        raise ConfigError(f"sigma_factor must be positive, got {sigma_factor}")
    atoms = atoms_from(structure)
    grid = _grid_for(atoms.xyz, r, on_grid, voxel_size, padding)
    data = gaussian_density(atoms.xyz, atoms.mass, sigma_factor * r, grid, cutoff, method)
    return grid.with_data(data)


def formfactor(
    structure: StructureLike,
    resolution: float,
    on_grid: Volume | None = None,
    voxel_size: float | None = None,
    padding: float | None = None,
) -> Volume:
    """Electron scattering factors (gemmi ``DensityCalculatorE``) low-passed to R.

    gemmi sums each atom's electron form factor (5 Gaussians, blurred by the atom's B-factor)
    on a periodic unit-cell grid; its ``d_min`` only sets the sampling and the cutoff radius.
    We give it a cell covering our grid plus a margin (so nothing wraps around), read the grid
    back, and apply the same Gaussian low-pass as molmap (transfer 1/e at 1/R). Needs a gemmi
    structure or a path (B-factors and elements come from the file).
    """
    r = _check_resolution(resolution)
    if isinstance(structure, Atoms):
        raise ConfigError("formfactor needs a gemmi structure or a file, not bare Atoms")
    st = structure if isinstance(structure, gemmi.Structure) else read_structure(structure)
    atoms = atoms_of(st)
    grid = _grid_for(atoms.xyz, r, on_grid, voxel_size, padding)
    step = grid.voxel_size
    margin = np.ceil(3.0 * r / step).astype(int) + 2  # voxels of margin against wrap-around
    size = np.array(grid.shape) + 2 * margin  # z, y, x
    corner = grid.origin - margin * step  # z, y, x position of gemmi's grid point 0

    model = st.clone()[0]  # a copy, shifted so our corner is gemmi's (0, 0, 0)
    model.transform_pos_and_adp(
        gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(-corner[::-1]).tolist()))
    )
    dc = gemmi.DensityCalculatorE()
    dc.d_min = max(2.0 * float(step.max()), 0.5)
    dc.grid.unit_cell = gemmi.UnitCell(*(size[::-1] * step[::-1]).tolist(), 90, 90, 90)
    dc.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    dc.initialize_grid()  # sizes the grid from d_min; we then impose our own sampling
    dc.grid.set_size(*(int(n) for n in size[::-1]))
    dc.grid.fill(0.0)
    dc.add_model_density_to_grid(model)
    values = np.array(dc.grid, copy=True).transpose(2, 1, 0)  # gemmi is x, y, z
    inner = tuple(slice(m, m + n) for m, n in zip(margin, grid.shape, strict=True))
    sigma_vox = MOLMAP_SIGMA_FACTOR * r / step
    data = ndimage.gaussian_filter(values, sigma_vox, mode="wrap", truncate=5.0)[inner]
    return grid.with_data(data)


def simulate(
    structure: StructureLike, resolution: float, method: str = "molmap", **options
) -> Volume:
    """Run the simulator named ``method`` (one of :data:`METHODS`) with its options.

    Examples:
        >>> import numpy as np
        >>> from cryolab.density import METHODS, simulate
        >>> from cryolab.io import Atoms
        >>> pair = Atoms(np.array([[0.0, 0, 0], [3.0, 0, 0]]), np.array([6, 8]),
        ...              np.array([12.0, 16.0]), np.array(["C", "O"]))
        >>> maps = {m: simulate(pair, 4.0, m) for m in METHODS if m != "formfactor"}
        >>> sorted(maps)
        ['blur', 'molmap', 'pdb2mrc']
    """
    simulators = {"molmap": molmap, "pdb2mrc": pdb2mrc, "blur": blur, "formfactor": formfactor}
    if method not in simulators:
        raise ConfigError(f"unknown simulation method {method!r}; choose one of {METHODS}")
    return simulators[method](structure, resolution, **options)


def ground_truth_map(
    structure: gemmi.Structure,
    voxel: float = 1.0,
    pad: float = 6.0,
    blur: float = 10.0,
    form_factors: str = "electron",
    model: int = 0,
) -> Volume:
    """A map computed from an atomic model with gemmi, on a cubic grid of ``voxel`` Å.

    The box spans the atoms plus ``pad`` Å on each side; density is summed in real space from
    the form factors (``"electron"``: Peng's electron scattering; ``"xray"``: IT92) with each
    atom's B-factor plus ``blur`` Å² (which keeps the sharpest Gaussians resolved on the
    grid). Waters are left out. The returned Volume's origin places it in the model's frame.
    """
    if voxel <= 0 or pad < 0 or blur < 0:
        raise ConfigError(f"need voxel > 0, pad ≥ 0, blur ≥ 0; got {voxel}, {pad}, {blur}")
    calculators = {"electron": gemmi.DensityCalculatorE, "xray": gemmi.DensityCalculatorX}
    if form_factors not in calculators:
        raise ConfigError(
            f"form_factors must be one of {sorted(calculators)}, not {form_factors!r}"
        )
    st = structure.clone()
    st.remove_waters()
    if form_factors == "xray":
        st.remove_hydrogens()
    xyz = atoms_of(st, model).xyz
    low = xyz.min(axis=0) - pad
    size = np.ceil((xyz.max(axis=0) + pad - low) / voxel).astype(int) + 1  # x, y, z
    shift = gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(-low)))
    st[model].transform_pos_and_adp(shift)
    for cra in st[model].all():
        cra.atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    calc = calculators[form_factors]()
    calc.grid.unit_cell = gemmi.UnitCell(*(size * voxel), 90, 90, 90)
    calc.grid.spacegroup = gemmi.SpaceGroup("P 1")
    calc.grid.set_size(*(int(n) for n in size))
    calc.d_min = 0.0  # keep our grid; gemmi would otherwise pick its own spacing
    calc.blur = blur
    calc.put_model_density_on_grid(st[model])
    data = np.array(calc.grid, copy=True).transpose(2, 1, 0)  # gemmi (x,y,z) -> (z,y,x)
    if not np.all(np.isfinite(data)):
        raise FormatError(f"{structure.name}: the computed density holds NaN/inf values")
    return Volume(data, voxel, low[::-1])


# --------------------------------------------------------------------------------- resampling


def resample(
    volume: Volume,
    voxel_size: float | None = None,
    order: int = 1,
    like: Volume | None = None,
    mode: str = "constant",
) -> Volume:
    """Interpolate a map onto a cubic grid of ``voxel_size`` Å with the same origin, or onto
    the grid of ``like``: the one resampler of cryolab.

    With ``voxel_size`` the new grid is the largest that stays inside the original box, and a
    map whose voxels already have that size is returned unchanged. ``order`` is the spline
    order of ``scipy.ndimage.map_coordinates`` (1 = trilinear, as ChimeraX ``volume
    resample``; 3 = cubic spline). Positions outside the input read 0 with
    ``mode="constant"``; ``mode="nearest"`` repeats the edge voxels instead.

    Examples:
        >>> import numpy as np
        >>> from cryolab.density import resample
        >>> from cryolab.io import Volume
        >>> fine = Volume(np.arange(27.0).reshape(3, 3, 3), 1.0, 0.0)
        >>> resample(fine, 2.0).shape                  # 0 … 2 Å along each axis
        (2, 2, 2)
        >>> float(resample(fine, 2.0).data[1, 1, 1])   # the voxel at (2, 2, 2) Å
        26.0
    """
    if like is None:
        if voxel_size is None or not voxel_size > 0:
            raise ConfigError(f"voxel_size must be positive, got {voxel_size} Å")
        if np.allclose(volume.voxel_size, voxel_size):
            return volume
        shape = np.maximum(np.floor((np.array(volume.shape) - 1) * volume.voxel_size
                                    / voxel_size + 1e-6).astype(int) + 1, 1)
        like = Volume(np.zeros(tuple(shape), np.float32), voxel_size, volume.origin)
    axes = like.grid_axes()
    coords = [(axes[a] - volume.origin[a]) / volume.voxel_size[a] for a in range(3)]
    zz, yy, xx = np.meshgrid(*coords, indexing="ij")
    data = ndimage.map_coordinates(
        volume.data, [zz, yy, xx], order=order, mode=mode, cval=0.0, prefilter=order > 1
    )
    return like.with_data(data)
