"""Applying a trained network to a map: the one path from a user's map to a prediction on its grid.

Every network of the book was trained on maps prepared one way — a voxel size, a scaling —
and sees them cut into tiles. :func:`apply_model` runs the whole path once, for every command
and chapter that applies a network (``cryolab sharpen --method unet3d|vae``, ``cryolab
denoise``, ``cryolab segment``, ``cryolab simulate-map --method gan``)::

    map ─ resample to the training voxel size ─ normalise (:data:`SCALINGS`) ─ tiles ─ network
        ─ undo the normalisation ─ resample back onto the input's grid

The tiling and the network are one callable, ``predict(array) -> array`` (for example
:func:`cryolab.tiles.predict_volume` or :func:`cryolab.nn.unet.denoise_volume` with a model),
so the same path serves 3D U-Nets, VAEs, 2.5D tomogram U-Nets and the GAN.

:func:`generate_map` is struc2mapGAN's application: its input is not a map but a structure,
simulated as a 2 Å molmap on the generator's 1 Å grid, then put through :func:`apply_model`.

Examples:
    >>> import numpy as np
    >>> from cryolab.apply import apply_model
    >>> from cryolab.io import Volume
    >>> vol = Volume(np.random.default_rng(0).normal(5.0, 2.0, (8, 8, 8)), 1.0, 0.0)
    >>> same = apply_model(vol, lambda x: x, scaling="zscore")   # an identity "network"
    >>> bool(np.allclose(same.data, vol.data, atol=1e-5))
    True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import density
from .degrade import blur_to_resolution
from .errors import ConfigError
from .io import Volume
from .metrics import model_mask
from .normalise import percentile_scale, robust_zscore, zscore

__all__ = ["SCALINGS", "INPUT_CLIP", "WHOLE_MAP_MEMORY", "apply_model", "condition_channel",
           "whole_map_fits", "generate_map"]

#: Tomogram networks see inputs clipped to ± this many robust standard deviations, so that the
#: gold beads' extreme values do not set the scale.
INPUT_CLIP = 4.0

#: Bytes that struc2mapGAN's generator needs per voxel and per channel of its width
#: (``base_channels``) to run over a whole map at once: the measured peak of a CPU pass under
#: ``torch.inference_mode`` (torch 2.13) was about 720 B per voxel at width 8 and 2.5 kB at
#: width 32; this rounds it up.
GAN_BYTES_PER_VOXEL_CHANNEL = 96
#: :func:`generate_map` runs the generator over the whole map at once when the estimate of
#: :func:`whole_map_fits` stays within this many bytes (2 GiB: about 2.8 million voxels of 1 Å,
#: a 140 Å cube, at the shipped width 8), and over tiles beyond.
WHOLE_MAP_MEMORY = 2 * 2**30

Undo = Callable[[np.ndarray], np.ndarray]


def _percentile(data: np.ndarray) -> tuple[np.ndarray, Undo]:
    top = float(np.percentile(data, 99.9))
    return percentile_scale(data, 99.9).astype(np.float32), lambda y: y * top


def _unit_percentile(data: np.ndarray) -> tuple[np.ndarray, Undo]:
    scaled = percentile_scale(np.asarray(data, np.float32), 99.9, nonzero=True, clip=(0.0, 1.0))
    return scaled, _no_undo("unit_percentile")


def _zscore(data: np.ndarray) -> tuple[np.ndarray, Undo]:
    mean, std = float(data.mean()), float(data.std())
    return zscore(data).astype(np.float32), lambda y: y * std + mean


def _robust(data: np.ndarray) -> tuple[np.ndarray, Undo]:
    scaled = robust_zscore(np.asarray(data, np.float32), clip=INPUT_CLIP).astype(np.float32)
    return scaled, _no_undo("robust_zscore")


def _no_undo(name: str) -> Undo:
    def undo(y: np.ndarray) -> np.ndarray:
        raise ConfigError(f"scaling {name!r} cannot be undone: pass restore_units=False")

    return undo


#: How a network's inputs were scaled in training, by name: each maps an array to
#: ``(scaled float32 array, undo)``, where ``undo`` puts a prediction back in the input's units.
#:
#: - ``"percentile"``: divide by the 99.9th percentile (super-resolution U-Net);
#: - ``"unit_percentile"``: divide by the 99.9th percentile of the non-zero voxels, clip to
#:   [0, 1] (struc2mapGAN; not undone: the output is in the curated targets' units);
#: - ``"zscore"``: mean 0, standard deviation 1 (VAE);
#: - ``"robust_zscore"``: median 0, robust standard deviation 1, clipped to ±:data:`INPUT_CLIP`
#:   (tomogram U-Nets; not undone: outputs are in the prior's standardised units or labels).
SCALINGS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, Undo]]] = {
    "percentile": _percentile,
    "unit_percentile": _unit_percentile,
    "zscore": _zscore,
    "robust_zscore": _robust,
}


def apply_model(
    volume: Volume,
    predict: Callable[[np.ndarray], np.ndarray],
    scaling: str,
    voxel_size: float | None = None,
    restore_units: bool = True,
    order: int = 3,
    mode: str = "nearest",
    postprocess: Callable[[np.ndarray, Volume], np.ndarray] | None = None,
) -> Volume:
    """Run a network over a map and return its prediction on the map's own grid.

    Args:
        volume: the input map.
        predict: the tiled network: a normalised (z, y, x) array in, a prediction of the same
            shape out.
        scaling: the training data's scaling, a key of :data:`SCALINGS`.
        voxel_size: the network's voxel size in Å; the map is resampled to it first (and the
            prediction back onto the input's grid) unless its voxels already have that size.
            None: use the map as it is.
        restore_units: undo the scaling on the prediction (False keeps the network's units,
            e.g. class labels or standardised densities).
        order, mode: spline order and edge mode of both resamplings
            (:func:`cryolab.density.resample`).
        postprocess: ``fn(prediction, grid) -> prediction`` on the network's grid, before the
            resampling back (e.g. zeroing voxels far from a model).

    Returns:
        A :class:`~cryolab.io.Volume` on ``volume``'s grid (same shape, voxel size, origin).
    """
    if scaling not in SCALINGS:
        raise ConfigError(f"unknown scaling {scaling!r}; choose one of {sorted(SCALINGS)}")
    work = volume if voxel_size is None else density.resample(volume, voxel_size, order=order,
                                                              mode=mode)
    x, undo = SCALINGS[scaling](work.data)
    y = np.asarray(predict(x))
    if restore_units:
        y = undo(y)
    if postprocess is not None:
        y = postprocess(y, work)
    out = work.with_data(y)
    return out if work is volume else density.resample(out, like=volume, order=order, mode=mode)


def condition_channel(x: np.ndarray, resolution: float, input_resolution: float = 2.0
                      ) -> np.ndarray:
    """The second input channel of the resolution-conditioned struc2mapGAN generator: the
    (2 Å) molmap input blurred to ``resolution`` Å, i.e. a molmap at that resolution.

    Why not simply a constant channel holding R? Every block of the generator normalises its
    channels per cube (InstanceNorm subtracts each channel's mean), which erases a spatially
    constant input almost entirely; a map that *looks* like resolution R survives it.
    """
    return blur_to_resolution(x, input_resolution, resolution)


def whole_map_fits(generator, shape: tuple[int, ...],  # noqa: ANN001 - a torch module
                   max_memory: float = WHOLE_MAP_MEMORY) -> bool:
    """Whether struc2mapGAN's ``generator`` may run over a map of ``shape`` voxels (its 1 Å
    grid) at once: its estimated memory, voxels × width × :data:`GAN_BYTES_PER_VOXEL_CHANNEL`,
    stays within ``max_memory`` bytes.

    Examples:
        >>> from cryolab.apply import whole_map_fits
        >>> from cryolab.nn.unetpp import UNetPlusPlus3D
        >>> whole_map_fits(UNetPlusPlus3D(8), (68, 84, 82))    # haemoglobin 5ME2: 360 MB
        True
        >>> whole_map_fits(UNetPlusPlus3D(8), (400, 400, 400))
        False
    """
    width = generator.hparams.get("base_channels", 32)
    return float(np.prod(shape)) * width * GAN_BYTES_PER_VOXEL_CHANNEL <= max_memory


def generate_map(
    generator,  # noqa: ANN001 - a torch module
    source: Volume | object,
    on_grid: Volume | None = None,
    input_resolution: float = 2.0,
    voxel_size: float = 1.0,
    device: str | None = None,
    patch: int = 32,
    core: int = 20,
    batch_size: int = 8,
    progress: bool = False,
    resolution: float | None = None,
    mask_radius: float | None = None,
    whole: bool | None = None,
    max_memory: float = WHOLE_MAP_MEMORY,
) -> Volume:
    """A struc2mapGAN map from a structure (or from any map already on a grid).

    A structure is first turned into molmap at ``input_resolution`` Å on a grid of
    ``voxel_size`` Å voxels (the training sampling) — ``on_grid`` itself when its voxels are that
    size, else a grid covering it, with the result interpolated back onto ``on_grid`` — and
    scaled to [0, 1] like the training inputs (``"unit_percentile"``). The generator then runs
    over cubic tiles of ``patch`` voxels whose central cubes of ``core`` voxels are
    stitched back together; negative outputs
    are set to 0 (the curated targets are non-negative). A resolution-conditioned generator
    (two input channels) needs the wanted ``resolution`` in Å. With ``mask_radius`` (Å; needs
    a structure) voxels farther than that from every atom are set to 0 — the definition of the
    curated targets (:func:`cryolab.curate.curate_pair`) applied to the output.

    ``whole=True`` runs the (fully convolutional) generator once over the whole map, padded
    with zeros to a multiple of its down-sampling factor, instead of over overlapping tiles:
    about (patch / core)³ ≈ 4× less work, and each voxel sees its whole context. The result
    differs from the tiled one everywhere, not only near seams: every block of the generator
    normalises its channels (InstanceNorm) over what it sees, the whole map or one tile. On
    the chapter-01 maps the whole-map pass scores better against the experimental maps
    (``benchmarks/bench_inference.py`` measures both). ``whole=None`` (the default) chooses
    the whole map when :func:`whole_map_fits` within ``max_memory`` bytes, else tiles.
    """
    import torch

    from .tiles import sliding_window
    from .train import pick_device

    conditioned = generator.hparams.get("in_channels", 1) == 2
    if conditioned and resolution is None:
        raise ConfigError("this generator is conditioned on resolution: pass resolution=")
    if mask_radius is not None and isinstance(source, Volume):
        raise ConfigError("mask_radius needs a structure as the source, not a map")
    work = on_grid
    if on_grid is not None and not np.allclose(on_grid.voxel_size, voxel_size):
        work = density.resample(on_grid, voxel_size)  # the generator was trained at 1 Å
    if isinstance(source, Volume):
        start = source if work is None else density.resample(source, like=work)
    else:
        start = density.molmap(source, input_resolution, on_grid=work, voxel_size=voxel_size)
    dev = pick_device(device) if device else next(generator.parameters()).device
    generator = generator.to(dev).eval()
    if whole is None:
        whole = whole_map_fits(generator, start.shape, max_memory)

    def run(cubes: np.ndarray) -> np.ndarray:
        if conditioned:
            blurred = np.stack([condition_channel(c, resolution, input_resolution) for c in cubes])
            cubes = np.stack([cubes, blurred], axis=1)
        else:
            cubes = cubes[:, None]
        batch = torch.from_numpy(np.ascontiguousarray(cubes, dtype=np.float32))
        with torch.inference_mode():
            return generator(batch.to(dev))[:, 0].float().cpu().numpy()

    def tiles(x: np.ndarray) -> np.ndarray:
        if not whole:
            return sliding_window(x, run, patch, core, "core", batch_size, progress=progress)
        step = 2 ** (generator.hparams.get("levels", 1) - 1)
        padded = np.pad(x, [(0, -n % step) for n in x.shape])
        return run(padded[None])[0][tuple(slice(0, n) for n in x.shape)]

    def clean(out: np.ndarray, grid: Volume) -> np.ndarray:
        out = np.maximum(out, 0.0)  # targets are non-negative: a negative output is pure error
        if mask_radius is None:
            return out
        xyz = density.atoms_from(source).xyz
        near = model_mask(grid.shape, grid.voxel_size, grid.origin, xyz, mask_radius)
        return np.where(near, out, 0.0)

    result = apply_model(start, tiles, "unit_percentile", restore_units=False, postprocess=clean)
    return result if work is on_grid else density.resample(result, like=on_grid)
