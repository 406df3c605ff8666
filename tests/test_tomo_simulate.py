"""The one-call simulator: outputs, determinism, atomic writes, configuration errors, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from cryolab.cli import main
from cryolab.errors import ConfigError
from cryolab.io import read_map
from cryolab.tomo.simulate import (
    config_from_dict,
    config_to_dict,
    load_config,
    simulate,
    simulate_to_directory,
    write_simulation,
)

SMALL = {
    "seed": 4,
    "specimen": {"size": [640, 640, 400], "pixel_size": 20,
                 "layers": [{"particles": ["ribosome", "rubisco"], "density": 0.2,
                             "iterations": 60}],
                 "gold": 1},
    "microscope": {"min_angle": -60, "max_angle": 60, "step": 6, "dose": 60},
    "reconstruction": {"prior_step": 3},
}


@pytest.fixture(scope="module")
def small_sim(mirror):
    return simulate(config_from_dict(SMALL))


def test_simulate_returns_consistent_arrays(small_sim):
    sim = small_sim
    assert sim.tilt_series.images.shape == (21, 32, 32)
    assert sim.tomogram.shape == sim.prior.shape == sim.atlas.shape == (20, 32, 32)
    assert sim.class_names[0] == "background"
    assert sim.atlas.max() < len(sim.class_names)
    summary = sim.summary()
    assert summary["overlap_free"] and summary["n_particles"] > 0
    # the tomogram resembles the noise-free prior (same polarity: dense matter dark)
    r = np.corrcoef(sim.tomogram.ravel(), sim.prior.ravel())[0, 1]
    assert r > 0.2


def test_simulate_is_deterministic(small_sim):
    again = simulate(config_from_dict(SMALL))
    np.testing.assert_array_equal(again.tilt_series.images, small_sim.tilt_series.images)
    np.testing.assert_array_equal(again.atlas, small_sim.atlas)
    other = simulate(config_from_dict(SMALL), seed=5)
    assert not np.array_equal(other.tilt_series.images, small_sim.tilt_series.images)


def test_directory_outputs_reread(tmp_path, small_sim):
    out = write_simulation(small_sim, tmp_path / "run")
    series = read_map(out / "tilt_series.mrc")
    assert series.shape == small_sim.tilt_series.images.shape
    np.testing.assert_allclose(series.voxel_size, 20.0)
    angles = np.loadtxt(out / "tilt_series.tlt")
    np.testing.assert_allclose(angles, np.arange(-60, 61, 6))
    for name in ("tomogram", "prior", "atlas", "specimen"):
        vol = read_map(out / f"{name}.mrc")
        assert vol.shape == small_sim.tomogram.shape
    atlas = read_map(out / "atlas.mrc").data
    np.testing.assert_array_equal(atlas, small_sim.atlas)
    params = json.loads((out / "parameters.json").read_text())
    assert params["seed"] == 4 and params["overlap_free"]
    for label, name in params["classes"].items():
        if int(label):
            mask = read_map(out / "masks" / f"{name}.mrc").data
            assert mask.sum() == params["class_voxels"][name] == (atlas == int(label)).sum()
    assert config_from_dict(params["config"]) == small_sim.config
    with pytest.raises(ConfigError, match="exists"):
        write_simulation(small_sim, out)


def test_failed_write_leaves_nothing(tmp_path, small_sim, monkeypatch):
    import cryolab.io

    real = cryolab.io.write_map

    def failing(path, vol, label=None):
        if "atlas" in str(path):
            raise OSError("disk full")
        return real(path, vol, label)

    monkeypatch.setattr(cryolab.io, "write_map", failing)
    with pytest.raises(OSError):
        write_simulation(small_sim, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_config_round_trip_and_errors(tmp_path):
    cfg = config_from_dict(SMALL)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    bad_cases = [
        ({"specimen": {"sizes": [1, 2, 3]}}, "unknown setting"),
        ({"microscope": {"min_angle": 70, "max_angle": 60}}, "tilt range"),
        ({"microscope": {"max_angle": 95}}, "tilt range"),
        ({"specimen": {"layers": [{"particles": ["no_such_thing"]}]}}, "no_such_thing"),
        ({"specimen": {"size": [50000, 50000, 5000], "pixel_size": 2}}, "pixel_size"),
        ({"detector": {}}, "unknown section"),
    ]
    for i, (data, message) in enumerate(bad_cases):
        path = tmp_path / f"bad{i}.yml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    with pytest.raises(ConfigError, match="no such"):
        load_config(tmp_path / "missing.yml")


def test_unit_bearing_names_and_their_earlier_names():
    new = config_from_dict({"specimen": {"pixel_size_a": 20},
                            "microscope": {"defocus_um": 3.0, "cs_mm": 2.0, "voltage_kv": 200}})
    old = config_from_dict({"specimen": {"pixel_size": 20},
                            "microscope": {"defocus": 3.0, "cs": 2.0, "voltage": 200}})
    assert new == old
    assert (new.specimen.pixel_size_a, new.microscope.defocus_um) == (20, 3.0)
    assert config_to_dict(new)["microscope"]["voltage_kv"] == 200
    with pytest.raises(ConfigError, match="defocus_um only"):
        config_from_dict({"microscope": {"defocus": 3.0, "defocus_um": 3.0}})


def test_cli_simulate_tomo(tmp_path, capsys, mirror):
    cfg = tmp_path / "cfg.yml"
    small = dict(SMALL, prior=False)
    cfg.write_text(yaml.safe_dump(small))
    assert main(["simulate-tomo", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "tomogram.mrc").is_file()
    assert not (tmp_path / "out" / "prior.mrc").exists()
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"microscope": {"step": -2}}))
    assert main(["simulate-tomo", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.yml" in err[0] and "step" in err[0]
    assert not (tmp_path / "x").exists()


def test_simulate_to_directory_refuses_existing(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="exists"):
        simulate_to_directory(config_from_dict(SMALL), tmp_path / "taken")
