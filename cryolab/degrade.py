"""Making maps worse on purpose: the super-resolution paper's noise model and Fourier filters.

Mullick et al. turn a high-resolution map into a cryo-EM-looking one in three steps:

1. grey dilation with a ball structuring element (every voxel takes the maximum of its
   neighbourhood, which fattens and merges features the way low resolution does);
2. a Gaussian filter (blur);
3. additive Gaussian noise, its standard deviation relative to the map's.

:func:`degrade` applies them with a :class:`NoiseParams`. Two cleaner, linear alternatives are
offered as well: :func:`lowpass` (cut all spatial frequencies beyond ``1/resolution``) and
:func:`bfactor_blur` (multiply the Fourier transform by ``exp(−B s²/4)``, ``s = |k|`` in 1/Å,
the temperature-factor fall-off); :func:`blur_to_resolution` takes a molmap-like map from one
resolution to a worse one. The Fourier engine is :func:`cryolab.fourier.filter_volume`, which
honours the voxel size of each axis.

Real cryo-EM maps differ from the paper's degraded maps in ways the chapters measure
(:func:`cryolab.superres.map_character`): their amplitudes fall off as a B-factor, their noise
is coloured (it falls off with frequency too, after the reconstruction's filters), they are
low-passed at a resolution that varies from map to map, often masked (exact zeros in the
solvent) and sampled on voxels of 0.8–1.4 Å. :func:`realistic_degrade` draws each of those
from a :class:`RealisticParams` range, with :func:`coloured_noise` for the noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import ball

from .density import MOLMAP_SIGMA_FACTOR, resample
from .errors import ConfigError
from .fourier import filter_volume, fourier_filter, raised_cosine
from .io import Volume

__all__ = [
    "NoiseParams",
    "degrade",
    "grey_dilate",
    "lowpass",
    "bfactor_blur",
    "blur_to_resolution",
    "coloured_noise",
    "RealisticParams",
    "realistic_degrade",
]


@dataclass(frozen=True)
class NoiseParams:
    """Settings of the paper's noise model.

    Attributes:
        ball_radius: radius of the ball structuring element of the grey dilation, in voxels
            (0 = no dilation).
        sigma: standard deviation of the Gaussian filter, in voxels.
        noise: standard deviation of the additive Gaussian noise relative to the standard
            deviation of the blurred map.
    """

    ball_radius: int = 1
    sigma: float = 1.5
    noise: float = 0.3

    def __post_init__(self) -> None:
        if self.ball_radius < 0 or self.sigma < 0 or self.noise < 0:
            raise ConfigError(f"noise parameters must be non-negative, got {asdict(self)}")

    def as_dict(self) -> dict[str, float]:
        """The parameters as a plain dict (for metrics.json)."""
        return asdict(self)


def grey_dilate(data: np.ndarray, radius: int) -> np.ndarray:
    """Grey-scale dilation of a (z, y, x) array with a ball of ``radius`` voxels."""
    if radius == 0:
        return np.asarray(data, dtype=np.float32)
    return ndimage.grey_dilation(data, footprint=ball(radius).astype(bool)).astype(np.float32)


def degrade(volume: Volume, params: NoiseParams, rng: np.random.Generator) -> Volume:
    """The paper's noise model: grey dilation, Gaussian filter, additive Gaussian noise.

    Args:
        volume: the high-resolution map.
        params: ball radius and σ in voxels, noise relative to the blurred map's std.
        rng: source of the noise.
    Returns:
        A new :class:`Volume` on the same grid.

    Examples:
        >>> import numpy as np
        >>> from cryolab.degrade import NoiseParams, degrade
        >>> from cryolab.io import Volume
        >>> sharp = Volume(np.pad(np.ones((2, 2, 2)), 7), 1.0, 0.0)
        >>> noisy = degrade(sharp, NoiseParams(ball_radius=1, sigma=1.0, noise=0.1),
        ...                 np.random.default_rng(0))
        >>> noisy.shape == sharp.shape, bool(noisy.data.max() < sharp.data.max())
        (True, True)
    """
    data = grey_dilate(volume.data, params.ball_radius)
    if params.sigma > 0:
        data = ndimage.gaussian_filter(data, params.sigma, mode="constant")
    if params.noise > 0:
        data = data + rng.normal(0.0, params.noise * float(data.std()), data.shape)
    return volume.with_data(data.astype(np.float32))


def lowpass(volume: Volume, resolution: float, edge: float = 0.0) -> Volume:
    """Remove spatial frequencies beyond ``1/resolution`` (resolution in Å).

    Args:
        volume: the map.
        resolution: cut-off in Å (must exceed twice the voxel size to change anything).
        edge: width in 1/Å of a raised-cosine roll-off centred on the cut-off (0 = a hard
            sphere, which rings a little).

    Examples:
        >>> import numpy as np
        >>> from cryolab.degrade import lowpass
        >>> from cryolab.fourier import frequency_grid
        >>> from cryolab.io import Volume
        >>> noise = Volume(np.random.default_rng(0).normal(size=(16, 16, 16)), 1.0, 0.0)
        >>> smooth = lowpass(noise, resolution=4.0)
        >>> k = frequency_grid(smooth.shape, 1.0)
        >>> bool(np.abs(np.fft.rfftn(smooth.data))[k > 0.25].max() < 1e-3)   # nothing beyond 1/4 Å
        True
    """
    if resolution <= 0 or edge < 0:
        raise ConfigError(f"lowpass needs resolution > 0 Å and edge ≥ 0, got {resolution}, {edge}")
    start = 1.0 / resolution if edge == 0 else 1.0 / resolution - edge / 2
    return filter_volume(volume, lambda s: raised_cosine(s, start, edge))


def bfactor_blur(volume: Volume, bfactor: float) -> Volume:
    """Blur with a temperature factor: multiply the transform by ``exp(−B s²/4)`` (B in Å²).

    Examples:
        >>> import numpy as np
        >>> from cryolab.degrade import bfactor_blur
        >>> from cryolab.io import Volume
        >>> point = Volume(np.pad(np.ones((1, 1, 1)), 8), 1.0, 0.0)
        >>> blurred = bfactor_blur(point, 50.0)
        >>> round(float(blurred.data.sum()), 4), bool(blurred.data.max() < 1)   # mass kept, spread
        (1.0, True)
    """
    if bfactor < 0:
        raise ConfigError(
            f"bfactor_blur needs B ≥ 0 Å², got {bfactor}; a negative B is sharpening"
        )
    return filter_volume(volume, lambda s: np.exp(-bfactor * s**2 / 4.0))


def blur_to_resolution(data: np.ndarray, native: float, target: float, voxel_size: float = 1.0
                       ) -> np.ndarray:
    """Blur a map of resolution ``native`` Å to ``target`` Å (no change if ``target <= native``).

    Gaussians add in quadrature, so a Gaussian of σ² = σ(target)² − σ(native)², with molmap's
    σ(R) = R/(π√2) (:data:`cryolab.density.MOLMAP_SIGMA_FACTOR`), turns a molmap-like blur at
    ``native`` into one at ``target``. Returns float32.
    """
    if target <= native:
        return np.asarray(data, dtype=np.float32)
    sigma = MOLMAP_SIGMA_FACTOR * np.sqrt(target**2 - native**2) / voxel_size
    return ndimage.gaussian_filter(np.asarray(data, dtype=np.float32), sigma)


def coloured_noise(shape: tuple[int, ...], voxel_size: float, bfactor: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of standard deviation 1 whose amplitude spectrum falls off as
    ``exp(−B s²/4)`` (``bfactor`` B in Å², voxel size in Å; B = 0 is white noise). Float32."""
    if bfactor < 0:
        raise ConfigError(f"the noise B-factor must be ≥ 0 Å², got {bfactor}")
    white = rng.standard_normal(shape)
    out = fourier_filter(white, lambda s: np.exp(-bfactor * s**2 / 4.0), voxel_size)
    return (out / out.std()).astype(np.float32)


