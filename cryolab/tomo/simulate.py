"""One call from a specimen definition to a tilt series, tomogram, noise-free prior and atlas.

:func:`simulate` returns everything as arrays (for generating many small training volumes in
memory); :func:`simulate_to_directory` writes a run to a folder, atomically::

    DIR/
      tilt_series.mrc   (n, y, x) detected electrons, sorted by angle
      tilt_series.tlt   nominal angles, one per line (degrees)
      tomogram.mrc      WBP reconstruction (dense matter dark)
      prior.mrc         ideal reconstruction: ±89° in 1° steps, no CTF, noise or damage
      specimen.mrc      the specimen potential (atomic-number sums per voxel)
      atlas.mrc         class label per voxel (0 = background / ice)
      masks/<class>.mrc one 0/1 mask per class
      parameters.json   the configuration, seed, class table, shapes and counts (no timings)

A configuration is a :class:`SimulationConfig` or a YAML file with the same nesting
(``seed``, ``specimen``, ``microscope``, ``reconstruction``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, CryolabError
from ..io import Volume
from ..validation import number
from .microscope import MicroscopeConfig, TiltSeries, acquire
from .particles import load_particle
from .reconstruct import ReconstructionConfig, ideal_reconstruction, reconstruct_tilt_series
from .specimen import (
    Layer,
    Placement,
    Specimen,
    SpecimenConfig,
    VesicleConfig,
    build_specimen,
)

__all__ = [
    "SimulationConfig",
    "Simulation",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "simulate",
    "write_simulation",
    "simulate_to_directory",
]


@dataclass
class SimulationConfig:
    """A whole simulation: specimen, microscope, reconstruction, seed.

    Attributes:
        prior: also compute the ideal reconstruction (the regression prior).
        use_gpu: torch on CUDA for projection and back-projection (None = when available).
    """

    specimen: SpecimenConfig = field(default_factory=SpecimenConfig)
    microscope: MicroscopeConfig = field(default_factory=MicroscopeConfig)
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)
    seed: int = 0
    prior: bool = True
    use_gpu: bool | None = None

    def __post_init__(self) -> None:
        self.seed = number(self.seed, "seed", integer=True, ge=0)
        for name in ("prior", "use_gpu"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "use_gpu" and value is None):
                raise ConfigError(f"{name} must be true or false, got {value!r}")

    def validate(self) -> None:
        """Raise :class:`ConfigError` for anything impossible, before any heavy work (each
        section checks its own values when it is made)."""
        self.specimen.validate()
        self.microscope.validate()
        self.reconstruction.validate()
        names = {n for layer in self.specimen.layers for n in layer.particles}
        names |= set(self.specimen.vesicles.proteins)
        for name in sorted(names):
            try:
                load_particle(name, self.specimen.pixel_size_a)
            except CryolabError as exc:
                raise ConfigError(f"specimen: particle {name!r}: {exc}") from None


@dataclass
class Simulation:
    """The result of :func:`simulate` (all arrays (z, y, x) except the tilt series)."""

    config: SimulationConfig
    specimen: Specimen
    tilt_series: TiltSeries
    tomogram: np.ndarray
    prior: np.ndarray | None
    atlas: np.ndarray
    class_names: list[str]
    timings: dict[str, float]

    @property
    def pixel_size(self) -> float:
        return self.specimen.pixel_size

    def volume(self, name: str) -> Volume:
        """One grid of the simulation as a :class:`~cryolab.io.Volume` (voxel size
        :attr:`pixel_size` Å, origin 0): ``"tilt_series"`` (n, y, x), ``"tomogram"``,
        ``"prior"``, ``"specimen"`` (the potential) or ``"atlas"``."""
        grids = {"tilt_series": self.tilt_series.images, "tomogram": self.tomogram,
                 "prior": self.prior, "specimen": self.specimen.potential, "atlas": self.atlas}
        if grids.get(name) is None:
            raise ConfigError(f"no grid {name!r} in this simulation; choose one of "
                              f"{sorted(k for k, v in grids.items() if v is not None)}")
        return Volume(np.asarray(grids[name], np.float32), self.pixel_size, 0.0)

    def masks(self) -> dict[str, np.ndarray]:
        """One boolean mask per class (atlas == label)."""
        return {n: self.atlas == i for i, n in enumerate(self.class_names) if i}

    def summary(self) -> dict[str, Any]:
        """Shapes, counts and timings (JSON-ready)."""
        labels = _label_counts(self.atlas, len(self.class_names))
        return _summary(_SpecimenFacts.of(self.specimen), labels, {
            "tilt_series": self.tilt_series.images.shape, "tomogram": self.tomogram.shape,
            "prior": None if self.prior is None else self.prior.shape,
            "atlas": self.atlas.shape}, self.timings)


@dataclass(frozen=True)
class _SpecimenFacts:
    """What the summary and ``parameters.json`` need of a specimen (no grids)."""

    pixel_size: float
    class_names: list[str]
    placements: list[Placement]
    overlap_free: bool

    @classmethod
    def of(cls, specimen: Specimen) -> _SpecimenFacts:
        return cls(specimen.pixel_size, specimen.class_names, specimen.placements,
                   specimen.overlap_free())


def _label_counts(atlas: np.ndarray, n: int, step: int = 1 << 22) -> np.ndarray:
    """Voxels per atlas label (index = label, ``n`` labels), counted ``step`` voxels at a
    time (``np.bincount`` takes an int64 copy of what it counts)."""
    flat = atlas.reshape(-1)
    return sum((np.bincount(flat[i:i + step], minlength=n) for i in range(0, flat.size, step)),
               np.zeros(n, np.int64))


def _summary(specimen: _SpecimenFacts, labels: np.ndarray, shapes: dict[str, tuple | None],
             timings: dict[str, float]) -> dict[str, Any]:
    """:meth:`Simulation.summary` from the parts it reads: the arrays' shapes and the
    voxels per atlas label (:func:`_label_counts`)."""
    counts: dict[str, int] = {}
    for p in specimen.placements:
        counts[p.name] = counts.get(p.name, 0) + 1
    return {
        "pixel_size": specimen.pixel_size,
        "shapes": {k: None if shapes[k] is None else list(shapes[k])
                   for k in ("tilt_series", "tomogram", "prior", "atlas")},
        "classes": dict(enumerate(specimen.class_names)),
        "class_voxels": {n: int(labels[i]) for i, n in enumerate(specimen.class_names)},
        "placements": counts,
        "n_particles": sum(v for k, v in counts.items()
                           if k not in ("membrane", "carbon", "gold", "microtubule")),
        "overlap_free": specimen.overlap_free,
        "timings": timings,
    }


# ------------------------------------------------------------------------ configuration


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


#: Setting names of earlier versions, read as their unit-bearing successors, so older YAML
#: configurations keep working.
RENAMED: dict[type, dict[str, str]] = {
    SpecimenConfig: {"pixel_size": "pixel_size_a"},
    MicroscopeConfig: {"voltage": "voltage_kv", "cs": "cs_mm", "defocus": "defocus_um"},
}


def _build(cls, data: Any, where: str):
    """Instantiate dataclass ``cls`` from a mapping, refusing unknown keys (the earlier names
    of :data:`RENAMED` are read as the new ones)."""
    if data is None:
        return cls()
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    for old, new in RENAMED.get(cls, {}).items():
        if old in data:
            if new in data:
                raise ConfigError(f"{where}: give {new} only ({old} is its earlier name)")
            data = {(new if k == old else k): v for k, v in data.items()}
    known = _fields(cls)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for key, value in data.items():
        if cls is SpecimenConfig and key == "layers":
            if not isinstance(value, list):
                raise ConfigError(f"{where}.layers must be a list of layers")
            value = [_build(Layer, v, f"{where}.layers[{i}]") for i, v in enumerate(value)]
        elif cls is SpecimenConfig and key == "vesicles":
            value = _build(VesicleConfig, value, f"{where}.vesicles")
        elif isinstance(value, list) and key in ("size", "radius"):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def config_from_dict(data: dict[str, Any]) -> SimulationConfig:
    """A :class:`SimulationConfig` from nested mappings (as read from YAML)."""
    if not isinstance(data, dict):
        raise ConfigError("a simulation configuration must be a mapping")
    known = set(_fields(SimulationConfig))
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"configuration: unknown section(s) {unknown}; known: {sorted(known)}")
    return SimulationConfig(
        specimen=_build(SpecimenConfig, data.get("specimen"), "specimen"),
        microscope=_build(MicroscopeConfig, data.get("microscope"), "microscope"),
        reconstruction=_build(ReconstructionConfig, data.get("reconstruction"),
                              "reconstruction"),
        seed=data.get("seed", 0),
        prior=data.get("prior", True),
        use_gpu=data.get("use_gpu"),
    )


def config_to_dict(cfg: SimulationConfig) -> dict[str, Any]:
    """The configuration as plain nested dicts and lists (JSON/YAML-ready)."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def load_config(path: str | os.PathLike) -> SimulationConfig:
    """Read a YAML simulation configuration; :class:`ConfigError` names the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        raise ConfigError(f"{path}: the configuration is empty (see `cryolab simulate-tomo "
                          "--help` for an example)")
    try:
        cfg = config_from_dict(data)
        cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


# ---------------------------------------------------------------------------- simulation


def simulate(config: SimulationConfig, seed: int | None = None, progress: bool = False,
             specimen: Specimen | None = None, rng: np.random.Generator | None = None
             ) -> Simulation:
    """Run the whole simulator in memory: specimen → atlas → (prior) → tilt series → tomogram.

    Args:
        config: what to simulate.
        seed: seeds the random stream (default ``config.seed``); ignored when ``rng`` is given.
        progress: show a progress bar.
        specimen: a specimen built (or changed) beforehand, e.g. by
            :func:`~cryolab.tomo.specimen.build_specimen` plus
            :func:`~cryolab.tomo.specimen.add_filaments`; ``config.specimen`` is then not
            built, and only the microscope and reconstruction settings are used.
        rng: the random stream of the acquisition (and of the specimen when it is built).

    Deterministic for a given ``seed`` or generator state.
    """
    parts: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name, value in _stages(config, seed, progress, specimen, rng, timings, keep=True):
        if name != "potential":  # the specimen gives it again
            parts[name] = value
    return Simulation(config, parts["specimen"], parts["tilt_series"], parts["tomogram"],
                      parts["prior"], parts["atlas"], parts["specimen"].class_names, timings)


def _stages(config: SimulationConfig, seed: int | None, progress: bool,
            specimen: Specimen | None, rng: np.random.Generator | None,
            timings: dict[str, float], keep: bool) -> Iterator[tuple[str, Any]]:
    """The simulation, one result at a time: ``("specimen", Specimen)``, ``("atlas", labels)``,
    ``("potential", Volume)``, ``("prior", array or None)``, ``("tilt_series", TiltSeries)``,
    ``("tomogram", array)``; ``timings`` receives the seconds of each stage.

    Each result is dropped here as soon as the later stages no longer need it, so a consumer
    that writes and forgets each one (as :func:`simulate_to_directory` does) never holds the
    whole run. Unless ``keep``, the results are also used up in place: the specimen loses its
    instance labels once yielded, the potential takes the specimen's ice
    (:meth:`~cryolab.tomo.specimen.Specimen.take_potential`), the tilt series' images take
    the place of its phase images (:func:`~cryolab.tomo.microscope.acquire` without
    ``keep_phase``) and then become their contrast."""
    config.validate()
    seed = config.seed if seed is None else seed
    rng = np.random.default_rng(seed) if rng is None else rng
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(config.microscope.angles()) + 4, desc="simulate-tomo", unit="step")

    def begin(name: str) -> float:
        if bar is not None:
            bar.set_postfix_str(name)
        return time.perf_counter()

    def stage(name: str, start: float) -> None:
        timings[name] = time.perf_counter() - start
        if bar is not None and name != "tilt_series":  # the acquisition counts its tilts
            bar.update(1)

    t = begin("specimen")
    if specimen is None:
        specimen = build_specimen(config.specimen, rng, particles=load_particle)
    stage("specimen", t)
    yield "specimen", specimen
    if not keep:  # the consumer has read what it needs of the instance labels
        specimen = dataclasses.replace(specimen, instances=None)
    t = begin("atlas")
    atlas = specimen.atlas()
    stage("atlas", t)
    potential = specimen.potential_map if keep else specimen.take_potential()
    del specimen
    yield "atlas", atlas
    del atlas
    yield "potential", potential

    rc = config.reconstruction
    thickness = rc.thickness or potential.shape[0]
    prior = None  # first: it needs no random numbers, and then nothing else is held
    if config.prior:
        t = begin("prior")
        prior = ideal_reconstruction(potential.data, rc.prior_max_angle, rc.prior_step,
                                     thickness, use_gpu=config.use_gpu)
        stage("prior", t)
    elif bar is not None:
        bar.update(1)
    yield "prior", prior
    del prior

    t = begin("tilt series")
    series = acquire(potential, config.microscope, rng, use_gpu=config.use_gpu, progress=bar,
                     keep_phase=keep)
    pixel_size = potential.voxel_size[0]
    del potential
    stage("tilt_series", t)
    yield "tilt_series", series

    t = begin("tomogram")
    images, angles = series.images, series.angles
    del series
    tomogram = reconstruct_tilt_series(images, angles, thickness, rc, use_gpu=config.use_gpu,
                                       pixel_size=pixel_size, microscope=config.microscope,
                                       overwrite=not keep)
    del images
    stage("tomogram", t)
    yield "tomogram", tomogram
    if bar is not None:
        bar.close()


def write_simulation(sim: Simulation, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a simulation to the folder ``out`` (see the module docstring) under the write
    policy of :mod:`cryolab.outputs`: into a temporary folder beside it, put in place only when
    complete; an existing ``out`` is replaced only with ``overwrite`` and only if cryolab wrote
    it. ``parameters.json`` holds no timings, so the same run gives the same bytes."""
    from ..outputs import check_folder

    out = check_folder(out, overwrite=overwrite)
    parts = [("specimen", sim.specimen), ("atlas", sim.atlas),
             ("potential", sim.volume("specimen")), ("prior", sim.prior),
             ("tilt_series", sim.tilt_series), ("tomogram", sim.tomogram)]
    return _write_parts(iter(parts), sim.config, out)


