"""The microscope: tilt schemes, projection, CTF, dose, detection and radiation damage.

Geometry. The tilt axis is y. A point at (x, z) (relative to the box centre, in voxels) lands
on the detector at ``u = x cos θ + z sin θ``. Projections are voxel-driven: each voxel's value
is split between the two detector pixels nearest its ``u`` (linear weights), which makes the
projector a sparse matrix per tilt acting on every y at once; its transpose is the
back-projector of :mod:`cryolab.tomo.reconstruct`.

CTF. The standard weak-phase CTF (CTFFIND, RELION), written in this module's χ::

    CTF(k) = E(k) · ((1 − Q) sin χ'(k) − Q cos χ'(k)),     χ' = χ − ψ,
    χ(k)   = π/2 · (Cs λ³ k⁴ − 2 Δz λ k²),
    E(k)   = exp(−(k / (σ · k_Nyquist))²)

Sign convention: **Δz > 0 is underfocus** (the defocus term then opposes spherical aberration,
as it must for Scherzer-like underfocus), so χ < 0 at low k. The Thon rings (zeros of sin χ)
are then the usual underfocus rings, the first near ``1/sqrt(λ Δz)``; the CTF is −Q at k = 0
and negative over its whole first lobe: dense matter (positive phase) comes out dark in the
image, as in real underfocused micrographs. ψ is the extra phase shift of a phase plate
(degrees in the configuration): at ψ = 90° the phase term ``sin χ`` becomes ``−cos χ``, so the
low frequencies carry full (dark) contrast. The image is ``1 + 2·CTF ⊛ φ`` with φ the phase
shift. CTS inverts the projections' contrast; so do we: the ideal (prior) projections are
``−φ``, so the prior and the tomogram share their polarity (dense matter dark).

The CTS paper prints the amplitude term with the other sign, ``(1 − Q) sin χ + Q cos χ``
(``convention="paper"``, kept to reproduce CTS): with our χ its Q term opposes the sine term,
so the CTF starts at +Q at k = 0 and has one extra zero at very low frequency, where
χ = −atan(Q/(1 − Q)) (≈ 1/200 Å at 5 µm), below which matter turns bright: the very lowest
frequencies have the opposite polarity, which no real microscope produces.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import fft, sparse

from ..errors import ConfigError
from ..fourier import frequency_grid, radial_average
from ..io import Volume
from ..validation import number

__all__ = [
    "MicroscopeConfig",
    "TiltSeries",
    "electron_wavelength",
    "interaction_constant",
    "tilt_angles",
    "projection_matrix",
    "project",
    "ctf",
    "apply_ctf",
    "ctf_zeros",
    "thon_rings",
    "first_zero",
    "critical_exposure",
    "damage",
    "damage_fade",
    "detect",
    "Exposure",
    "Stage",
    "cubic_voxel",
    "phase_projections",
    "ctf_transfer",
    "damage_transfer",
    "counting_detector",
    "ideal_detector",
    "stages_for",
    "acquire",
    "damage_noise",
    "VOLTS_PER_DENSITY",
    "ANGSTROM_PER_UM",
    "ANGSTROM_PER_MM",
]

_H = 6.62607015e-34  # J s
_M0 = 9.1093837015e-31  # kg
_E = 1.602176634e-19  # C
_C = 299792458.0  # m/s

#: Unit conversions: configuration values in µm (defocus) and mm (Cs) to Å.
ANGSTROM_PER_UM = 1e4
ANGSTROM_PER_MM = 1e7

#: Potential (V) per electron density (e⁻/Å³): vitreous ice, 0.314 e⁻/Å³, has a mean inner
#: potential of about 4.5 V. Lets atomic-number sums stand in for the scattering potential.
VOLTS_PER_DENSITY = 4.5 / 0.314


def electron_wavelength(kv: float) -> float:
    """Relativistic electron wavelength in Å at an accelerating voltage in kV."""
    v = kv * 1e3
    return _H / math.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2))) * 1e10


def interaction_constant(kv: float) -> float:
    """σ_e in rad / (V·Å): phase shift per volt of potential per Å of path."""
    v = kv * 1e3
    lam = electron_wavelength(kv) * 1e-10
    sigma = 2 * math.pi / (lam * v) * (_M0 * _C**2 + _E * v) / (2 * _M0 * _C**2 + _E * v)
    return sigma * 1e-10


# ------------------------------------------------------------------------------- tilts


def tilt_angles(
    scheme: str | Sequence[float] = "dose-symmetric",
    min_angle: float = -60.0,
    max_angle: float = 60.0,
    step: float = 2.0,
    start: float = 0.0,
    group: int = 1,
) -> np.ndarray:
    """Tilt angles (degrees) in acquisition order.

    Args:
        scheme: ``"unidirectional"`` (min → max), ``"bidirectional"`` (start → max, then
            start − step → min), ``"dose-symmetric"`` (0, +s, −s, +2s, −2s, ... in groups of
            ``group`` tilts per side, Hagen's scheme) or an explicit list of angles.
        min_angle, max_angle, step: the range and increment in degrees.
        start: the first tilt of the bidirectional and dose-symmetric schemes.
        group: tilts taken on one side before switching (dose-symmetric).

    Examples:
        >>> from cryolab.tomo.microscope import tilt_angles
        >>> tilt_angles("dose-symmetric", -6, 6, 3).tolist()
        [0.0, 3.0, -3.0, 6.0, -6.0]
        >>> tilt_angles("unidirectional", -6, 6, 3).tolist()
        [-6.0, -3.0, 0.0, 3.0, 6.0]
    """
    if not isinstance(scheme, str):
        angles = np.asarray(scheme, dtype=np.float64).ravel()
        if angles.size == 0 or np.any(np.abs(angles) >= 90):
            raise ConfigError(f"tilt angles must be a non-empty list strictly inside ±90°, "
                              f"got {angles.tolist()}")
        return angles
    if step <= 0:
        raise ConfigError(f"tilt step must be positive, got {step}°")
    if not -90 < min_angle < max_angle < 90:
        raise ConfigError(f"impossible tilt range [{min_angle}°, {max_angle}°]: need "
                          f"-90 < min < max < 90")
    if not min_angle <= start <= max_angle:
        raise ConfigError(f"start tilt {start}° lies outside [{min_angle}°, {max_angle}°]")
    n_up = int(math.floor((max_angle - start) / step + 1e-9))
    n_down = int(math.floor((start - min_angle) / step + 1e-9))
    up = start + step * np.arange(1, n_up + 1)
    down = start - step * np.arange(1, n_down + 1)
    if scheme == "unidirectional":
        return np.concatenate([down[::-1], [start], up])
    if scheme == "bidirectional":
        return np.concatenate([[start], up, down])
    if scheme == "dose-symmetric":
        order: list[float] = [start]
        i = j = 0
        while i < len(up) or j < len(down):
            order += up[i:i + group].tolist()
            i += group
            order += down[j:j + group].tolist()
            j += group
        return np.asarray(order)
    raise ConfigError(f"unknown tilt scheme {scheme!r}; use unidirectional, bidirectional, "
                      f"dose-symmetric or a list of angles")


# --------------------------------------------------------------------------- projection


#: values (float32) of the volume or images that projection and back-projection handle at once
#: (y rows × the rest): about 4 MB, which bounds their working memory
SLAB_VALUES = 1 << 20


def _slab_rows(ny: int, values_per_row: int, device) -> int:
    """y rows per slab of :data:`SLAB_VALUES` values (at least one); all ``ny`` rows on a
    GPU ``device``, where the matrix is sent once per group of tilts."""
    return ny if device is not None else max(1, SLAB_VALUES // values_per_row)


def projection_matrix(nz: int, nx: int, angles: Sequence[float], nu: int | None = None
                      ) -> sparse.csc_matrix:
    """Sparse (len(angles)·nu, nz·nx) matrix: row ``t·nu + u`` sums the (z, x) voxels whose
    centre lands near detector pixel ``u`` at tilt ``angles[t]`` (degrees); linear weights.

    Coordinates are relative to the box centre ((nx−1)/2, (nz−1)/2) and the detector centre
    (nu−1)/2: ``u = x cos θ + z sin θ``. The last one is cached (a group of tilts is
    projected, or back-projected, slab after slab with the same matrix; the ideal
    reconstruction projects then back-projects each group); more would hold 16 bytes per
    voxel of a (z, x) plane per tilt each.
    """
    nu = nx if nu is None else nu
    key = (int(nz), int(nx), tuple(float(a) for a in angles), int(nu))
    if key not in _LAST_MATRIX:
        _LAST_MATRIX.clear()  # the last matrix goes before the next one is built
        _LAST_MATRIX[key] = _projection_matrix(*key)
    return _LAST_MATRIX[key]


#: the last projection matrix made, by its arguments
_LAST_MATRIX: dict[tuple, sparse.csc_matrix] = {}


def _projection_matrix(nz: int, nx: int, angles: tuple[float, ...], nu: int
                       ) -> sparse.csc_matrix:
    theta = np.radians(np.asarray(angles, dtype=np.float64))
    cos, sin = np.cos(theta), np.sin(theta)
    z = (np.arange(nz) - (nz - 1) / 2)[:, None]
    x = (np.arange(nx) - (nx - 1) / 2)[None, :]
    rows = np.empty((nz, nx, len(angles), 2), np.int32)  # int32 indices
    weights = np.empty(rows.shape, np.float32)
    for t in range(len(angles)):  # a tilt at a time: no float64 temporary of the matrix's size
        u = x * cos[t] + z * sin[t] + (nu - 1) / 2  # (nz, nx)
        lo = np.floor(u)
        frac = (u - lo).astype(np.float32)
        rows[:, :, t, 0] = lo
        rows[:, :, t, 1] = lo + 1
        weights[:, :, t, 0] = 1 - frac
        weights[:, :, t, 1] = frac
    weights[(rows < 0) | (rows >= nu)] = 0  # rays that miss the detector
    np.clip(rows, 0, nu - 1, out=rows)
    rows += (np.arange(len(angles), dtype=np.int32) * nu)[:, None]
    per_column = 2 * len(angles)  # every voxel feeds two pixels of every tilt
    indptr = np.arange(0, per_column * nz * nx + 1, per_column, dtype=np.int32)
    return sparse.csc_matrix((weights.ravel(), rows.ravel(), indptr),
                             shape=(len(angles) * nu, nz * nx))


def _torch_device(use_gpu: bool | None):
    """A CUDA torch device when asked for (None = when available), else None (numpy).

    torch is imported only when a GPU driver is present (or torch is already loaded), so the
    CPU path never pays for importing it."""
    if use_gpu is False:
        return None
    if "torch" not in sys.modules and not os.path.exists("/proc/driver/nvidia/version"):
        return None
    try:
        import torch
    except ImportError:
        return None
    if torch.cuda.is_available():
        return torch.device("cuda")
    return None


def _sparse_matmul(matrix: sparse.spmatrix, dense: np.ndarray, transpose: bool,
                   device) -> np.ndarray:
    """``matrix @ dense`` (or ``matrix.T @ dense``), on the GPU with torch when ``device``."""
    if device is None:
        return np.asarray((matrix.T if transpose else matrix) @ dense, dtype=np.float32)
    import torch

    m = (matrix.T if transpose else matrix).tocsr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        t = torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data.astype(np.float32)), size=m.shape, device=device,
            check_invariants=False,
        )
    out = t @ torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32)).to(device)
    return out.cpu().numpy()


def project(volume: np.ndarray, angles: Sequence[float], chunk: int = 32,
            use_gpu: bool | None = None) -> np.ndarray:
    """Ray sums of a (z, y, x) volume about the y axis: (len(angles), y, x) projections.

    The values are sums of voxel values along each ray (a uniform slab of thickness T voxels
    gives T / cos θ). Every row along the tilt axis y is its own 2D problem: the volume is
    read a slab of y rows at a time, and tilts are processed ``chunk`` at a time, to bound
    memory.
    """
    vol = np.asarray(volume, dtype=np.float32)
    nz, ny, nx = vol.shape
    device = _torch_device(use_gpu)
    out = np.empty((len(angles), ny, nx), np.float32)
    rows = _slab_rows(ny, nz * nx, device)
    for s in range(0, len(angles), chunk):
        part = list(angles[s:s + chunk])
        a = projection_matrix(nz, nx, part, nx)
        for y in range(0, ny, rows):
            columns = vol[:, y:y + rows].transpose(0, 2, 1).reshape(nz * nx, -1)
            k = columns.shape[1]
            proj = _sparse_matmul(a, columns, False, device).reshape(len(part), nx, k)
            out[s:s + len(part), y:y + k] = proj.transpose(0, 2, 1)
    return out


# ------------------------------------------------------------------------------------ CTF


def ctf(
    k: np.ndarray,
    defocus: float = 5.0,
    voltage: float = 300.0,
    cs: float = 2.7,
    amplitude_contrast: float = 0.07,
    envelope: float | None = 0.9,
    pixel_size: float | None = None,
    convention: str = "standard",
    phase_shift: float = 0.0,
) -> np.ndarray:
    """The contrast transfer function at spatial frequencies ``k`` (1/Å).

    Args:
        defocus: Δz in µm, positive = underfocus.
        voltage: kV. cs: spherical aberration in mm. amplitude_contrast: Q.
        envelope: σ of ``E = exp(−(k/(σ·Nyquist))²)``; None for no envelope.
        pixel_size: Å, sets the Nyquist frequency of the envelope.
        convention: ``"paper"``: ``(1 − Q) sin χ + Q cos χ`` as published; ``"standard"``:
            ``(1 − Q) sin χ − Q cos χ``, the usual weak-phase CTF (CTFFIND, RELION) in this
            χ, whose amplitude term has the same sign as the phase term's first lobe.
        phase_shift: ψ in degrees, the phase plate's shift (χ → χ − ψ); 0 without one.

    Examples:
        >>> import numpy as np
        >>> from cryolab.tomo.microscope import ctf, ctf_zeros
        >>> round(float(ctf(np.array([0.0]), envelope=None)[0]), 2)   # −Q at k = 0: dark
        -0.07
        >>> round(float(ctf(np.array([0.0]), envelope=None, convention="paper")[0]), 2)
        0.07
        >>> first = ctf_zeros(defocus=2.0, k_max=0.2, n=1, k_min=0.015)[0]
        >>> abs(float(ctf(np.array([first]), defocus=2.0, envelope=None)[0])) < 1e-3
        True
    """
    if convention not in ("paper", "standard"):
        raise ConfigError(f"unknown CTF convention {convention!r}; use 'paper' or 'standard'")
    lam = electron_wavelength(voltage)
    k = np.asarray(k, dtype=np.float64)
    chi = np.pi / 2 * (cs * ANGSTROM_PER_MM * lam**3 * k**4
                       - 2 * defocus * ANGSTROM_PER_UM * lam * k**2)
    chi = chi - math.radians(phase_shift)
    q_sign = 1.0 if convention == "paper" else -1.0
    out = (1 - amplitude_contrast) * np.sin(chi) + q_sign * amplitude_contrast * np.cos(chi)
    if envelope is not None:
        if pixel_size is None:
            raise ConfigError("ctf: the envelope needs the pixel_size (Å) for its Nyquist")
        out = out * np.exp(-((k / (envelope * 0.5 / pixel_size)) ** 2))
    return out


def apply_ctf(
    image: np.ndarray,
    pixel_size: float,
    defocus: float = 5.0,
    tilt: float = 0.0,
    strip_defocus_step: float = 0.2,
    extra_filter: np.ndarray | None = None,
    max_strips: int = 32,
    flip: bool = False,
    **ctf_kw: float,
) -> np.ndarray:
    """Filter an image (y, x) by the CTF, with the defocus gradient of a tilted specimen.

    At tilt θ the defocus varies across x (perpendicular to the tilt axis y) as
    ``Δz(x) = Δz + x·tan θ`` (x in µm from the axis). The image is filtered once per strip of
    nearly constant defocus (at most ``strip_defocus_step`` µm apart) and the filtered copies
    are blended with overlapping linear (hat) weights that sum to one, so there are no seams;
    at most ``max_strips`` strips (near ±90° the gradient would need very many).
    ``extra_filter`` (on the rfft2 grid) multiplies the CTF, e.g. the damage fade.
    ``flip`` filters by ``−sign(CTF)`` instead: phase flipping, the CTF correction of
    :func:`cryolab.tomo.reconstruct.phase_flip`. A flipped CTF-filtered image has been
    filtered by ``−|CTF|``: every Thon lobe gets the sign of the first (negative) lobe, so
    dense matter stays dark, as after IMOD's ``ctfphaseflip``.
    """
    ny, nx = image.shape
    spectrum = fft.rfft2(np.asarray(image, np.float32), workers=-1)
    if extra_filter is not None:
        spectrum *= extra_filter.astype(np.float32)
    k = frequency_grid((ny, nx), pixel_size)
    x_um = (np.arange(nx) - (nx - 1) / 2) * pixel_size * (1.0 / ANGSTROM_PER_UM)
    span = abs(math.tan(math.radians(tilt))) * (x_um[-1] - x_um[0])
    n_strips = min(max(1, int(math.ceil(span / strip_defocus_step)) + 1), max_strips)
    def transfer(dz: float) -> np.ndarray:
        h = ctf(k, dz, pixel_size=pixel_size, **ctf_kw)
        return (-np.sign(h) if flip else h).astype(np.float32)

    if n_strips == 1:
        h = transfer(defocus)
        return fft.irfft2(spectrum * h, s=(ny, nx), workers=-1).astype(np.float32)
    centres = np.linspace(x_um[0], x_um[-1], n_strips)
    dz = defocus + centres * math.tan(math.radians(tilt))
    filters = np.stack([transfer(d) for d in dz])
    strips = fft.irfft2(spectrum[None] * filters, s=(ny, nx), workers=-1)
    width = centres[1] - centres[0]
    hats = np.clip(1 - np.abs(x_um[None, :] - centres[:, None]) / width, 0, 1)  # (S, nx)
    return np.einsum("syx,sx->yx", strips, hats).astype(np.float32)


def ctf_zeros(defocus: float, k_max: float, n: int = 3, k_min: float = 1e-4,
              **ctf_kw: float) -> np.ndarray:
    """The first ``n`` zeros (1/Å) of :func:`ctf` between ``k_min`` and ``k_max`` (bracketed on
    a grid of 200 000 frequencies); ``k_min`` ≈ 0.015 skips the very-low-frequency zero of the
    paper convention's Q term. ``defocus`` in µm; ``ctf_kw`` as :func:`ctf`."""
    k = np.linspace(k_min, k_max, 200_000)
    c = ctf(k, defocus, envelope=None, **ctf_kw)
    crossing = np.nonzero(np.sign(c[1:]) != np.sign(c[:-1]))[0][:n]
    return (k[crossing] + k[crossing + 1]) / 2


def thon_rings(defocus: float, size: int, pixel_size: float, n_images: int = 4,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The power spectrum of CTF-filtered amorphous phase images (white noise, as from thin
    carbon) at ``defocus`` µm, averaged over ``n_images`` of ``size`` × ``size`` pixels of
    ``pixel_size`` Å: ``(2D log power, centred; the 2D CTF², centred)``."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((size, size))
    for _ in range(n_images):
        img = apply_ctf(rng.standard_normal((size, size)).astype(np.float32), pixel_size,
                        defocus, envelope=None)
        acc += np.abs(fft.fft2(img)) ** 2
    model = ctf(frequency_grid((size, size), pixel_size, half=False), defocus,
                envelope=None) ** 2
    return fft.fftshift(np.log(acc / n_images + 1e-9)), fft.fftshift(model)


def first_zero(log_power_2d: np.ndarray, pixel_size: float, k_min: float = 0.005,
               depth: float = 0.25) -> float:
    """The first Thon-ring zero (1/Å) seen in a centred 2D log power spectrum: the first local
    minimum of its rotational average (:func:`cryolab.fourier.radial_average`) beyond
    ``k_min`` that falls below ``depth`` × the largest power between ``k_min`` and it (shallow
    dips from noise are skipped); NaN if there is none."""
    power = fft.ifftshift(np.exp(log_power_2d))
    k, prof = radial_average(power, pixel_size)
    start = max(int(np.searchsorted(k, k_min)), 1)
    peak = 0.0
    for i in range(start, len(prof) - 1):
        peak = max(peak, prof[i])
        if prof[i] <= prof[i - 1] and prof[i] <= prof[i + 1] and prof[i] < depth * peak:
            return float(k[i])
    return float("nan")


# ------------------------------------------------------------------ dose and detection


def critical_exposure(k: np.ndarray) -> np.ndarray:
    """Grant & Grigorieff's critical exposure (e⁻/Å²) at spatial frequency k (1/Å), 300 kV."""
    k = np.maximum(np.asarray(k, dtype=np.float64), 1e-6)
    return 0.245 * k**-1.665 + 2.81


def damage_fade(shape: tuple[int, int], pixel_size: float, cumulative_dose: float,
                rate: float = 1.0) -> np.ndarray:
    """The radiation-damage fade ``exp(−rate·D/(2 N_e(k)))`` on the rfft2 grid of ``shape``
    after a cumulative dose D (e⁻/Å²): progressive blurring, high frequencies first."""
    k = frequency_grid(shape, pixel_size)
    return np.exp(-rate * cumulative_dose / (2 * critical_exposure(k))).astype(np.float32)


def damage_noise(shape: tuple[int, ...], cumulative_dose: float, noise: float,
                 rng: np.random.Generator) -> np.ndarray:
    """The random part of radiation damage: Gaussian phase noise (radians, float64) of standard
    deviation ``noise · D`` after a cumulative dose ``D`` (e⁻/Å²)."""
    return rng.normal(0.0, noise * cumulative_dose, shape)


def damage(phase: np.ndarray, pixel_size: float, cumulative_dose: float, rate: float = 1.0,
           noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Radiation damage after ``cumulative_dose`` e⁻/Å²: :func:`damage_noise` is added to the
    phase, then :func:`damage_fade` blurs."""
    phase = np.asarray(phase, np.float32)
    if cumulative_dose <= 0:
        return phase
    if noise > 0 and rng is not None:
        phase = phase + damage_noise(phase.shape, cumulative_dose, noise, rng).astype(np.float32)
    fade = damage_fade(phase.shape, pixel_size, cumulative_dose, rate)
    return fft.irfft2(fft.rfft2(phase, workers=-1) * fade, s=phase.shape,
                      workers=-1).astype(np.float32)


def detect(expected: np.ndarray, rng: np.random.Generator, dqe: float = 1.0) -> np.ndarray:
    """Detected electrons per pixel: Poisson with mean ``dqe · expected``."""
    lam = np.clip(np.asarray(expected, dtype=np.float64) * dqe, 0, None)
    return rng.poisson(lam).astype(np.float32)


# -------------------------------------------------------------------------- acquisition


@dataclass
class MicroscopeConfig:
    """Acquisition settings. Names carry their unit where it is not obvious (``_kv``, ``_mm``,
    ``_um``); angles are in degrees, doses in e⁻/Å², lengths in Å.

    Attributes:
        scheme: tilt scheme name or an explicit list of angles (acquisition order).
        min_angle, max_angle, step, start, group: see :func:`tilt_angles`.
        angle_error: standard deviation (degrees) of the error on each tilt angle; images are
            taken at the true angles, the ``.tlt`` file records the nominal ones.
        voltage_kv: accelerating voltage in kV.
        cs_mm: spherical aberration in mm.
        amplitude_contrast, envelope, ctf_convention: CTF (see :func:`ctf`); the default is
            the standard weak-phase CTF, ``"paper"`` reproduces the CTS paper's sign.
        phase_shift_deg: the phase plate's phase shift ψ in degrees (0 = no phase plate).
        defocus_um: µm underfocus at the tilt axis.
        strip_defocus_step: µm between strips of the defocus gradient (None = no gradient).
        dose: total e⁻/Å² over the series, split evenly over the tilts.
        dqe: detective quantum efficiency.
        imfp: inelastic mean free path of vitreous ice in Å (3800 Å at 300 kV).
        damage_rate: multiplies the dose in the damage fade (0 = no damage).
        damage_noise: phase noise (rad) per e⁻/Å² of cumulative dose.
        ctf: apply the CTF; noise: draw Poisson counts.
    """

    scheme: str | list[float] = "dose-symmetric"
    min_angle: float = -60.0
    max_angle: float = 60.0
    step: float = 2.0
    start: float = 0.0
    group: int = 1
    angle_error: float = 0.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    defocus_um: float = 5.0
    amplitude_contrast: float = 0.07
    envelope: float = 0.9
    ctf_convention: str = "standard"
    phase_shift_deg: float = 0.0
    strip_defocus_step: float | None = 0.2
    dose: float = 100.0
    dqe: float = 0.84
    imfp: float = 3800.0
    damage_rate: float = 1.0
    damage_noise: float = 0.0005
    apply_ctf: bool = True
    noise: bool = True

    def angles(self) -> np.ndarray:
        """Nominal tilt angles in acquisition order."""
        return tilt_angles(self.scheme, self.min_angle, self.max_angle, self.step, self.start,
                           self.group)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """:class:`ConfigError` for a value of the wrong type, not finite, or out of range
        (checked when the configuration is made)."""
        if not isinstance(self.scheme, str):
            if not isinstance(self.scheme, (list, tuple)):
                raise ConfigError(f"scheme must be a name or a list of angles, got "
                                  f"{self.scheme!r}")
            for i, angle in enumerate(self.scheme):
                number(angle, f"scheme[{i}]", "°", gt=-90, lt=90)
        for name in ("min_angle", "max_angle", "start"):  # ranges: see tilt_angles
            number(getattr(self, name), name, "°")
        number(self.step, "step", "°", gt=0, lt=180)
        number(self.group, "group", "tilts", integer=True, ge=1)
        number(self.angle_error, "angle_error", "°", ge=0, lt=90)
        number(self.voltage_kv, "voltage_kv", "kV", gt=0, le=3000)
        number(self.cs_mm, "cs_mm", "mm", ge=0, le=100)
        number(self.defocus_um, "defocus_um", "µm", ge=-100, le=100)
        number(self.amplitude_contrast, "amplitude_contrast", ge=0, le=1)
        number(self.phase_shift_deg, "phase_shift_deg", "°", ge=-180, le=180)
        if self.envelope is not None:
            number(self.envelope, "envelope", "× Nyquist", gt=0)
        if self.strip_defocus_step is not None:
            number(self.strip_defocus_step, "strip_defocus_step", "µm", ge=0, le=100)
        number(self.dose, "dose", "e⁻/Å²", gt=0, le=1e5)
        number(self.dqe, "dqe", gt=0, le=1)
        number(self.imfp, "imfp", "Å", gt=0)
        number(self.damage_rate, "damage_rate", ge=0)
        number(self.damage_noise, "damage_noise", "rad per e⁻/Å²", ge=0)
        for name in ("apply_ctf", "noise"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.ctf_convention not in ("paper", "standard"):
            raise ConfigError(f"ctf_convention must be 'paper' or 'standard', got "
                              f"{self.ctf_convention!r}")
        self.angles()


@dataclass
class TiltSeries:
    """A simulated tilt series.

    Attributes:
        images: (n, y, x) float32, sorted by nominal angle (as IMOD expects).
        angles: nominal angles (degrees), sorted.
        true_angles: the angles the images were taken at (with the tilt error).
        order: acquisition index of each image.
        cumulative_dose: e⁻/Å² received before each image.
        phase: noise-free phase images φ (rad), same order; None when not kept.
    """

    images: np.ndarray
    angles: np.ndarray
    true_angles: np.ndarray
    order: np.ndarray
    cumulative_dose: np.ndarray
    phase: np.ndarray | None


@dataclass(frozen=True)
class Exposure:
    """One tilt image on its way through the microscope.

    Each stage of :func:`acquire` takes an exposure and returns it with a new ``image``: the
    phase φ (rad, mean removed) → the contrast ``CTF ⊛ φ`` → the detected electrons per pixel.

    Attributes:
        image: (y, x) float array.
        angle: the true tilt angle in degrees.
        dose: e⁻/Å² of this exposure.
        cumulative_dose: e⁻/Å² the specimen received before it.
        thickness: ice thickness in Å (at zero tilt).
        pixel_size: Å per pixel.
    """

    image: np.ndarray
    angle: float
    dose: float
    cumulative_dose: float
    thickness: float
    pixel_size: float


#: A stage of the microscope: ``stage(exposure, config, rng) -> exposure``.
Stage = Callable[[Exposure, MicroscopeConfig, np.random.Generator], Exposure]


def cubic_voxel(volume: Volume, what: str = "potential") -> float:
    """The voxel edge (Å) of a grid with cubic voxels; a :class:`ConfigError` otherwise."""
    size = volume.voxel_size
    if not np.allclose(size, size[0]):
        raise ConfigError(f"the {what}'s voxels must be cubic, got {size.tolist()} Å (z, y, x)")
    return float(size[0])


def phase_projections(potential: Volume, angles: Sequence[float], voltage: float = 300.0,
                      use_gpu: bool | None = None) -> np.ndarray:
    """The first stage, specimen → projections: the phase shift φ = σ_e·V·∫ρ dt (rad) of each
    tilt, (len(angles), y, x), from a potential in atomic-number sums per voxel (cubic voxels
    of ``potential.voxel_size`` Å)."""
    pixel_size = cubic_voxel(potential)
    sums = project(potential.data, angles, use_gpu=use_gpu)
    sums /= pixel_size**2  # in place: the series is the largest array of an acquisition
    sums *= VOLTS_PER_DENSITY
    sums *= interaction_constant(voltage)
    return sums


def _damaged(ex: Exposure, cfg: MicroscopeConfig, rng: np.random.Generator) -> np.ndarray:
    """The exposure's phase with :func:`damage_noise` added (when the config asks for it)."""
    if cfg.damage_noise > 0 and ex.cumulative_dose > 0:
        return ex.image + damage_noise(ex.image.shape, ex.cumulative_dose, cfg.damage_noise, rng)
    return ex.image


def ctf_transfer(ex: Exposure, cfg: MicroscopeConfig, rng: np.random.Generator) -> Exposure:
    """Transfer stage, phase → contrast: radiation damage (noise, then the fade of the dose
    received so far) and the CTF with the defocus gradient of the tilted specimen
    (:func:`apply_ctf`; no gradient when ``cfg.strip_defocus_step`` is None)."""
    phi = _damaged(ex, cfg, rng)
    fade = damage_fade(phi.shape, ex.pixel_size, ex.cumulative_dose, cfg.damage_rate)
    step = cfg.strip_defocus_step
    contrast = apply_ctf(phi, ex.pixel_size, cfg.defocus_um, ex.angle if step else 0.0,
                         step or 1.0, fade, voltage=cfg.voltage_kv, cs=cfg.cs_mm,
                         amplitude_contrast=cfg.amplitude_contrast, envelope=cfg.envelope,
                         convention=cfg.ctf_convention, phase_shift=cfg.phase_shift_deg)
    return replace(ex, image=contrast)


def damage_transfer(ex: Exposure, cfg: MicroscopeConfig, rng: np.random.Generator) -> Exposure:
    """Transfer stage without a CTF, phase → contrast: radiation damage only, contrast
    inverted (dense matter dark, as after the CTF's first lobe)."""
    phi = _damaged(ex, cfg, rng)
    return replace(ex, image=-damage(phi, ex.pixel_size, ex.cumulative_dose, cfg.damage_rate))


def _expected_electrons(ex: Exposure, cfg: MicroscopeConfig) -> np.ndarray:
    """Electrons per pixel reaching the detector: intensity ``1 + 2·contrast`` (≥ 0) attenuated
    by ``exp(−T / (cos θ · IMFP))``, times the exposure's dose and the pixel area."""
    intensity = np.clip(1 + 2 * ex.image, 0, None)
    transmitted = math.exp(-ex.thickness / (math.cos(math.radians(ex.angle)) * cfg.imfp))
    return intensity * transmitted * ex.dose * ex.pixel_size**2


def counting_detector(ex: Exposure, cfg: MicroscopeConfig, rng: np.random.Generator
                      ) -> Exposure:
    """Detector stage, contrast → counts: Poisson electrons with the DQE (:func:`detect`)."""
    return replace(ex, image=detect(_expected_electrons(ex, cfg), rng, cfg.dqe))


def ideal_detector(ex: Exposure, cfg: MicroscopeConfig, rng: np.random.Generator) -> Exposure:
    """Detector stage without shot noise: the expected counts times the DQE."""
    return replace(ex, image=_expected_electrons(ex, cfg) * cfg.dqe)


def stages_for(cfg: MicroscopeConfig) -> tuple[Stage, Stage]:
    """The transfer and detector stages a configuration asks for (``cfg.apply_ctf``,
    ``cfg.noise``)."""
    return (ctf_transfer if cfg.apply_ctf else damage_transfer,
            counting_detector if cfg.noise else ideal_detector)


def acquire(potential: Volume, cfg: MicroscopeConfig, rng: np.random.Generator,
            use_gpu: bool | None = None, progress=None,
            stages: Sequence[Stage] | None = None, keep_phase: bool = True) -> TiltSeries:
    """Image a specimen potential (atomic-number sums per voxel, cubic voxels of
    ``potential.voxel_size`` Å, e.g. :attr:`Specimen.potential_map
    <cryolab.tomo.specimen.Specimen.potential_map>`) through a tilt series.

    specimen → projections (:func:`phase_projections`, all tilts at once) → then, per tilt in
    acquisition order, every stage in turn (default :func:`stages_for` the config: transfer —
    damage and CTF — then the detector). Each stage has the signature of :data:`Stage`, so a
    stage can be replaced or added without touching the others. Unless ``keep_phase``, each
    image takes its phase projection's place (one stack of the series' size less; the same
    images) and the series has no ``phase``.
    """
    cfg.validate()
    nominal = cfg.angles()
    true = nominal + (rng.normal(0, cfg.angle_error, nominal.shape) if cfg.angle_error else 0)
    pixel_size = cubic_voxel(potential)
    phase = phase_projections(potential, true, cfg.voltage_kv, use_gpu)
    per_tilt = cfg.dose / len(nominal)
    cumulative = per_tilt * np.arange(len(nominal))
    thickness = potential.shape[0] * pixel_size
    stages = stages_for(cfg) if stages is None else tuple(stages)
    sort = np.argsort(nominal, kind="stable")
    rank = np.argsort(sort)  # where each acquired image goes in angle order
    images = np.empty_like(phase) if keep_phase else phase
    for i, theta in enumerate(true):
        ex = Exposure(phase[i] - phase[i].mean(), float(theta), per_tilt, float(cumulative[i]),
                      thickness, pixel_size)
        for stage in stages:
            ex = stage(ex, cfg, rng)
        images[rank[i] if keep_phase else i] = ex.image
        if progress is not None:
            progress.update(1)
    _permute(phase, sort)  # (without keep_phase: the images, into angle order)
    return TiltSeries(images, nominal[sort], true[sort], sort, cumulative[sort],
                      phase if keep_phase else None)


def _permute(stack: np.ndarray, order: np.ndarray) -> None:
    """``stack[:] = stack[order]`` in place, one image at a time (no second stack)."""
    done = np.zeros(len(order), bool)
    for start in range(len(order)):
        if done[start]:
            continue
        first, i = stack[start].copy(), start
        while True:
            done[i] = True
            j = order[i]
            if j == start:
                stack[i] = first
                break
            stack[i] = stack[j]
            i = j
