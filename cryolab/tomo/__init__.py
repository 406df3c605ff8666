"""A cryo-ET simulator after cryo-TomoSim (Purnell, Heebner et al.): specimen, microscope,
reconstruction, and one call that runs them all.

- :mod:`cryolab.tomo.specimen`: particles from structures or density templates, placed in
  layers without overlaps; vesicles with membrane proteins, microtubules, carbon, gold, ice;
  per-class volumes and the atlas.
- :mod:`cryolab.tomo.microscope`: tilt schemes, projection about the y axis, CTF with a
  defocus gradient, dose, detection and radiation damage.
- :mod:`cryolab.tomo.reconstruct`: weighted back-projection (radial or SIRT-like filter) and
  the ideal reconstruction used as a regression prior.
- :mod:`cryolab.tomo.simulate`: :func:`simulate` (arrays in memory) and
  :func:`simulate_to_directory` (MRC files, ``.tlt``, ``parameters.json``).

Only numpy/scipy are needed; torch is used, when installed, for CUDA projection.
"""

from .simulate import (
    Simulation,
    SimulationConfig,
    config_from_dict,
    load_config,
    simulate,
    simulate_to_directory,
    write_simulation,
)

__all__ = [
    "Simulation",
    "SimulationConfig",
    "config_from_dict",
    "load_config",
    "simulate",
    "simulate_to_directory",
    "write_simulation",
]
