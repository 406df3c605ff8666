"""Specimen models: voxelised atoms, placement without overlaps, features, atlas."""

from __future__ import annotations

import numpy as np
import pytest

from cryolab.errors import ConfigError
from cryolab.tomo.particles import load_particle, particle_from_structure
from cryolab.tomo.specimen import (
    ICE_DENSITY,
    PROTEIN_DENSITY,
    Layer,
    SpecimenConfig,
    VesicleConfig,
    axis_distance,
    build_specimen,
    vesicle,
    voxelize_atoms,
)


def test_voxelize_atoms_matches_a_loop_with_add_at():
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-20, 20, (500, 3))
    z = rng.integers(1, 17, 500)
    grid = voxelize_atoms(xyz, z, 4.0, edge=16)
    ref = np.zeros((16, 16, 16))
    idx = np.floor((xyz - xyz.mean(0)) / 4.0 + 8).astype(int)
    for (xi, yi, zi), w in zip(idx, z, strict=True):
        ref[zi, yi, xi] += w  # arrays are (z, y, x); coordinates x, y, z
    np.testing.assert_allclose(grid, ref)
    assert grid.sum() == z.sum()


def test_particle_from_a_real_structure(mirror):
    from cryolab.data import fetch
    from cryolab.io import atoms_of, read_structure

    path = fetch("templates/polnet/pdbs/1bxn.pdb.gz")
    p = particle_from_structure(path, 8.0)
    atoms = atoms_of(read_structure(path))
    assert p.density.sum() == pytest.approx(atoms.atomic_number.sum())
    assert p.density.shape[0] == p.density.shape[1] == p.density.shape[2]
    assert p.mask.sum() > 100
    # the same structure by its mirror name, usable in a layer
    np.testing.assert_array_equal(load_particle("templates/polnet/pdbs/1bxn.pdb.gz", 8.0).density,
                                  p.density)


def test_templates_scaled_to_their_mass(mirror):
    for pixel in (10.0, 7.0):
        p = load_particle("rubisco", pixel)
        assert p.density.sum() == pytest.approx(0.534 * 550e3, rel=0.02)
    # without a known mass: protein density over the volume holding 90 % of the density
    p = load_particle("5gjv_mb", 10.0)
    assert p.density.sum() > 0 and p.membrane
    inside = p.density[p.density > 0.5 * p.density.max()]
    assert 0.5 * PROTEIN_DENSITY * 1000 < inside.mean() < 4 * PROTEIN_DENSITY * 1000
    with pytest.raises(ConfigError, match="unknown particle"):
        load_particle("unobtainium", 10.0)


def test_axis_distance_is_the_distance_from_the_line():
    """Against the cross product: |(p - c) × d| for the unit direction d of the axis."""
    shape, centre = (7, 20, 24), (3.0, 8.3, 11.7)
    points = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1)
    for direction in ((0.0, 1.0, 0.0), (0.0, 0.6, -0.8), (1.0, 2.0, 3.0), (5.0, 0.0, 0.0)):
        d = np.array(direction) / np.linalg.norm(direction)
        expected = np.linalg.norm(np.cross(points - np.array(centre), d), axis=-1)
        np.testing.assert_allclose(axis_distance(shape, centre, direction), expected,
                                   atol=1e-9)


def _crowded(seed=0, **kw):
    cfg = SpecimenConfig(size=(960.0, 960.0, 400.0), pixel_size_a=10.0,
                         layers=[Layer(["ribosome", "proteasome_20s"], 0.2, 200),
                                 Layer(["rubisco"], 0.05, 100)], gold=3, **kw)
    return build_specimen(cfg, seed, particles=load_particle)


def test_no_two_particles_overlap_and_atlas_counts_match(mirror):
    spec = _crowded(carbon=True)
    names = [p.name for p in spec.placements]
    assert names.count("ribosome") + names.count("proteasome_20s") >= 5
    assert spec.overlap_free()
    # independent check: the instance labels add up to every placement's own voxels
    assert np.count_nonzero(spec.instances) == sum(p.n_voxels for p in spec.placements)
    # the atlas: each class's voxel count equals the voxels where that class volume is both
    # above the threshold and the largest of all classes (computed here class by class)
    atlas = spec.atlas()
    thr = spec.class_threshold()
    for label, name in enumerate(spec.class_names[1:], start=1):
        mine = spec.classes[name]
        others = [v for n, v in spec.classes.items() if n != name]
        best = (mine > thr) & np.all([mine > o for o in others[:label - 1]], axis=0) \
            & np.all([mine >= o for o in others[label - 1:]], axis=0)
        assert (atlas == label).sum() == best.sum()
    assert (atlas > 0).sum() == (np.max(np.stack(list(spec.classes.values())), 0) > thr).sum()


