"""Patches for training and sliding windows for inference on whole maps.

Networks see small cubes; maps are larger. :func:`random_patches` cuts aligned random cubes
out of paired volumes (input and target) and :func:`augment` flips and rotates them the same
way; :func:`random_slabs` does the same for 2.5D networks (a stack of z-slices in, the centre
slice out). :func:`sliding_window` runs a function over overlapping cubes and blends the
results back into one volume of the input's shape:

- ``weight="core"`` keeps only each tile's central ``stride``-sized core (struc2mapGAN: 32³
  tiles, 20³ cores at stride 20, zero padding), so every voxel comes from exactly one tile;
- ``weight="gaussian"`` averages overlapping tiles with a Gaussian weight that favours tile
  centres, which hides seams.

Either way an identity function reproduces the input exactly, edges included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["pad_to", "random_patches", "random_slabs", "augment", "sliding_window",
           "predict_volume"]


def random_patches(
    volumes: Sequence[np.ndarray],
    size: int,
    count: int,
    rng: np.random.Generator,
    augment_patches: bool = True,
    min_mean: float | None = None,
    reference: int = -1,
    max_tries: int = 50,
) -> list[np.ndarray]:
    """Cut ``count`` aligned random cubes of edge ``size`` from same-shaped volumes.

    Args:
        volumes: arrays of identical shape (z, y, x), e.g. ``[degraded, target]``.
        size: cube edge in voxels (volumes smaller than that are zero-padded).
        count: number of patches.
        rng: the random generator (all randomness comes from it).
        augment_patches: apply the same random flips/90° rotations to each aligned set.
        min_mean: reject patches whose ``volumes[reference]`` mean is below this (skips empty
            solvent); after ``max_tries`` the last draw is kept.
    Returns:
        One array per input volume, each of shape (count, size, size, size), float32.

    Examples:
        >>> import numpy as np
        >>> from cryolab.tiles import random_patches
        >>> x = np.arange(16.0**3).reshape(16, 16, 16)
        >>> a, b = random_patches([x, 2 * x], size=4, count=3, rng=np.random.default_rng(0))
        >>> a.shape, bool(np.array_equal(b, 2 * a))      # aligned cubes from both volumes
        ((3, 4, 4, 4), True)
    """
    shape = volumes[0].shape
    if any(v.shape != shape for v in volumes):
        raise ConfigError(f"volumes must share one shape, got {[v.shape for v in volumes]}")
    padded = [pad_to(np.asarray(v, dtype=np.float32), size) for v in volumes]
    pshape = padded[0].shape
    out = [np.empty((count, size, size, size), dtype=np.float32) for _ in volumes]
    for i in range(count):
        for _ in range(max_tries):
            corner = [int(rng.integers(0, pshape[a] - size + 1)) for a in range(3)]
            region = tuple(slice(c, c + size) for c in corner)
            cubes = [p[region] for p in padded]
            if min_mean is None or cubes[reference].mean() >= min_mean:
                break
        if augment_patches:
            cubes = augment(rng, *cubes)
        for o, c in zip(out, cubes, strict=True):
            o[i] = c
    return out


def random_slabs(inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], size: int,
                 slices: int, count: int, rng: np.random.Generator, flips: bool = True,
                 rotate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random training pairs for a 2.5D network: ``slices`` z-slices in, the centre slice out.

    Args:
        inputs, targets: aligned volumes (z, y, x), one pair per tomogram; targets may be
            float (regression) or integer labels (segmentation).
        size: slab edge in y and x (volumes smaller than that are zero-padded).
        slices: odd number of input slices.
        count: number of pairs.
        rng: all randomness comes from it.
        flips: random flips along z, y and x.
        rotate: also rotate by random multiples of 90° in the (y, x) plane. Off by default:
            rotating an *image* turns the tilt axis (y) into x without moving the missing
            wedge's artefacts with it, so the network sees objects at orientations the
            microscope never produced them at (used on purpose in the missing-wedge
            experiment).
    Returns:
        ``x`` (count, slices, size, size) float32 and ``y`` (count, 1, size, size) float32, or
        (count, size, size) int64 for integer targets.
    """
    if slices < 1 or slices % 2 == 0:
        raise ConfigError(f"slices must be odd, got {slices}")
    c = slices // 2
    labels = np.issubdtype(np.asarray(targets[0]).dtype, np.integer)
    xs = np.zeros((count, slices, size, size), np.float32)
    ys = np.zeros((count, size, size), np.int64 if labels else np.float32)
    for i in range(count):
        k = int(rng.integers(len(inputs)))
        vol, tgt = inputs[k], targets[k]
        nz, ny, nx = vol.shape
        z = int(rng.integers(0, nz))
        y0 = int(rng.integers(0, max(ny - size, 0) + 1))
        x0 = int(rng.integers(0, max(nx - size, 0) + 1))
        zs = np.clip(np.arange(z - c, z + c + 1), 0, nz - 1)
        a = vol[zs, y0 : y0 + size, x0 : x0 + size]
        b = tgt[z, y0 : y0 + size, x0 : x0 + size]
        if flips:
            if rng.random() < 0.5:
                a = a[::-1]
            if rng.random() < 0.5:
                a, b = a[:, ::-1], b[::-1]
            if rng.random() < 0.5:
                a, b = a[:, :, ::-1], b[:, ::-1]
        if rotate and a.shape[1] == a.shape[2]:
            k = int(rng.integers(4))
            a, b = np.rot90(a, k, axes=(1, 2)), np.rot90(b, k)
        xs[i, :, : a.shape[1], : a.shape[2]] = a
        ys[i, : b.shape[0], : b.shape[1]] = b
    return xs, (ys if labels else ys[:, None])