def _write_parts(parts: Iterator[tuple[str, Any]], config: SimulationConfig, out: Path) -> Path:
    """Write the results of :func:`_stages` (or the same parts of a :class:`Simulation`) to
    ``out`` as they come, keeping only the small records of ``parameters.json``. The atlas
    and its masks are written once the specimen is gone (with the potential), and the atlas
    is then dropped too."""
    from ..io import write_map
    from ..outputs import atomic_folder

    shapes: dict[str, tuple | None] = {}
    with atomic_folder(out, "cryolab simulate-tomo") as tmp:
        for name, value in parts:
            if name == "specimen":
                specimen = _SpecimenFacts.of(value)  # the grids themselves are not kept
                px = specimen.pixel_size
            elif name == "atlas":
                atlas = value  # written with the potential, once the specimen is gone
                shapes["atlas"] = atlas.shape
                labels = _label_counts(atlas, len(specimen.class_names))
            elif name == "potential":
                write_map(tmp / "specimen.mrc", value, "cryolab specimen")
                _write_atlas(tmp, atlas, specimen)
                del atlas
            elif name == "tilt_series":
                series = dataclasses.replace(value, images=None, phase=None)
                shapes["tilt_series"] = value.images.shape
                write_map(tmp / "tilt_series.mrc", Volume(value.images, px, 0.0),
                          "cryolab tilt series")
                (tmp / "tilt_series.tlt").write_text("".join(f"{a:.2f}\n" for a in value.angles))
            elif name == "tomogram":
                shapes["tomogram"] = value.shape
                write_map(tmp / "tomogram.mrc", Volume(value, px, 0.0), "cryolab WBP tomogram")
            elif name == "prior":
                shapes["prior"] = None if value is None else value.shape
                if value is not None:
                    write_map(tmp / "prior.mrc", Volume(value, px, 0.0),
                              "cryolab ideal reconstruction")
            del value
        summary = _summary(specimen, labels, shapes, {})
        record = {
            "config": config_to_dict(config),
            "seed": config.seed,
            **{k: v for k, v in summary.items() if k != "timings"},
            "acquisition_order": series.order.tolist(),
            "true_angles": series.true_angles.tolist(),
            "placements": [dataclasses.asdict(p) for p in specimen.placements],
            "placement_counts": summary["placements"],
        }
        (tmp / "parameters.json").write_text(json.dumps(record, indent=2, default=float))
    return out


