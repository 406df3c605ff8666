"""The primer notebook runs end to end and its numbers make physical sense."""

import pytest

pytestmark = pytest.mark.notebook


def test_smoke(run_notebook):
    m = run_notebook("00_maps_and_models")
    assert m["_wall_seconds"] < 90
    assert m["density_z_at_atoms"] > 1.5  # the model sits in its map
    assert 0.3 < m["atoms_inside_1pct"] <= 1.0
    for resolution, crossing in m["lowpass_fsc"].items():
        # the 0.5 crossing recovers the filter's cut-off within 15%
        assert abs(crossing["fsc05"] - float(resolution)) < 0.15 * float(resolution)
