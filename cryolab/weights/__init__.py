"""Trained models shipped with cryolab, usable without training.

Each model is a checkpoint ``<name>.pt`` in this folder (package data), readable by
:func:`cryolab.train.load_model`, with its *model card* ``<name>.json`` beside it: the model's
class and sizes, the registered names of its training data, how it was trained (profile,
epochs, seed, wall time, hardware, package version and commit) and its evaluation on held-out
data next to the chapter's baselines and the paper. ``python -m cryolab.weights.train
CHAPTER`` reproduces a file from scratch.

>>> from cryolab import weights
>>> weights.available()  # doctest: +SKIP
['posevox']
>>> model = weights.load("posevox")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

__all__ = ["available", "card", "path", "load"]


def _folder() -> Path:
    return Path(str(resources.files(__name__)))


def available() -> list[str]:
    """Names of the shipped models (those with both a checkpoint and a card)."""
    folder = _folder()
    return sorted(p.stem for p in folder.glob("*.pt") if p.with_suffix(".json").is_file())


def path(name: str) -> Path:
    """The checkpoint file of the shipped model ``name``."""
    if name not in available():
        raise CheckpointError(f"no shipped model {name!r}; shipped: "
                              f"{', '.join(available()) or 'none'}")
    return _folder() / f"{name}.pt"


@cache
def card(name: str) -> dict[str, Any]:
    """The model card of the shipped model ``name`` (a dict read from ``<name>.json``)."""
    return json.loads(path(name).with_suffix(".json").read_text())


def load(name: str, device: str | None = None):  # noqa: ANN201 - torch is imported lazily
    """The shipped model ``name``, rebuilt by :func:`cryolab.train.load_model` in eval mode.

    The card's ``model_class`` (``"package.module.Class"``) names the class to rebuild, and
    its ``checkpoint_name`` the model's name inside the file (default ``"model"``; the
    struc2mapGAN generators are stored as ``"generator"``, like the checkpoints training
    writes).
    """
    from ..train import load_model

    module, _, cls = card(name)["model_class"].rpartition(".")
    model_class = getattr(importlib.import_module(module), cls)
    return load_model(path(name), model_class, name=card(name).get("checkpoint_name", "model"),
                      device=device)
