"""The package's documentation: docstring ``Examples`` run, and the API reference is complete.

Every module of :mod:`cryolab` is searched for doctests (run with ``ELLIPSIS`` and
``NORMALIZE_WHITESPACE``); the entry points a reader meets first must have one. The book's API
page documents each module's ``__all__``, so every public function and class must be listed.
"""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import cryolab

MODULES = sorted(m.name for m in pkgutil.walk_packages(cryolab.__path__, "cryolab."))

#: The entry points a reader meets first; each must carry a runnable ``Examples`` section.
ENTRY_POINTS = (
    "cryolab.apply", "cryolab.fourier", "cryolab.normalise",
    "cryolab.density.molmap", "cryolab.density.simulate", "cryolab.density.resample",
    "cryolab.density.splat",
    "cryolab.degrade.degrade", "cryolab.degrade.lowpass", "cryolab.degrade.bfactor_blur",
    "cryolab.metrics.pcc", "cryolab.metrics.ssim", "cryolab.metrics.psnr", "cryolab.metrics.fsc",
    "cryolab.metrics.dice", "cryolab.metrics.iou", "cryolab.metrics.model_mask",
    "cryolab.metrics.calibrate", "cryolab.metrics.confusion_matrix",
    "cryolab.sharpen.bfactor_sharpen",
    "cryolab.tiles.sliding_window", "cryolab.tiles.random_patches",
    "cryolab.tomo.microscope.tilt_angles", "cryolab.tomo.microscope.ctf",
    "cryolab.tomo.reconstruct.weighted_backprojection",
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _object(dotted: str):
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_points_have_examples(name):
    tests = doctest.DocTestFinder(recurse=False).find(_object(name), name)
    assert any(t.examples for t in tests), f"{name} has no Examples section"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_function_and_class_is_in_all(name):
    module = importlib.import_module(name)
    if not hasattr(module, "__all__"):
        return  # autodoc then documents every public member itself
    public = {n for n, o in vars(module).items()
              if not n.startswith("_") and (inspect.isfunction(o) or inspect.isclass(o))
              and o.__module__ == name}
    assert public <= set(module.__all__), f"{name}: not in __all__: {public - set(module.__all__)}"
