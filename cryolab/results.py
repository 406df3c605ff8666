"""Where a notebook run leaves its numbers and figures.

Every notebook is run in one of three profiles — ``smoke`` (CI, seconds), ``book`` (the
published site, minutes on 2 CPU cores) and ``paper`` (paper scale, on a GPU) — and writes
``results/<notebook>/<profile>/metrics.json`` beside its figures. Tests and the book's results
page read those files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .errors import ConfigError
from .outputs import atomic_file

__all__ = ["PROFILES", "pick_profile", "repo_root", "results_dir", "save_metrics", "load_metrics",
           "Stopwatch"]

PROFILES = ("smoke", "book", "pretrained", "paper")
T = TypeVar("T")


def pick_profile(profiles: Mapping[str, T], profile: str) -> T:
    """The settings of ``profile`` from a chapter's ``{"smoke": ..., "book": ..., ...}``."""
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(profiles)}")
    return profiles[profile]


def repo_root(start: Path | None = None) -> Path:
    """The project folder: the first parent holding ``_config.yml`` and ``cryolab/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "cryolab").is_dir():
            return folder
    return here


def results_dir(notebook: str, profile: str) -> Path:
    """``results/<notebook>/<profile>/`` (created); ``CRYOLAB_RESULTS_DIR`` overrides the root."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    root = os.environ.get("CRYOLAB_RESULTS_DIR")
    base = Path(root) if root else repo_root() / "results"
    folder = base / notebook / profile
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _plain(value: Any) -> Any:
    """Turn numpy scalars/arrays and non-finite floats into JSON-safe values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_metrics(notebook: str, profile: str, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics.json`` atomically (:func:`cryolab.outputs.atomic_file`), with the run's
    profile, machine and time added."""
    folder = results_dir(notebook, profile)
    record = {
        "notebook": notebook,
        "profile": profile,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_plain(dict(metrics)),
    }
    path = folder / "metrics.json"
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=False))
    return path


def load_metrics(notebook: str, profile: str) -> dict[str, Any]:
    """Read a run's ``metrics.json``."""
    path = results_dir(notebook, profile) / "metrics.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no metrics yet; run the notebook with profile {profile!r}")
    return json.loads(path.read_text())


class Stopwatch:
    """Times named steps: ``with sw("train"): ...``; ``sw.seconds`` maps step -> seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._name = ""
        self._start = 0.0

    def __call__(self, name: str) -> Stopwatch:
        self._name = name
        return self

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self._start
        self.seconds[self._name] = self.seconds.get(self._name, 0.0) + elapsed
