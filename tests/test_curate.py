"""Tests of target-map curation (cryolab.curate)."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from cryolab import density
from cryolab.curate import curate_pair, scale_unit
from cryolab.errors import ConfigError
from cryolab.io import Atoms, atoms_of, read_map, read_structure
from cryolab.metrics import pcc


def helix_structure(n: int = 30) -> gemmi.Structure:
    st = gemmi.Structure()
    model, chain = gemmi.Model("1"), gemmi.Chain("A")
    for i in range(n):
        res = gemmi.Residue()
        res.name, res.seqid = "ALA", gemmi.SeqId(i + 1, " ")
        t = np.radians(100 * i)
        atom = gemmi.Atom()
        atom.name, atom.element = "CA", gemmi.Element("C")
        atom.pos = gemmi.Position(2.3 * np.cos(t), 2.3 * np.sin(t), 1.5 * i)
        atom.occ, atom.b_iso = 1.0, 20.0
        res.add_atom(atom)
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    return st


@pytest.fixture(scope="module")
def synthetic():
    """An 'experimental' map: the helix at 4 Å on 1.3 Å voxels plus a blob the model lacks."""
    st = helix_structure()
    exp = density.molmap(st, 4.0, voxel_size=1.3, padding=15.0)
    lump = Atoms(np.array([[12.0, 12.0, 20.0]]), np.array([80]), np.array([200.0]),
                 np.array(["X"]))
    blob = density.molmap(lump, 4.0, on_grid=exp)
    return st, exp.with_data(exp.data + blob.data)


def test_curated_pair_grid_range_and_mask(synthetic):
    st, exp = synthetic
    pair = curate_pair(exp, st, mask_radius=3.0, input_resolution=4.0)
    for vol in (pair.input, pair.target):
        np.testing.assert_allclose(vol.voxel_size, 1.0)
        assert vol.data.min() == pytest.approx(0.0) and vol.data.max() == pytest.approx(1.0)
    assert pair.input.shape == pair.target.shape == pair.mask.shape
    np.testing.assert_allclose(pair.input.origin, pair.target.origin)
    # outside the mask the target is zero; the extra blob (far from the model) is gone
    assert np.all(pair.target.data[~pair.mask] == 0)
    xyz = atoms_of(st).xyz
    assert pair.target.interpolate(np.array([[12.0, 12.0, 20.0]]))[0] == 0
    # every atom lies in the masked box
    idx = np.rint(pair.target.index_of(xyz)).astype(int)
    assert pair.mask[tuple(idx.T)].all()
    # input and target agree on the model (same resolution, same grid; resampling blurs a bit)
    assert pcc(pair.input.data, pair.target.data, pair.mask) > 0.95


def test_mask_none_keeps_the_box(synthetic):
    st, exp = synthetic
    pair = curate_pair(exp, st, mask="none")
    assert pair.mask.all()
    assert np.all(np.abs(pair.target.extent - exp.extent) <= 1.3)


def test_scaling_variants():
    data = np.array([-1.0, 0.0, 0.5, 1.0, 3.0] * 10, dtype=np.float32).reshape(5, 5, 2)
    unit = scale_unit(data)
    assert unit.min() == 0 and unit.max() == 1
    clipped = scale_unit(data, "percentile", percentile=50)
    assert clipped.max() == 1 and clipped.min() == 0
    assert np.count_nonzero(clipped == 1) > np.count_nonzero(unit == 1)
    with pytest.raises(ConfigError, match="scaling"):
        scale_unit(data, "zscore")
    with pytest.raises(ConfigError, match="constant"):
        scale_unit(np.ones((3, 3, 3)))


def test_bad_options(synthetic):
    st, exp = synthetic
    with pytest.raises(ConfigError, match="mask"):
        curate_pair(exp, st, mask="sphere")
    far = st.clone()
    far[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(500, 0, 0)))
    with pytest.raises(ConfigError, match="empty"):
        curate_pair(exp, far)


def test_real_cutout_with_origin_field(mirror):
    from cryolab.data import fetch

    exp = read_map(fetch("maps/emd_2566_segment_3j6b_chain9.mrc.gz"))
    st = read_structure(fetch("structures/daq/3J6B_chain9.pdb.gz"))
    pair = curate_pair(exp, st)
    # the model explains the deposited density (the cut-out is placed by its ORIGIN field):
    # a clear correlation in the mask, which a 4 Å misplacement destroys
    placed = pcc(pair.input.data, pair.target.data, pair.mask)
    shifted = pcc(pair.input.data, np.roll(pair.target.data, 4, axis=0), pair.mask)
    assert placed > 0.4 and shifted < placed - 0.3