def pad_to(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` zero-padded at the end of every axis shorter than ``size`` (unchanged if none)."""
    pad = [(0, max(0, size - n)) for n in a.shape]
    return np.pad(a, pad) if any(p[1] for p in pad) else a


def augment(rng: np.random.Generator, *cubes: np.ndarray) -> list[np.ndarray]:
    """The same random flips along each axis and 90° rotation applied to every cube."""
    flips = [ax for ax in range(3) if rng.random() < 0.5]
    k = int(rng.integers(0, 4))
    plane = [(0, 1), (0, 2), (1, 2)][int(rng.integers(0, 3))]
    result = []
    for cube in cubes:
        c = np.flip(cube, axis=flips) if flips else cube
        result.append(np.ascontiguousarray(np.rot90(c, k=k, axes=plane)))
    return result


def _window(size: int, stride: int, weight: str) -> np.ndarray:
    """1D weight profile of a tile."""
    if weight == "core":
        w = np.zeros(size)
        m = (size - stride) // 2
        w[m : m + stride] = 1.0
        return w
    if weight == "gaussian":
        x = np.arange(size) - (size - 1) / 2
        return np.exp(-0.5 * (x / (size / 4)) ** 2) + 1e-3
    if weight == "uniform":
        return np.ones(size)
    raise ConfigError(f"unknown tile weight {weight!r}; use 'core', 'gaussian' or 'uniform'")


def sliding_window(
    volume: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    patch: int = 32,
    stride: int = 20,
    weight: str = "core",
    batch_size: int = 8,
    pad_mode: str = "constant",
    progress: bool = False,
) -> np.ndarray:
    """Apply ``fn`` to overlapping cubes of ``volume`` and blend them into one volume.

    Args:
        volume: array (z, y, x).
        fn: maps a batch (B, patch, patch, patch) to an array of the same shape.
        patch: tile edge in voxels.
        stride: step between tiles; ``patch - stride`` voxels of overlap.
        weight: ``"core"``, ``"gaussian"`` or ``"uniform"`` blending (see module doc).
        batch_size: tiles per call of ``fn``.
        pad_mode: ``numpy.pad`` mode for the border (``"constant"`` = zeros).
        progress: show a tqdm bar over batches.
    Returns:
        float32 array of the input's shape.

    Examples:
        >>> import numpy as np
        >>> from cryolab.tiles import sliding_window
        >>> volume = np.random.default_rng(0).random((20, 20, 20)).astype(np.float32)
        >>> same = sliding_window(volume, lambda cubes: cubes, patch=8, stride=4, weight="gaussian")
        >>> bool(np.allclose(same, volume))    # an identity function gives the input back
        True
    """
    if not 0 < stride <= patch:
        raise ConfigError(f"stride must be in (0, patch]; got stride {stride}, patch {patch}")
    volume = np.asarray(volume, dtype=np.float32)
    margin = (patch - stride) // 2
    pads, starts = [], []
    for n in volume.shape:
        tiles = max(1, int(np.ceil(n / stride)))
        total = (tiles - 1) * stride + patch
        pads.append((margin, total - n - margin))
        starts.append(range(0, total - patch + 1, stride))
    padded = np.pad(volume, pads, mode=pad_mode)
    w1 = _window(patch, stride, weight)
    w3 = w1[:, None, None] * w1[None, :, None] * w1[None, None, :]
    acc = np.zeros(padded.shape, dtype=np.float64)
    norm = np.zeros(padded.shape, dtype=np.float64)
    corners = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    batches = range(0, len(corners), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="tiles", unit="batch")
    for first in batches:
        group = corners[first : first + batch_size]
        cubes = np.stack([padded[z : z + patch, y : y + patch, x : x + patch] for z, y, x in group])
        result = np.asarray(fn(cubes), dtype=np.float64)
        if result.shape != cubes.shape:
            raise ConfigError(f"fn returned shape {result.shape}, expected {cubes.shape}")
        for (z, y, x), r in zip(group, result, strict=True):
            acc[z : z + patch, y : y + patch, x : x + patch] += r * w3
            norm[z : z + patch, y : y + patch, x : x + patch] += w3
    inner = tuple(slice(p[0], p[0] + n) for p, n in zip(pads, volume.shape, strict=True))
    return (acc[inner] / norm[inner]).astype(np.float32)


def predict_volume(
    model,  # noqa: ANN001 - a torch module; torch is imported lazily
    volume: np.ndarray,
    patch: int = 32,
    stride: int = 20,
    weight: str = "core",
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Run a 3D network (input and output (B, 1, D, H, W)) over a whole map tile by tile."""
    import torch

    from .train import pick_device

    dev = pick_device(device) if device else next(model.parameters()).device
    model = model.to(dev).eval()

    def run(cubes: np.ndarray) -> np.ndarray:
        with torch.inference_mode():  # no autograd bookkeeping at all (faster than no_grad)
            x = torch.from_numpy(cubes[:, None]).to(dev)
            return model(x)[:, 0].float().cpu().numpy()

    return sliding_window(volume, run, patch, stride, weight, batch_size, progress=progress)
