"""Maps and models on disk: the :class:`Volume` type, MRC/CCP4 maps and PDB/mmCIF structures.

A :class:`Volume` is a float32 array in (z, y, x) order together with its voxel size and origin
in Å, so that a voxel index can always be turned into a position in the model's frame.

MRC files can place a map in space in two ways: the NSTART fields (first column/row/section,
in voxels; gemmi and CCP4 use these) or the ORIGIN field (in Å; UCSF Chimera cut-outs use it).
:func:`read_map` honours both, the way ChimeraX does: a non-zero ORIGIN wins, otherwise NSTART
times the voxel size. :func:`write_map` writes both, consistently, so that gemmi, ChimeraX and
cryolab reopen the map in the same place.
"""

from __future__ import annotations

import gzip
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
from scipy import ndimage

from .errors import FormatError

__all__ = ["Volume", "Atoms", "read_map", "write_map", "read_structure", "atoms_of"]

PathLike = str | os.PathLike


@dataclass
class Volume:
    """A 3D map on a regular grid.

    Attributes:
        data: float32 array, axis order (z, y, x).
        voxel_size: voxel edge lengths in Å, order (z, y, x).
        origin: position in Å, order (z, y, x), of the centre of voxel ``[0, 0, 0]``.
    """

    data: np.ndarray
    voxel_size: np.ndarray
    origin: np.ndarray

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim != 3:
            raise FormatError(f"a Volume needs a 3D array, got shape {self.data.shape}")
        self.voxel_size = _triple(self.voxel_size, "voxel_size")
        self.origin = _triple(self.origin, "origin")
        if np.any(self.voxel_size <= 0):
            raise FormatError(f"voxel size must be positive, got {self.voxel_size} Å")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (z, y, x)."""
        return self.data.shape  # type: ignore[return-value]

    @property
    def extent(self) -> np.ndarray:
        """Box edge lengths in Å, order (z, y, x)."""
        return np.array(self.shape) * self.voxel_size

    def with_data(self, data: np.ndarray) -> Volume:
        """The same grid holding other values (same shape required)."""
        if np.shape(data) != self.shape:
            raise FormatError(f"shape {np.shape(data)} does not match the grid {self.shape}")
        return Volume(data, self.voxel_size.copy(), self.origin.copy())

    def index_of(self, xyz: np.ndarray) -> np.ndarray:
        """Fractional voxel indices (z, y, x) of positions given as (N, 3) x, y, z in Å."""
        xyz = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
        return (xyz[:, ::-1] - self.origin) / self.voxel_size

    def position_of(self, index: np.ndarray) -> np.ndarray:
        """Positions (N, 3) as x, y, z in Å of fractional voxel indices (z, y, x)."""
        index = np.atleast_2d(np.asarray(index, dtype=np.float64))
        return (index * self.voxel_size + self.origin)[:, ::-1]

    def interpolate(self, xyz: np.ndarray, order: int = 1) -> np.ndarray:
        """Map values at positions (N, 3) x, y, z in Å, trilinear by default; 0 outside."""
        idx = self.index_of(xyz).T
        return ndimage.map_coordinates(self.data, idx, order=order, mode="constant", cval=0.0)

    def grid_axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions in Å of voxel centres along z, y and x."""
        return tuple(  # type: ignore[return-value]
            self.origin[i] + self.voxel_size[i] * np.arange(self.shape[i]) for i in range(3)
        )


def _triple(value: float | np.ndarray, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(arr)):
        raise FormatError(f"{name} must be finite, got {arr}")
    return arr


# --------------------------------------------------------------------------------------- maps

