"""OME-Zarr (OME-NGFF 0.4) for large volumes: tomograms, their atlas and per-class masks.

The layout is the one the CZ cryoET Data Portal serves: a Zarr (format 2) group whose
``multiscales`` metadata lists resolution levels ``0``, ``1``, ... (each half the size of the
one before, cut into chunks of at most 64³ voxels), with axes ``z, y, x`` in ångström and,
per level, a ``scale`` (the voxel size in Å) and a ``translation`` (the centre in Å of voxel
``[0, 0, 0]``) in its ``coordinateTransformations``. Integer label images (the atlas, one
mask per class) sit under ``labels/NAME`` as the NGFF labels specification has them, so
viewers (napari, neuroglancer) overlay them on the tomogram. MRC stays the default format for
single files; this one is for volumes too large to read whole::

    write_omezarr("tomo.zarr", tomogram, labels={"atlas": atlas, "ribosome": mask})
    volume = read_omezarr("tomo.zarr", level=1)          # a Volume, voxel size doubled
    masks = read_omezarr_labels("tomo.zarr")             # {"atlas": ..., "ribosome": ...}

Levels of the image are 2×2×2 block means (their voxel centres move by half a voxel of the
level before); levels of labels keep every second voxel (labels must not be averaged).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import ConfigError, FormatError
from .io import Volume
from .outputs import atomic_folder, check_folder

__all__ = ["write_omezarr", "read_omezarr", "read_omezarr_labels", "convert", "NGFF_VERSION"]

NGFF_VERSION = "0.4"
AXES = [{"name": a, "type": "space", "unit": "angstrom"} for a in ("z", "y", "x")]


def _levels(shape: tuple[int, ...], wanted: int) -> int:
    """How many levels fit: each halves every axis and none may fall below 1 voxel."""
    return max(1, min(wanted, int(np.floor(np.log2(min(shape)))) + 1))


def _mean_down(data: np.ndarray) -> np.ndarray:
    """2×2×2 block mean (a trailing odd plane is dropped)."""
    z, y, x = (n // 2 * 2 for n in data.shape)
    d = data[:z, :y, :x].astype(np.float32)
    return d.reshape(z // 2, 2, y // 2, 2, x // 2, 2).mean(axis=(1, 3, 5), dtype=np.float32)


def _pick_down(data: np.ndarray) -> np.ndarray:
    """Every second voxel along each axis, as many as :func:`_mean_down` keeps."""
    z, y, x = (n // 2 * 2 for n in data.shape)
    return data[:z:2, :y:2, :x:2]


def _write_pyramid(group, data: np.ndarray, voxel: np.ndarray, origin: np.ndarray,
                   levels: int, chunk: int, labels: bool, name: str) -> None:
    """Write the levels of one image into ``group`` with their multiscales metadata."""
    datasets = []
    for level in range(levels):
        factor = 2.0**level
        shift = 0.0 if labels else (factor - 1) / 2  # block means move the voxel centres
        group.create_array(str(level), data=np.ascontiguousarray(data),
                           chunks=tuple(min(chunk, n) for n in data.shape))
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [float(v) for v in voxel * factor]},
            {"type": "translation", "translation": [float(o) for o in origin + shift * voxel]},
        ]})
        if level + 1 < levels:
            data = _pick_down(data) if labels else _mean_down(data)
    group.attrs["multiscales"] = [{
        "version": NGFF_VERSION, "name": name, "axes": AXES, "datasets": datasets,
        "type": "nearest (every second voxel)" if labels else "2x2x2 mean",
    }]


def write_omezarr(
    path: str | os.PathLike, volume: Volume, labels: Mapping[str, np.ndarray] | None = None,
    levels: int = 3, chunk: int = 64, overwrite: bool = False, name: str = "tomogram",
) -> Path:
    """Write ``volume`` (and integer ``labels`` on its grid) as one OME-Zarr, atomically.

    Args:
        path: the ``.zarr`` folder to create.
        volume: the image; its voxel size and origin (Å) go into the transformations.
        labels: label images by name (the atlas, per-class masks): integer or boolean arrays
            of the volume's shape; booleans are stored as uint8 0/1.
        levels: resolution levels wanted (fewer when the volume is small).
        chunk: chunk edge in voxels.
        overwrite: replace an earlier cryolab output at ``path`` (otherwise refused).

    Raises:
        ConfigError: ``path`` exists and ``overwrite`` is off (or it holds files cryolab did
            not write), or a label does not fit.
    """
    import zarr

    path = check_folder(path, overwrite=overwrite)
    if levels < 1 or chunk < 1:
        raise ConfigError(f"levels and chunk must be ≥ 1, not {levels} and {chunk}")
    labels = dict(labels or {})
    for key, array in labels.items():
        if np.shape(array) != volume.shape:
            raise ConfigError(f"label {key!r} has shape {np.shape(array)}, not the volume's "
                              f"{volume.shape}")
        if not (np.issubdtype(np.asarray(array).dtype, np.integer)
                or np.asarray(array).dtype == bool):
            raise ConfigError(f"label {key!r} must hold integers, not {np.asarray(array).dtype}")
    n = _levels(volume.shape, levels)
    with atomic_folder(path, "cryolab.omezarr") as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        _write_pyramid(root, volume.data, volume.voxel_size, volume.origin, n, chunk,
                       labels=False, name=name)
        if labels:
            group = root.create_group("labels")
            group.attrs["labels"] = list(labels)
            for key, array in labels.items():
                array = np.asarray(array)
                sub = group.create_group(key)
                _write_pyramid(sub, array.astype(np.uint8) if array.dtype == bool else array,
                               volume.voxel_size, volume.origin, n, chunk, labels=True,
                               name=key)
                sub.attrs["image-label"] = {"version": NGFF_VERSION,
                                            "source": {"image": "../../"}}
    return path


def _multiscale(group, path: Path, level: int):  # noqa: ANN001, ANN202 - zarr group, array
    try:
        meta = group.attrs["multiscales"][0]
        dataset = meta["datasets"][level]
    except (KeyError, IndexError, TypeError):
        raise FormatError(f"{path}: no OME-Zarr multiscale level {level}") from None
    axes = [a["name"] for a in meta.get("axes", [])]
    if axes != ["z", "y", "x"]:
        raise FormatError(f"{path}: axes {axes}, expected z, y, x")
    units = {a.get("unit", "angstrom") for a in meta["axes"]}
    to_angstrom = {"angstrom": 1.0, "nanometer": 10.0, "micrometer": 1e4}
    if len(units) != 1 or not units <= set(to_angstrom):
        raise FormatError(f"{path}: spatial units {sorted(units)} are not supported")
    unit = to_angstrom[units.pop()]
    scale, translation = np.ones(3), np.zeros(3)
    for transform in dataset.get("coordinateTransformations", []):
        if transform["type"] == "scale":
            scale = np.asarray(transform["scale"], float)
        elif transform["type"] == "translation":
            translation = np.asarray(transform["translation"], float)
    return group[dataset["path"]], scale * unit, translation * unit


def read_omezarr(path: str | os.PathLike, level: int = 0) -> Volume:
    """The image at resolution ``level`` of an OME-Zarr as a :class:`~cryolab.io.Volume`
    (voxel size and origin in Å, from the level's transformations)."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such OME-Zarr")
    array, voxel, origin = _multiscale(zarr.open_group(str(path), mode="r"), path, level)
    return Volume(np.asarray(array[...]), voxel, origin)


def read_omezarr_labels(path: str | os.PathLike, level: int = 0) -> dict[str, np.ndarray]:
    """Every label image of an OME-Zarr at resolution ``level``, by name (empty if none)."""
    import zarr

    path = Path(path)
    root = zarr.open_group(str(path), mode="r")
    if "labels" not in root:
        return {}
    group = root["labels"]
    return {key: np.asarray(_multiscale(group[key], path / "labels" / key, level)[0][...])
            for key in group.attrs.get("labels", [])}


def convert(source: str | os.PathLike, out: str | os.PathLike, levels: int = 3,
            chunk: int = 64, overwrite: bool = False) -> Path:
    """An MRC map, or a ``cryolab simulate-tomo`` folder, as one OME-Zarr.

    From a folder: ``tomogram.mrc`` is the image; ``atlas.mrc`` (class indices) and every
    ``masks/NAME.mrc`` (0/1) become labels ``atlas`` and ``NAME``.
    """
    from .io import read_map

    source = Path(source)
    labels: dict[str, np.ndarray] = {}
    if source.is_dir():
        if not (source / "tomogram.mrc").is_file():
            raise ConfigError(f"{source}: no tomogram.mrc (give a simulate-tomo folder or a map)")
        volume = read_map(source / "tomogram.mrc")
        if (source / "atlas.mrc").is_file():
            labels["atlas"] = np.rint(read_map(source / "atlas.mrc").data).astype(np.uint16)
        for mask in sorted((source / "masks").glob("*.mrc")):
            labels[mask.stem] = read_map(mask).data > 0.5
    else:
        volume = read_map(source)
    return write_omezarr(out, volume, labels, levels=levels, chunk=chunk, overwrite=overwrite,
                         name=source.stem)
