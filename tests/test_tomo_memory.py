"""The tomogram simulator's memory-bounded paths give the plain paths' numbers: slabs, tiles,
object blocks, in-place steps and the streamed ``simulate-tomo`` (#23)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage, signal

from cryolab.density import splat
from cryolab.io import Volume, read_map
from cryolab.tomo import microscope, specimen
from cryolab.tomo.microscope import MicroscopeConfig, _permute, acquire, project
from cryolab.tomo.reconstruct import (
    backproject,
    ideal_reconstruction,
    radial_filter,
    weighted_backprojection,
)
from cryolab.tomo.simulate import (
    _label_counts,
    config_from_dict,
    simulate,
    simulate_to_directory,
    write_simulation,
)
from cryolab.tomo.specimen import ClassVolumes, Specimen, _smooth_noise, _stamp, _std

#: every kind of object: particles, a vesicle with membrane proteins, a microtubule, carbon, gold
EVERYTHING = {
    "seed": 2,
    "specimen": {"size": [1600, 1280, 600], "pixel_size": 20,
                 "layers": [{"particles": ["ribosome", "rubisco"], "density": 0.1,
                             "iterations": 80}],
                 "vesicles": {"count": 1, "radius": [120, 160], "proteins": ["5gjv_mb"]},
                 "microtubules": 1, "gold": 2, "carbon": True},
    "microscope": {"min_angle": -60, "max_angle": 60, "step": 6, "dose": 60},
    "reconstruction": {"prior_step": 3},
}


@pytest.fixture
def tiny_slabs(monkeypatch):
    """Slabs of 3 planes, tiles of 8 voxels, one row per projection slab."""
    monkeypatch.setattr(specimen, "SLAB", 3)
    monkeypatch.setattr(specimen, "TILE", 8)
    monkeypatch.setattr(microscope, "SLAB_VALUES", 1)


def test_streamed_directory_equals_the_written_simulation(tmp_path, mirror, monkeypatch):
    """simulate-tomo's streamed run (tiny slabs and tiles) writes the very bytes of the
    in-memory simulation (default slabs) written afterwards."""
    cfg = config_from_dict(EVERYTHING)
    plain = write_simulation(simulate(cfg), tmp_path / "plain")
    summary = json.loads((plain / "parameters.json").read_text())
    assert {"microtubule", "carbon", "membrane", "5gjv_mb", "gold"} <= set(
        summary["placement_counts"])
    monkeypatch.setattr(specimen, "SLAB", 3)
    monkeypatch.setattr(specimen, "TILE", 8)
    monkeypatch.setattr(microscope, "SLAB_VALUES", 1)
    streamed = simulate_to_directory(cfg, tmp_path / "streamed")
    files = sorted(p.relative_to(plain) for p in plain.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(streamed) for p in streamed.rglob("*") if p.is_file())
    assert len(files) >= 12
    for name in files:
        if name.suffix == ".mrc":
            np.testing.assert_array_equal(read_map(streamed / name).data,
                                          read_map(plain / name).data, err_msg=str(name))
        else:
            assert (streamed / name).read_bytes() == (plain / name).read_bytes(), name


def test_projection_and_backprojection_by_slabs_equal_whole_volumes(monkeypatch):
    rng = np.random.default_rng(0)
    volume = rng.uniform(0, 1, (9, 11, 13)).astype(np.float32)
    angles = np.arange(-60.0, 61.0, 7.5)
    images = rng.normal(size=(len(angles), 11, 13)).astype(np.float32)
    ramp = radial_filter(26)
    whole = (project(volume, angles), backproject(images, angles, 9, None, ramp),
             ideal_reconstruction(volume, 80.0, 4.0))
    monkeypatch.setattr(microscope, "SLAB_VALUES", 1)  # one y row at a time
    for got, want in zip((project(volume, angles, chunk=5),
                          backproject(images, angles, 9, None, ramp, chunk=32),
                          ideal_reconstruction(volume, 80.0, 4.0)), whole, strict=True):
        np.testing.assert_array_equal(got, want)


def test_prior_view_by_view_equals_the_whole_series_path():
    """The prior, projected and back-projected 32 views at a time, against the plain path:
    the whole series projected, mean removed, sign inverted, then WBP."""
    volume = np.random.default_rng(1).uniform(0, 1, (10, 6, 24)).astype(np.float32)
    angles = np.arange(-89.0, 90.0, 1.0)
    sums = project(volume, angles)
    sums = -(sums - sums.mean(axis=(1, 2), keepdims=True))
    plain = weighted_backprojection(sums, angles, 10, cutoff=None)
    got = ideal_reconstruction(volume, 89.0, 1.0)
    np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-6 * np.abs(plain).max())


def test_class_volumes_sum_their_blocks_in_order(tiny_slabs):
    rng = np.random.default_rng(2)
    shape = (7, 30, 26)
    volumes, dense = ClassVolumes(shape), {"a": np.zeros(shape, np.float32),
                                           "b": np.zeros(shape, np.float32)}
    for _ in range(12):
        name = "ab"[int(rng.integers(2))]
        lo = rng.integers(0, [5, 20, 18])
        hi = np.minimum(lo + rng.integers(1, [6, 25, 25]), shape)
        block = rng.uniform(0, 1, tuple(hi - lo)).astype(np.float32)
        block[:, :2] = 0  # zero margins are trimmed, empty tiles dropped
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        volumes.add(name, box, block)
        dense[name][box] += block
    assert sorted(volumes) == ["a", "b"]
    for name in volumes:
        np.testing.assert_array_equal(volumes[name], dense[name])
        np.testing.assert_array_equal(volumes.slab(name, 2, 5), dense[name][2:5])
    ice = rng.uniform(0, 1, shape).astype(np.float32)
    spec = Specimen(volumes, ice.copy(), np.zeros(shape, np.uint16), [], 10.0)
    first, second = list(volumes)  # the order classes were first added: their labels
    np.testing.assert_array_equal(spec.potential, ice + dense[first] + dense[second])
    stack = np.stack([dense[first], dense[second]])
    atlas = (np.argmax(stack, axis=0) + 1).astype(np.uint8)
    atlas[stack.max(axis=0) <= spec.class_threshold()] = 0
    np.testing.assert_array_equal(spec.atlas(), atlas)
    taken = spec.take_potential()
    np.testing.assert_array_equal(taken.data, ice + dense[first] + dense[second])
    assert spec.ice is None


def test_stamped_kernels_equal_splatted_points_convolved():
    rng = np.random.default_rng(3)
    kernel = rng.uniform(0, 1, (7, 7, 7)).astype(np.float32)
    points = rng.uniform(-3, 20, (80, 3))  # some leave the grid
    shape = (14, 18, 17)
    want = signal.fftconvolve(splat(points, np.ones(len(points)), shape).astype(np.float32),
                              kernel, mode="same")
    got = np.zeros(shape, np.float32)
    _stamp(got, points, kernel)
    np.testing.assert_allclose(got, want, atol=1e-5 * want.max())
    assert np.count_nonzero(got == 0) > 0  # untouched voxels stay exactly 0


def test_smooth_noise_drawn_by_slabs_equals_one_draw(tiny_slabs):
    shape = (8, 12, 10)
    field = ndimage.gaussian_filter(
        np.random.default_rng(4).standard_normal(shape).astype(np.float32), 1.5)
    np.testing.assert_array_equal(_smooth_noise(shape, 1.5, np.random.default_rng(4)),
                                  field / (field.std() + 1e-12))


def test_permute_in_place_equals_fancy_indexing():
    rng = np.random.default_rng(5)
    stack = rng.normal(size=(9, 3, 2))
    order = rng.permutation(9)
    want = stack[order]
    _permute(stack, order)
    np.testing.assert_array_equal(stack, want)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (8, 12, 10), (37, 123, 91)])
def test_std_by_pairwise_halves_is_numpys_number(shape):
    """The float32 standard deviation summed half by half, in runs as short as numpy's own
    blocks, is bit for bit ``ndarray.std()`` (the smoothed ice texture depends on it)."""
    values = ndimage.gaussian_filter(
        np.random.default_rng(6).standard_normal(shape).astype(np.float32) * 2 + 0.5, 1.0)
    for leaf in (1 << 20, 1000, 128):
        got = _std(values, leaf)
        assert got.dtype == np.float32 and got == values.std(), leaf
    assert _std(np.full((3, 50, 7), 2.5, np.float32), 128) == 0


def test_acquire_in_place_of_the_phase_gives_the_same_series():
    """``keep_phase=False`` (simulate-tomo's streamed run) computes each image where its phase
    projection was, then sorts them: the same images, angles and random stream."""
    volume = Volume(np.random.default_rng(7).uniform(0, 5, (6, 9, 11)).astype(np.float32),
                    10.0, 0.0)
    cfg = MicroscopeConfig(min_angle=-40, max_angle=40, step=10, angle_error=0.5)
    kept_rng, used_rng = np.random.default_rng(8), np.random.default_rng(8)
    kept = acquire(volume, cfg, kept_rng)
    used = acquire(volume, cfg, used_rng, keep_phase=False)
    assert used.phase is None and kept.phase.shape == kept.images.shape
    assert not np.array_equal(kept.order, np.arange(len(kept.order)))  # images were sorted
    np.testing.assert_array_equal(used.images, kept.images)
    np.testing.assert_array_equal(used.true_angles, kept.true_angles)
    assert used_rng.random() == kept_rng.random()


def test_label_counts_by_chunks_equal_one_bincount():
    atlas = np.random.default_rng(9).integers(0, 5, (7, 9, 11)).astype(np.uint8)
    want = np.bincount(atlas.ravel(), minlength=6)
    for step in (1, 10, 1 << 22):
        np.testing.assert_array_equal(_label_counts(atlas, 6, step), want)