def test_particles_stay_inside_the_ice_in_z_but_cross_xy_borders(mirror):
    spec = _crowded(seed=1)
    particle_voxels = np.isin(spec.instances, [i + 1 for i, p in enumerate(spec.placements)
                                               if p.name in ("ribosome", "proteasome_20s")])
    zs = np.nonzero(particle_voxels.any(axis=(1, 2)))[0]
    assert zs.min() >= 0 and zs.max() <= spec.shape[0] - 1
    edge = particle_voxels[:, :, 0].any() | particle_voxels[:, :, -1].any() \
        | particle_voxels[:, 0, :].any() | particle_voxels[:, -1, :].any()
    assert edge  # at this density something sits across a border


def test_same_seed_same_specimen(mirror):
    a, b, c = _crowded(seed=5), _crowded(seed=5), _crowded(seed=6)
    np.testing.assert_array_equal(a.potential, b.potential)
    assert not np.array_equal(a.potential, c.potential)


def test_vesicle_bilayer_is_bimodal():
    density, mask, lumen, mid = vesicle(150.0, 4.0, irregularity=0.0, rng=0)
    c = density.shape[0] // 2
    profile = density[c, c, c:]  # along +x from the centre
    r = np.arange(len(profile)) * 4.0
    peaks = [i for i in range(1, len(profile) - 1)
             if profile[i] > profile[i - 1] and profile[i] >= profile[i + 1]]
    assert len(peaks) == 2
    assert r[peaks[0]] == pytest.approx(132, abs=4) and r[peaks[1]] == pytest.approx(168, abs=4)
    assert profile[(peaks[0] + peaks[1]) // 2] < 0.8 * profile[peaks[0]]
    assert lumen[c, c, c] and not mask[c, c, c]
    def radius_spread(irregularity):
        *_, mid = vesicle(200.0, 8.0, irregularity=irregularity, rng=1)
        pts = np.argwhere(mid) - mid.shape[0] // 2
        return np.sqrt((pts**2).sum(1)).std() * 8.0

    assert radius_spread(0.0) < 4.0
    assert radius_spread(0.3) > 15.0


def test_features_vesicles_membrane_proteins_microtubule_carbon_gold(mirror):
    cfg = SpecimenConfig(size=(1200.0, 1200.0, 400.0), pixel_size_a=10.0,
                         vesicles=VesicleConfig(count=1, radius=(120, 140),
                                                proteins=["5gjv_mb"], protein_density=0.5),
                         microtubules=1, gold=2, carbon=True)
    spec = build_specimen(cfg, 3, particles=load_particle)
    names = {p.name for p in spec.placements}
    assert {"membrane", "5gjv_mb", "microtubule", "carbon", "gold"} <= names
    assert spec.overlap_free()
    carbon_xy = (spec.classes["carbon"] > 0).any(axis=0).mean()
    assert 0.05 < carbon_xy < 0.95  # the hole's edge is in view
    gold = spec.classes["gold"]
    assert gold.max() == pytest.approx(4.66 * 1000, rel=0.01)
    # ice: a floor of vitreous ice density away from other matter
    free = spec.instances == 0
    assert spec.ice[free].mean() == pytest.approx(ICE_DENSITY * 1000, rel=0.05)


def test_bad_specimens_raise_config_errors():
    with pytest.raises(ConfigError, match="pixel_size"):
        SpecimenConfig(size=(1e5, 1e5, 1e4), pixel_size_a=1.0).validate()
    with pytest.raises(ConfigError, match="density"):
        SpecimenConfig(layers=[Layer(["ribosome"], 1.5)]).validate()
    with pytest.raises(ConfigError, match="thick"):
        SpecimenConfig(size=(1000.0, 1000.0, 200.0), microtubules=1).validate()


def test_the_specimen_module_reads_no_files_unless_given_a_particle_source():
    cfg = SpecimenConfig(size=(480.0, 480.0, 300.0), pixel_size_a=10.0,
                         layers=[Layer(["ribosome"], 0.1, 10)])
    with pytest.raises(ConfigError, match="particles="):
        build_specimen(cfg, 0)
    # gold, carbon and ice need no particle source
    plain = build_specimen(SpecimenConfig(size=(480.0, 480.0, 300.0), gold=1, carbon=True), 0)
    assert {p.name for p in plain.placements} == {"gold", "carbon"}