@dataclass(frozen=True)
class RealisticParams:
    """Ranges (low, high) from which :func:`realistic_degrade` draws each map's settings.

    Attributes:
        resolution: low-pass cut-off in Å (raised-cosine edge of 0.03/Å).
        bfactor: B-factor blur of the signal in Å².
        noise: standard deviation of the added noise relative to that of the blurred signal
            inside the molecule.
        noise_bfactor: fall-off of the noise spectrum in Å² (0 = white).
        voxel: voxel size in Å the map is sampled on before coming back to the input grid
            (the interpolation of a map deposited on other voxels).
        mask_probability: chance that the solvent is masked to exact zeros (beyond
            ``mask_distance`` Å of the molecule's density, soft edge).
        mask_distance: see ``mask_probability``, Å.
    """

    resolution: tuple[float, float] = (2.8, 4.5)
    bfactor: tuple[float, float] = (0.0, 100.0)
    noise: tuple[float, float] = (0.3, 1.2)
    noise_bfactor: tuple[float, float] = (0.0, 80.0)
    voxel: tuple[float, float] = (0.85, 1.4)
    mask_probability: float = 0.3
    mask_distance: float = 4.0

    def __post_init__(self) -> None:
        for name in ("resolution", "bfactor", "noise", "noise_bfactor", "voxel"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ConfigError(f"RealisticParams.{name} needs 0 ≤ low ≤ high, got "
                                  f"({low}, {high})")
        if self.resolution[0] <= 0 or self.voxel[0] <= 0:
            raise ConfigError("RealisticParams: resolution and voxel must be positive (Å)")
        if not 0 <= self.mask_probability <= 1:
            raise ConfigError(f"mask_probability must lie in [0, 1], got {self.mask_probability}")

    def as_dict(self) -> dict:
        """The ranges as a plain dict (for checkpoints and metrics.json)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def realistic_degrade(volume: Volume, params: RealisticParams, rng: np.random.Generator
                      ) -> tuple[Volume, dict[str, float]]:
    """A map that looks like an experimental one, from a model map: B-factor blur, coloured
    noise, low-pass, optional solvent mask and resampling through another voxel size, each
    setting drawn from ``params``'s ranges.

    Returns the degraded map on ``volume``'s grid and the settings drawn
    (``resolution``, ``bfactor``, ``noise``, ``noise_bfactor``, ``voxel`` and ``masked``).

    Examples:
        >>> import numpy as np
        >>> from cryolab.degrade import RealisticParams, realistic_degrade
        >>> from cryolab.io import Volume
        >>> sharp = Volume(np.pad(np.ones((4, 4, 4)), 12), 1.0, 0.0)
        >>> bad, drawn = realistic_degrade(sharp, RealisticParams(), np.random.default_rng(0))
        >>> bad.shape == sharp.shape, 2.8 <= drawn["resolution"] <= 4.5
        (True, True)
    """
    def draw(name: str) -> float:
        low, high = getattr(params, name)
        return float(rng.uniform(low, high))

    drawn = {name: draw(name) for name in ("resolution", "bfactor", "noise", "noise_bfactor",
                                            "voxel")}
    voxel = float(volume.voxel_size.max())
    signal = bfactor_blur(volume, drawn["bfactor"]).data
    inside = volume.data > np.quantile(volume.data, 0.8)
    scale = float(signal[inside].std()) if inside.any() else float(signal.std())
    noisy = signal + drawn["noise"] * scale * coloured_noise(volume.shape, voxel,
                                                             drawn["noise_bfactor"], rng)
    out = lowpass(volume.with_data(noisy), drawn["resolution"], edge=0.03)
    drawn["masked"] = float(rng.random() < params.mask_probability)
    if drawn["masked"]:
        envelope = ndimage.gaussian_filter(volume.data.astype(np.float32), 2.0 / voxel)
        near = envelope > 0.05 * float(envelope.max())
        distance = ndimage.distance_transform_edt(~near, sampling=volume.voxel_size)
        soft = np.clip(1.0 - (distance - params.mask_distance) / 3.0, 0.0, 1.0)
        out = out.with_data((out.data * soft).astype(np.float32))
    if not np.isclose(drawn["voxel"], voxel):
        coarse = resample(out, drawn["voxel"], order=3, mode="nearest")
        out = resample(coarse, like=out, order=3, mode="nearest")
    return out.with_data(out.data.astype(np.float32)), drawn