_MAP_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrcs", ".rec", ".st")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def read_map(path: PathLike, allow_nan: bool = False) -> Volume:
    """Read an MRC/CCP4 map (optionally gzipped) into a :class:`Volume`.

    The array is returned in (z, y, x) order whatever the file's MAPC/MAPR/MAPS axis order.
    Raises :class:`~cryolab.errors.FormatError` naming the file for a missing, truncated or
    malformed file, a zero voxel size, or NaN/inf values (unless ``allow_nan``).
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such map file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _is_gzip(path):
                mrc = mrcfile.open(path, mode="r", permissive=False)
            else:
                mrc = mrcfile.mmap(path, mode="r", permissive=False)
            with mrc:
                header = mrc.header
                file_data = np.array(mrc.data, dtype=np.float32)
    except (ValueError, OSError, EOFError, OverflowError, gzip.BadGzipFile) as exc:
        raise FormatError(f"{path}: not a readable MRC/CCP4 map ({exc})") from None
    if file_data.ndim != 3:
        size = "×".join(map(str, file_data.shape[::-1]))
        raise FormatError(f"{path}: holds a {size} image, not a 3D map")

    # File axes are (sections, rows, columns); MAPC/MAPR/MAPS say which of x/y/z each one is.
    axes = (int(header.mapc), int(header.mapr), int(header.maps))  # 1=x, 2=y, 3=z
    if sorted(axes) != [1, 2, 3]:
        raise FormatError(f"{path}: invalid MAPC/MAPR/MAPS axis order {axes}")
    # file array axis k (0=sections,1=rows,2=columns) holds the spatial axis axes[2-k]
    spatial_of_file_axis = [axes[2], axes[1], axes[0]]
    # we want array axis order z(3), y(2), x(1)
    order = [spatial_of_file_axis.index(s) for s in (3, 2, 1)]
    data = np.ascontiguousarray(np.transpose(file_data, order))

    cell = np.array([header.cella.x, header.cella.y, header.cella.z], dtype=np.float64)
    grid = np.array([header.mx, header.my, header.mz], dtype=np.float64)
    if np.any(grid <= 0) or np.any(cell <= 0):
        raise FormatError(
            f"{path}: header has no usable voxel size (cell {cell.tolist()} Å, "
            f"sampling {grid.astype(int).tolist()}); the map cannot be placed in space"
        )
    voxel_xyz = cell / grid

    nstart_file = np.array([header.nxstart, header.nystart, header.nzstart], dtype=np.float64)
    nstart_xyz = np.zeros(3)
    for file_axis, spatial in enumerate(axes):  # nxstart belongs to the column axis, etc.
        nstart_xyz[spatial - 1] = nstart_file[file_axis]
    origin_field = np.array(
        [header.origin.x, header.origin.y, header.origin.z], dtype=np.float64
    )
    if np.any(origin_field != 0) and np.all(np.isfinite(origin_field)):
        origin_xyz = origin_field
    else:
        origin_xyz = nstart_xyz * voxel_xyz

    bad = ~np.isfinite(data)
    if bad.any() and not allow_nan:
        raise FormatError(
            f"{path}: map holds {int(bad.sum())} NaN/inf values; clean it or pass allow_nan=True"
        )
    return Volume(data, voxel_xyz[::-1], origin_xyz[::-1])


def write_map(path: PathLike, volume: Volume, label: str = "cryolab") -> Path:
    """Write a :class:`Volume` as a float32 MRC2014 map (gzipped when the name ends in .gz).

    The voxel size goes into the cell; the origin goes into ORIGIN and, when it is a whole
    number of voxels (as every box cryolab makes is), into NSTART too, so that readers that use
    either field place the map alike. The header holds the one ``label`` given (no time stamp)
    and a gzipped file stores no name or time, so the same volume always gives the same bytes.
    The file appears atomically with the umask's mode (:func:`cryolab.outputs.atomic_file`):
    an error never leaves a partial map.
    """
    from .outputs import atomic_file

    path = Path(path)
    data = np.asarray(volume.data, dtype=np.float32)
    if not (np.isfinite(data.min()) and np.isfinite(data.max())):  # NaN propagates to both
        raise FormatError(f"{path}: refusing to write a map with NaN/inf values")
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith(_MAP_SUFFIXES):
        raise FormatError(f"{path}: map files must end in one of {_MAP_SUFFIXES} (+ .gz)")
    with atomic_file(path) as tmp:
        with _MapFile(tmp, mode="w+", overwrite=True) as mrc:
            mrc.set_data(data)
            vz, vy, vx = (float(v) for v in volume.voxel_size)
            mrc.voxel_size = (vx, vy, vz)
            oz, oy, ox = (float(o) for o in volume.origin)
            mrc.header.origin = (ox, oy, oz)
            nstart = volume.origin / volume.voxel_size
            if np.allclose(nstart, np.round(nstart), atol=1e-3):
                nz, ny, nx = (int(round(n)) for n in nstart)
                mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = nx, ny, nz
            mrc.header.label[:] = b""
            mrc.header.nlabl = 0
            mrc.add_label(label[:80])
        if path.name.lower().endswith(".gz"):
            _gzip_in_place(tmp)
    return path


class _MapFile(mrcfile.mrcfile.MrcFile):
    """mrcfile's writer, with the header's statistics (min, max, mean, rms) summed slab by
    slab in float64 (:func:`_header_stats`): mrcfile's own take a float32 copy of the whole
    map for the rms, 4 bytes per voxel more at the peak of writing a large tomogram."""

    def update_header_stats(self) -> None:
        self.header.dmin, self.header.dmax, self.header.dmean, self.header.rms = \
            _header_stats(self.data)


def _header_stats(data: np.ndarray, slab_values: int = 1 << 22) -> tuple[float, ...]:
    """``(min, max, mean, rms)`` of a map, its rms the standard deviation about the mean
    (the MRC header's fields), summed over slabs of at most ``slab_values`` values along the
    first axis, so that no temporary grows with the map."""
    flat = data.reshape(len(data), -1)
    step = max(1, slab_values // max(flat.shape[1], 1))
    total = sum(float(flat[i:i + step].sum(dtype=np.float64))
                for i in range(0, len(flat), step))
    mean = total / max(data.size, 1)
    squares = sum(float(np.square(flat[i:i + step] - mean, dtype=np.float64).sum())
                  for i in range(0, len(flat), step))
    return (float(data.min()), float(data.max()), mean, (squares / max(data.size, 1)) ** 0.5)


def _gzip_in_place(path: Path, block: int = 1 << 20) -> None:
    """Compress ``path`` with gzip, storing no file name and a zero time (stable bytes),
    streamed ``block`` bytes at a time through a file beside it, which then replaces it: the
    map is never held in memory."""
    packed = path.with_name(path.name + ".gz")
    try:
        with open(path, "rb") as raw, open(packed, "wb") as fh, \
                gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
            shutil.copyfileobj(raw, gz, block)
        os.replace(packed, path)
    finally:
        packed.unlink(missing_ok=True)


# --------------------------------------------------------------------------------- structures


def read_structure(path: PathLike, remove_hydrogens: bool = False) -> gemmi.Structure:
    """Read a PDB or mmCIF file (optionally gzipped) with gemmi.

    Raises :class:`~cryolab.errors.FormatError` naming the file when it is missing, cannot be
    parsed, or holds no atoms. Residue names and elements are set up (``setup_entities``).
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such structure file")
    try:
        st = gemmi.read_structure(str(path), merge_chain_parts=True)
    except (RuntimeError, ValueError, OSError, IndexError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, IndexError):  # gemmi on an empty or header-only mmCIF
            message = "no data block"
        if path.name.lower().removesuffix(".gz").endswith((".pdb", ".ent")):
            st = _read_pdb_leniently(path, message)
        else:
            raise FormatError(f"{path}: not a readable PDB/mmCIF file ({message})") from None
    st.setup_entities()
    if remove_hydrogens:
        st.remove_hydrogens()
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise FormatError(f"{path}: structure holds no atoms")
    bad = [cra for cra in st[0].all() if not np.all(np.isfinite(cra.atom.pos.tolist()))]
    if bad:
        raise FormatError(f"{path}: {len(bad)} atom(s) have non-finite coordinates, first "
                          f"{bad[0]}")
    return st


def _read_pdb_leniently(path: Path, message: str) -> gemmi.Structure:
    """Retry a PDB file that gemmi rejects, keeping only its ATOM/HETATM/MODEL/END records.

    Some renumbered files (the BM5 docking benchmark's) carry serial numbers in the element and
    charge columns (77-80). The retry keeps columns 1-76 of the coordinate records, so gemmi
    infers each element from its atom name; if that parses, it is used.
    """
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rt", errors="replace") as fh:
            keep = [
                line[:76].rstrip("\n")
                for line in fh
                if line.startswith(("ATOM  ", "HETATM", "MODEL ", "ENDMDL", "TER"))
            ]
        st = gemmi.read_pdb_string("\n".join(keep) + "\nEND\n")
    except (RuntimeError, ValueError, OSError, EOFError):
        raise FormatError(f"{path}: not a readable PDB/mmCIF file ({message})") from None
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise FormatError(f"{path}: not a readable PDB/mmCIF file ({message})")
    return st


@dataclass(frozen=True)
class Atoms:
    """The atoms of one model as flat arrays.

    Attributes:
        xyz: (N, 3) positions, x, y, z in Å.
        atomic_number: (N,) Z of each element.
        mass: (N,) atomic mass in Da.
        element: (N,) element symbols.
    """

    xyz: np.ndarray
    atomic_number: np.ndarray
    mass: np.ndarray
    element: np.ndarray

    def __len__(self) -> int:
        return len(self.xyz)


def atoms_of(structure: gemmi.Structure, model: int = 0, hydrogens: bool = True) -> Atoms:
    """Flatten one model of a gemmi structure into :class:`Atoms` (first conformer only).

    No loop over atoms in Python: gemmi's ``FlatStructure`` (C++) lays the atoms out as
    arrays of positions and elements, and each distinct element is looked up once. Only a
    model with alternative locations is copied first, to keep its first conformer
    (``remove_alternative_conformations``; the caller's structure is left as it is).
    Coordinates are gemmi's own (float64, Å).
    """
    if len(structure) <= model:
        raise FormatError(f"{structure.name}: has no model {model}")
    if structure[model].count_atom_sites() == 0:
        raise FormatError(f"{structure.name}: model {model} holds no atoms")
    flat = gemmi.FlatStructure(structure)  # every model, one after another
    start = sum(structure[m].count_atom_sites() for m in range(model))
    rows = slice(start, start + structure[model].count_atom_sites())
    if np.any(flat.altlocs[rows]):
        one = gemmi.Structure()
        one.add_model(structure[model])
        one.remove_alternative_conformations()
        flat, rows = gemmi.FlatStructure(one), slice(None)
    _, first, which = np.unique(flat.elements[rows], return_index=True, return_inverse=True)
    elements = [gemmi.Element(s.decode()) for s in flat.element_names[rows][first]]
    keep = slice(None) if hydrogens else ~np.array([e.is_hydrogen for e in elements])[which]
    xyz, which = flat.pos[rows][keep], which[keep]
    if not len(xyz):
        raise FormatError(f"{structure.name}: model {model} holds no atoms")
    return Atoms(
        np.ascontiguousarray(xyz, dtype=np.float64),
        np.array([e.atomic_number for e in elements], dtype=np.int32)[which],
        np.array([e.weight for e in elements], dtype=np.float64)[which],
        np.array([e.name for e in elements])[which],
    )
