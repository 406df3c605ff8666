"""Tests of the structure → map simulators (cryolab.density)."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
from scipy import ndimage

from cryolab import density
from cryolab.errors import ConfigError, FormatError
from cryolab.io import Atoms, Volume


def one_atom(element: str = "C", xyz=(0.3, -0.2, 0.1)) -> Atoms:
    el = gemmi.Element(element)
    return Atoms(np.array([xyz], float), np.array([el.atomic_number]), np.array([el.weight]),
                 np.array([el.name]))


def cloud(n: int = 200, seed: int = 0) -> Atoms:
    rng = np.random.default_rng(seed)
    names = rng.choice(["C", "N", "O", "S"], n)
    els = [gemmi.Element(e) for e in names]
    return Atoms(rng.uniform(0, 20, (n, 3)), np.array([e.atomic_number for e in els]),
                 np.array([e.weight for e in els]), names)


def small_structure() -> gemmi.Structure:
    st = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    res = gemmi.Residue()
    res.name, res.seqid = "GLY", gemmi.SeqId(1, " ")
    for name, el, pos in [("N", "N", (0, 0, 0)), ("CA", "C", (1.4, 0.3, 0)),
                          ("C", "C", (2.1, 1.5, 0.4)), ("O", "O", (3.2, 1.6, 1.0))]:
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos, atom.b_iso, atom.occ = (
            name, gemmi.Element(el), gemmi.Position(*pos), 10.0, 1.0)
        res.add_atom(atom)
    chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    return st


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_integral_equals_sum_of_weights(method):
    atoms = cloud()
    vol = density.molmap(atoms, 3.0, method=method)
    integral = vol.data.sum() * np.prod(vol.voxel_size)
    assert integral == pytest.approx(atoms.atomic_number.sum(), rel=1e-3)
    b = density.blur(atoms, 3.0, method=method)
    assert b.data.sum() * np.prod(b.voxel_size) == pytest.approx(atoms.mass.sum(), rel=1e-3)


def test_pdb2mrc_uses_electron_counts():
    atoms = cloud()
    vol = density.pdb2mrc(atoms, 3.0)
    expected = sum(density.ELECTRONS[e] for e in atoms.element)
    assert vol.data.sum() * np.prod(vol.voxel_size) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("sigma_factor", density.BLUR_SIGMA_FACTORS)
def test_single_atom_width_matches_sigma(sigma_factor):
    res = 4.0
    vol = density.blur(one_atom(), res, sigma_factor=sigma_factor, voxel_size=0.25)
    # second moment of the sampled blob around its centre, per axis
    w = vol.data / vol.data.sum()
    centre = np.array([0.1, -0.2, 0.3])  # z, y, x of the atom
    for axis, coords in enumerate(np.meshgrid(*vol.grid_axes(), indexing="ij")):
        var = float((w * (coords - centre[axis]) ** 2).sum())
        assert np.sqrt(var) == pytest.approx(sigma_factor * res, rel=0.01)


def test_molmap_fourier_transform_falls_to_1_over_e_at_resolution():
    res = 6.0
    atom = one_atom(xyz=(0.0, 0.0, 0.0))
    vol = density.molmap(atom, res, voxel_size=0.5, padding=30.0)
    amplitude = np.abs(np.fft.fftn(vol.data))
    n = vol.shape[0]
    freq = np.fft.fftfreq(n, d=0.5)  # 1/Å along z
    k = int(np.argmin(np.abs(freq - 1.0 / res)))
    ratio = amplitude[k, 0, 0] / amplitude[0, 0, 0]
    expected = np.exp(-((freq[k] * res) ** 2))
    assert ratio == pytest.approx(expected, rel=0.01)
    assert expected == pytest.approx(np.exp(-1), rel=0.1)


def test_fft_summation_agrees_with_direct_summation():
    atoms = cloud(300)
    grid = density.box_around(atoms.xyz, 0.5, 8.0)
    a = density.gaussian_density(atoms.xyz, atoms.atomic_number, 1.2, grid, method="direct")
    b = density.gaussian_density(atoms.xyz, atoms.atomic_number, 1.2, grid, method="fft")
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999
    assert np.abs(a - b).max() < 0.03 * a.max()


@pytest.mark.parametrize("sigma, voxel, cutoff", [
    (1.1, 0.7, 50.0),  # no cutoff within the box
    (0.9, 4.0 / 3.0, 5.0),  # molmap's defaults at 4 Å: σ = 0.9 Å on R/3 voxels, cut at 5σ
])
def test_direct_summation_matches_brute_force(sigma, voxel, cutoff):
    """The float32 window sums against a float64 sum over every voxel and atom, with the same
    cutoff (|Δ| ≤ cutoff·σ along each axis): equal within 1e-6 of the peak."""
    atoms = cloud(20, seed=3)
    grid = density.box_around(atoms.xyz, voxel, 5.0)
    got = density.gaussian_density(atoms.xyz, atoms.mass, sigma, grid, cutoff=cutoff)
    zz, yy, xx = np.meshgrid(*grid.grid_axes(), indexing="ij")
    brute = np.zeros(grid.shape)
    for (x, y, z), w in zip(atoms.xyz, atoms.mass, strict=True):
        d = [xx - x, yy - y, zz - z]
        inside = np.all([np.abs(di) <= cutoff * sigma for di in d], axis=0)
        d2 = sum(di**2 for di in d)
        brute += np.where(inside, w * np.exp(-d2 / (2 * sigma**2)), 0.0) \
            / (2 * np.pi * sigma**2) ** 1.5
    np.testing.assert_allclose(got, brute, rtol=1e-5, atol=1e-6 * brute.max())


@pytest.mark.parametrize("method", density.METHODS)
def test_on_grid_shares_shape_voxel_size_and_origin(method):
    st = small_structure()
    target = Volume(np.zeros((30, 28, 26), np.float32), (0.9, 1.1, 1.0), (-8.0, -7.5, -9.0))
    vol = density.simulate(st, 3.0, method, on_grid=target)
    assert vol.shape == target.shape
    np.testing.assert_allclose(vol.voxel_size, target.voxel_size)
    np.testing.assert_allclose(vol.origin, target.origin)
    # the density sits on the atoms: its centre of mass is the atoms' (Z-weighted) centre
    found = vol.position_of(ndimage.center_of_mass(vol.data))[0]
    atoms = st[0][0][0]
    xyz = np.array([a.pos.tolist() for a in atoms])
    z = np.array([a.element.atomic_number for a in atoms])
    np.testing.assert_allclose(found, (xyz * z[:, None]).sum(0) / z.sum(), atol=0.15)


def test_formfactor_agrees_with_molmap_in_place():
    st = small_structure()
    a = density.molmap(st, 3.0)
    b = density.formfactor(st, 3.0)
    assert b.shape == a.shape
    assert np.corrcoef(a.data.ravel(), b.data.ravel())[0, 1] > 0.95


def test_automatic_box_defaults():
    atoms = cloud(50)
    vol = density.molmap(atoms, 3.0)
    np.testing.assert_allclose(vol.voxel_size, 1.0)  # R/3
    low = atoms.xyz.min(axis=0)[::-1] - 9.0  # padding 3R, snapped down to whole voxels
    assert np.all(vol.origin <= low) and np.all(vol.origin > low - vol.voxel_size)
    np.testing.assert_allclose(vol.origin / vol.voxel_size, np.round(vol.origin / vol.voxel_size))
    high = atoms.xyz.max(axis=0)[::-1] + 9.0
    assert np.all(vol.origin + (np.array(vol.shape) - 1) * vol.voxel_size >= high)


def test_resample_keeps_positions():
    # trilinear interpolation reproduces a linear ramp exactly, so values must match positions
    coarse = Volume(np.zeros((20, 22, 24), np.float32), 1.3, (5.0, -3.0, 2.0))
    zz, yy, xx = np.meshgrid(*coarse.grid_axes(), indexing="ij")
    coarse = coarse.with_data(0.5 * zz - 0.2 * yy + 0.1 * xx)
    fine = density.resample(coarse, 1.0)
    np.testing.assert_allclose(fine.origin, coarse.origin)
    np.testing.assert_allclose(fine.voxel_size, 1.0)
    assert np.all(fine.extent <= coarse.extent + 1.0)
    fz, fy, fx = np.meshgrid(*fine.grid_axes(), indexing="ij")
    np.testing.assert_allclose(fine.data, 0.5 * fz - 0.2 * fy + 0.1 * fx, atol=1e-4)


def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown simulation method"):
        density.simulate(cloud(5), 3.0, "nonsense")
    with pytest.raises(ConfigError, match="resolution"):
        density.molmap(cloud(5), -1.0)
    with pytest.raises(ConfigError, match="summation"):
        density.molmap(cloud(5), 3.0, method="slow")
    bad = tmp_path / "broken.pdb"
    bad.write_text("this is not a structure\n")
    with pytest.raises(FormatError, match="broken.pdb"):
        density.molmap(bad, 3.0)
    xyz = np.array([[np.nan, 0, 0]])
    with pytest.raises(FormatError):
        density.gaussian_density(xyz, np.ones(1), 1.0, density.box_around(np.zeros((1, 3)), 1, 3))


def test_cli_simulate_map(tmp_path, capsys):
    from cryolab.cli import main
    from cryolab.io import read_map, read_structure, write_map

    pdb = tmp_path / "gly.pdb"
    small_structure().write_pdb(str(pdb))
    grid = Volume(np.zeros((24, 24, 24), np.float32), 0.8, (-8.0, -8.0, -8.0))
    write_map(tmp_path / "grid.mrc", grid)
    out = tmp_path / "sim.mrc"
    code = main(["simulate-map", str(pdb), "--resolution", "3", "--method", "blur",
                 "--on-grid", str(tmp_path / "grid.mrc"), "--out", str(out)])
    assert code == 0
    got = read_map(out)
    assert got.shape == grid.shape
    np.testing.assert_allclose(got.origin, grid.origin, atol=1e-4)
    expected = density.blur(read_structure(pdb), 3.0, on_grid=grid)
    np.testing.assert_allclose(got.data, expected.data, rtol=1e-5, atol=1e-7)

    bad = tmp_path / "bad.pdb"
    bad.write_text("garbage\n")
    assert main(["simulate-map", str(bad), "--resolution", "3", "--out",
                 str(tmp_path / "z.mrc")]) == 2
    assert "bad.pdb" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main(["simulate-map", str(pdb), "--resolution", "3", "--method", "magic",
              "--out", str(tmp_path / "x.mrc")])
    assert "magic" in capsys.readouterr().err
    assert not (tmp_path / "x.mrc").exists()
    assert main(["simulate-map", str(pdb), "--out", str(tmp_path / "y.mrc")]) == 2
    assert "--resolution" in capsys.readouterr().err



def _splat_reference(index, weights, shape, linear):
    """Point by point with np.add.at: the plain loop the vectorised splat must equal."""
    out = np.zeros(shape)
    for point, w in zip(index, weights, strict=True):
        base = np.floor(point).astype(int)
        corners = np.ndindex(2, 2, 2) if linear else [(0, 0, 0)]
        for corner in corners:
            pos = base + np.array(corner)
            if np.all((pos >= 0) & (pos < shape)):
                f = point - base
                share = np.prod(np.where(np.array(corner) == 1, f, 1 - f)) if linear else 1.0
                np.add.at(out, tuple(pos), w * share)
    return out


@pytest.mark.parametrize("linear", [True, False])
def test_splat_equals_point_by_point_sum_including_edges(linear):
    rng = np.random.default_rng(3)
    shape = (5, 6, 7)
    index = rng.uniform(-1.5, 7.5, (300, 3))  # many points straddle or leave the grid
    weights = rng.uniform(0.5, 8, 300)
    got = density.splat(index, weights, shape, linear=linear)
    np.testing.assert_allclose(got, _splat_reference(index, weights, shape, linear),
                               rtol=1e-12, atol=1e-12)


def _atoms_reference(structure, hydrogens=True):
    """The per-atom loop atoms_of replaced (first occurrence of each atom name per residue)."""
    xyz, z, mass, names = [], [], [], []
    for chain in structure[0]:
        for residue in chain:
            seen = set()
            for atom in residue:
                if atom.name in seen or (not hydrogens and atom.element.is_hydrogen):
                    continue
                seen.add(atom.name)
                xyz.append(atom.pos.tolist())
                z.append(atom.element.atomic_number)
                mass.append(atom.element.weight)
                names.append(atom.element.name)
    return np.array(xyz), np.array(z), np.array(mass), np.array(names)


@pytest.mark.parametrize("name", ["structures/ccpem/5me2.pdb.gz",
                                  "structures/biotite/1l2y.cif.gz"])
@pytest.mark.parametrize("hydrogens", [True, False])
def test_vectorised_atoms_of_equals_per_atom_loop(name, hydrogens):
    from cryolab.data import fetch
    from cryolab.io import atoms_of, read_structure

    st = read_structure(fetch(name))
    atoms = atoms_of(st, hydrogens=hydrogens)
    xyz, z, mass, names = _atoms_reference(st, hydrogens)
    assert len(atoms) == len(xyz) > 100
    np.testing.assert_array_equal(atoms.xyz, xyz)
    np.testing.assert_array_equal(atoms.atomic_number, z)
    np.testing.assert_allclose(atoms.mass, mass)
    np.testing.assert_array_equal(atoms.element, names)
    if not hydrogens:
        assert not np.isin(atoms.element, ["H", "D"]).any()


@pytest.mark.parametrize("shift", [(0.0, 0.0, 0.0), (12000.0, -1500.0, 0.0)])
def test_atoms_of_takes_any_coordinates_chain_names_and_model(shift):
    """Coordinates beyond the PDB format's -999.999 … 9999.999 Å and chain names of any length
    come through exactly; with two models, ``model=1`` gives the second one's atoms."""
    from cryolab.data import fetch
    from cryolab.io import atoms_of, read_structure

    st = read_structure(fetch("structures/ccpem/5me2.pdb.gz"))
    st[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
    for i, chain in enumerate(st[0]):
        chain.name = f"LONG{i}"
    xyz, z, _, names = _atoms_reference(st)
    atoms = atoms_of(st)
    np.testing.assert_array_equal(atoms.xyz, xyz)
    np.testing.assert_array_equal(atoms.atomic_number, z)
    np.testing.assert_array_equal(atoms.element, names)
    second = st[0].clone()
    del second[0]  # a different atom count from the first model
    second.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(1.0, 2.0, 3.0)))
    st.add_model(second)
    two = atoms_of(st, model=1)
    assert len(two) == second.count_atom_sites() < len(atoms)
    np.testing.assert_array_equal(two.xyz, xyz[len(atoms) - len(two):] + [1.0, 2.0, 3.0])


def test_atoms_of_keeps_the_first_of_alternative_residues():
    """3JQH holds residues with several alternative identities (A PRO/SER 1 …): gemmi's first
    conformer keeps one residue per position, where a name-by-name loop kept both."""
    from cryolab.data import fetch
    from cryolab.io import atoms_of, read_structure

    st = read_structure(fetch("structures/biopython/3JQH.cif.gz"))
    first = st.clone()
    first.remove_alternative_conformations()
    expected = sum(len(r) for ch in first[0] for r in ch)
    assert len(atoms_of(st)) == expected < sum(len(r) for ch in st[0] for r in ch)


def test_electron_counts_per_element_and_atomic_number_otherwise():
    """The table wins for its elements (whatever Z says), Z serves the others."""
    atoms = Atoms(np.zeros((5, 3)), np.array([99, 99, 26, 99, 34]), np.ones(5),
                  np.array(["C", "h", "Fe", "O", "Se"]))
    np.testing.assert_array_equal(density.electron_counts(atoms), [6, 1, 26, 8, 34])
