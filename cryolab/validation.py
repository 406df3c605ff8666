"""Checks of values a user gives, made once at the boundary (command line and configurations).

Every numeric option and configuration value goes through :func:`number` (or its command-line
form :func:`option`), so every message has one shape: the name, what is allowed with its unit,
and the value given — ``--resolution must be a finite number > 0 Å, got 'nan'``.
:func:`grid_memory` refuses a grid too large for memory before anything is allocated, and
:func:`device` refuses a torch device this machine does not have.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ConfigError

__all__ = ["number", "option", "device", "grid_memory", "memory_limit_gb"]


def _describe(integer: bool, unit: str, bounds: dict[str, float | None]) -> str:
    """``"an integer ≥ 1"``, ``"a finite number > 0 and ≤ 1 Å"``, ..."""
    symbols = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    limits = " and ".join(f"{symbols[k]} {v:g}" for k, v in bounds.items() if v is not None)
    text = "an integer" if integer else "a finite number"
    return " ".join(part for part in (text, limits, unit) if part)


def _within(value: float, bounds: dict[str, float | None]) -> bool:
    tests = {"gt": value.__gt__, "ge": value.__ge__, "lt": value.__lt__, "le": value.__le__}
    return all(tests[k](v) for k, v in bounds.items() if v is not None)


def number(value: Any, name: str, unit: str = "", *, integer: bool = False,
           **bounds: float | None) -> float | int:
    """``value`` as a float (or an int with ``integer``) after checking its type, that it is
    finite, and that it lies within the bounds; otherwise :class:`~cryolab.errors.ConfigError`
    naming ``name`` with the allowed range and ``unit``. ``bounds`` are any of ``gt``, ``ge``,
    ``lt``, ``le`` (>, ≥, <, ≤)."""
    ok_type = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if integer:
        ok_type = ok_type and float(value).is_integer()
    if not ok_type or not math.isfinite(value) or not _within(float(value), bounds):
        raise ConfigError(f"{name} must be {_describe(integer, unit, bounds)}, got {value!r}")
    return int(value) if integer else float(value)


def option(unit: str = "", *, integer: bool = False,
           **bounds: float | None) -> Callable[[str], float | int]:
    """An argparse ``type=`` for a number option checked like :func:`number`; argparse prints
    ``argument --batch: must be an integer ≥ 1, got '0'`` for a bad value."""

    def parse(text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
            return number(value, "value", unit, integer=integer, **bounds)
        except (ValueError, ConfigError):
            raise argparse.ArgumentTypeError(
                f"must be {_describe(integer, unit, bounds)}, got {text!r}"
            ) from None

    parse.__name__ = "integer" if integer else "number"
    return parse


def device(text: str) -> str:
    """An argparse ``type=`` for ``--device``: a torch device name this machine has."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device (use cpu, cuda or cuda:N)"
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available here; use cpu")
        if dev.index is not None and dev.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA device(s)")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text!r}: only cpu and cuda devices are supported")
    return text


def memory_limit_gb() -> float:
    """The largest grid allowed, in GB: ``CRYOLAB_MEMORY_LIMIT_GB`` if set, else a quarter of
    this machine's physical memory."""
    env = os.environ.get("CRYOLAB_MEMORY_LIMIT_GB")
    if env:
        try:
            return float(number(float(env), "CRYOLAB_MEMORY_LIMIT_GB", "GB", gt=0))
        except ValueError:
            raise ConfigError(f"CRYOLAB_MEMORY_LIMIT_GB must be a number of GB, got {env!r}"
                              ) from None
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4e9


def grid_memory(
    shape: Sequence[float], what: str, bytes_per_voxel: float = 4.0,
    limit_gb: float | None = None, advice: str = "use a larger voxel size or a smaller box",
) -> float:
    """Memory in GB that a grid of ``shape`` voxels needs; :class:`ConfigError` (before any
    allocation) when that is above ``limit_gb`` (default :func:`memory_limit_gb`)."""
    voxels = math.prod(float(n) for n in shape)
    need = voxels * bytes_per_voxel / 1e9
    limit = memory_limit_gb() if limit_gb is None else limit_gb
    if not math.isfinite(need) or need > limit:
        size = "×".join(f"{n:.0f}" for n in shape)
        raise ConfigError(f"{what}: a {size}-voxel grid needs ~{need:.3g} GB, above the "
                          f"{limit:.3g} GB limit; {advice}")
    return need