def _write_atlas(folder: Path, atlas: np.ndarray, specimen: _SpecimenFacts) -> None:
    """``atlas.mrc`` and ``masks/<class>.mrc`` (0/1, float32) of a uint8 atlas."""
    from ..io import write_map

    px = specimen.pixel_size
    write_map(folder / "atlas.mrc", Volume(atlas.astype(np.float32), px, 0.0), "cryolab atlas")
    for label, name in enumerate(specimen.class_names):
        if label:
            write_map(folder / "masks" / f"{name}.mrc",
                      Volume((atlas == label).astype(np.float32), px, 0.0),
                      f"cryolab mask {name}")


def simulate_to_directory(config: SimulationConfig | str | os.PathLike,
                          out: str | os.PathLike, seed: int | None = None,
                          progress: bool = False, overwrite: bool = False) -> Path:
    """:func:`simulate` then :func:`write_simulation`, streamed: each result is written as
    soon as it is computed and then dropped (the specimen's object blocks and ice once the
    potential and atlas exist, the tilt series once reconstructed), so the run needs far less
    memory than holding a :class:`Simulation`; the files are the same. ``config`` may be a
    YAML path. The output folder is checked (:func:`cryolab.outputs.check_folder`) before
    simulating."""
    from ..outputs import check_folder

    source = None if isinstance(config, SimulationConfig) else config
    out = check_folder(out, inputs=(source,), overwrite=overwrite)
    cfg = config if source is None else load_config(source)
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=number(seed, "seed", integer=True, ge=0))
    return _write_parts(_stages(cfg, None, progress, None, None, {}, keep=False), cfg, out)
