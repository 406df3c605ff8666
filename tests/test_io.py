"""cryolab.io: Volume geometry, MRC round trips (ours and gemmi's), real frames, bad input."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import time

import gemmi
import mrcfile
import numpy as np
import pytest
from test_bad_inputs import write_alanine

import cryolab.io
from cryolab import data
from cryolab.errors import CryolabError, FormatError
from cryolab.io import Volume, atoms_of, read_map, read_structure, write_map


def _random_volume(seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume(rng.normal(size=(12, 16, 20)), (1.5, 1.25, 1.0), (30.0, -12.5, 7.0))


@pytest.mark.parametrize("name", ["m.mrc", "m.map", "m.ccp4", "m.mrc.gz"])
def test_round_trip_keeps_values_voxel_size_and_origin(tmp_path, name):
    vol = _random_volume()
    read = read_map(write_map(tmp_path / name, vol))
    np.testing.assert_array_equal(read.data, vol.data)
    np.testing.assert_allclose(read.voxel_size, vol.voxel_size, rtol=1e-6)
    np.testing.assert_allclose(read.origin, vol.origin, rtol=1e-6)


def test_gzipped_map_is_the_plain_file_gzipped_in_one_go(tmp_path, monkeypatch):
    """The .gz map, compressed a few bytes at a time through a file beside it, holds the very
    bytes of gzip applied to the whole plain map at once (no name, zero time), and nothing
    else is left in the folder."""
    vol = _random_volume(3)
    plain = write_map(tmp_path / "m.mrc", vol).read_bytes()
    monkeypatch.setattr(cryolab.io._gzip_in_place, "__defaults__", (1000,))
    packed = write_map(tmp_path / "m.mrc.gz", vol).read_bytes()
    whole = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=whole, mtime=0) as gz:
        gz.write(plain)
    assert packed == whole.getvalue()
    assert gzip.decompress(packed) == plain
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mrc", "m.mrc.gz"]


def test_gemmi_reopens_the_map_in_the_same_place(tmp_path):
    """gemmi places maps by NSTART: its interpolation at atom-like points must equal ours."""
    vol = _random_volume(1)
    path = write_map(tmp_path / "m.mrc", vol)
    ccp4 = gemmi.read_ccp4_map(str(path))
    ccp4.setup(float("nan"))
    np.testing.assert_allclose(
        [ccp4.grid.spacing[i] for i in range(3)], vol.voxel_size[::-1], rtol=1e-6
    )
    rng = np.random.default_rng(2)
    idx = rng.uniform(1, np.array(vol.shape) - 2, size=(20, 3))  # z, y, x inside the box
    xyz = vol.position_of(idx)
    ours = vol.interpolate(xyz)
    theirs = [ccp4.grid.interpolate_value(gemmi.Position(*p)) for p in xyz]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_axis_order_mapc_mapr_maps_is_honoured(tmp_path):
    """A file stored with sections along x (MAPS=1) reads back in (z, y, x) order."""
    rng = np.random.default_rng(3)
    zyx = rng.normal(size=(4, 5, 6)).astype(np.float32)
    path = tmp_path / "swapped.mrc"
    with mrcfile.new(path) as mrc:
        # columns = z, rows = y, sections = x  ->  file array (x, y, z)
        mrc.set_data(np.ascontiguousarray(np.transpose(zyx, (2, 1, 0))))
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
        mrc.header.mx, mrc.header.my, mrc.header.mz = 6, 5, 4
        mrc.header.cella = (6.0, 10.0, 12.0)  # voxel x 1, y 2, z 3 Å
    vol = read_map(path)
    np.testing.assert_array_equal(vol.data, zyx)
    np.testing.assert_allclose(vol.voxel_size, (3.0, 2.0, 1.0))


def test_origin_field_wins_over_nstart_like_chimerax(tmp_path):
    path = tmp_path / "o.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((4, 4, 4), np.float32))
        mrc.voxel_size = 2.0
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 10, 10, 10
        mrc.header.origin = (1.0, 2.0, 3.0)
    np.testing.assert_allclose(read_map(path).origin, (3.0, 2.0, 1.0))


def _density_at_atoms_z(map_name: str, model_name: str) -> float:
    vol = read_map(data.fetch(map_name))
    atoms = atoms_of(read_structure(data.fetch(model_name)))
    idx = vol.index_of(atoms.xyz)
    inside = np.all((idx >= 0) & (idx <= np.array(vol.shape) - 1), axis=1)
    assert inside.mean() > 0.5, "most atoms must fall inside the map box"
    values = vol.interpolate(atoms.xyz[inside])
    return float((values.mean() - vol.data.mean()) / vol.data.std())


@pytest.mark.parametrize(
    "map_name, model_name",
    [
        ("maps/emd_2566_segment_3j6b_chain9.mrc.gz", "structures/daq/3J6B_chain9.pdb.gz"),
        ("maps/emd_0093_masked_crop.map.gz", "structures/mainmastseg/6gyn.pdb.gz"),
    ],
)
def test_real_frames_place_atoms_in_density(mirror, map_name, model_name):
    """ORIGIN-framed (Chimera cut-out) and NSTART-framed (crop) maps both fit their models."""
    assert _density_at_atoms_z(map_name, model_name) > 1.5


def test_ignoring_the_origin_field_would_misplace_atoms(mirror):
    """The check above can fail: shift the cut-out to origin 0 and the atoms leave the density."""
    vol = read_map(data.fetch("maps/emd_2566_segment_3j6b_chain9.mrc.gz"))
    atoms = atoms_of(read_structure(data.fetch("structures/daq/3J6B_chain9.pdb.gz")))
    misplaced = Volume(vol.data, vol.voxel_size, (0.0, 0.0, 0.0))
    values = misplaced.interpolate(atoms.xyz)
    assert (values.mean() - vol.data.mean()) / vol.data.std() < 0.5


def test_bm5_files_gemmi_rejects_load_leniently(mirror):
    path = data.fetch("structures/bm5/1ACB_target.pdb.gz")
    with pytest.raises(RuntimeError):
        gemmi.read_structure(str(path))
    atoms = atoms_of(read_structure(path))
    assert len(atoms) > 1000
    assert set(atoms.element) <= {"C", "N", "O", "S"}


# ------------------------------------------------------------------------------ bad input


def test_truncated_mrc_names_the_file(tmp_path):
    good = write_map(tmp_path / "good.mrc", _random_volume())
    bad = tmp_path / "truncated.mrc"
    bad.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(FormatError, match="truncated.mrc"):
        read_map(bad)


def test_text_file_named_mrc(tmp_path):
    bad = tmp_path / "notes.mrc"
    bad.write_text("this is not a map\n" * 100)
    with pytest.raises(FormatError, match="notes.mrc"):
        read_map(bad)


def test_gzipped_garbage(tmp_path):
    bad = tmp_path / "garbage.map.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"\0" * 100)
    with pytest.raises(FormatError, match="garbage.map.gz"):
        read_map(bad)


def test_map_with_nans_is_refused_unless_allowed(tmp_path):
    path = tmp_path / "nan.mrc"
    arr = np.ones((4, 4, 4), np.float32)
    arr[1, 2, 3] = np.nan
    with mrcfile.new(path) as mrc:
        mrc.set_data(arr)
        mrc.voxel_size = 1.0
    with pytest.raises(FormatError, match=r"nan.mrc.*1 NaN"):
        read_map(path)
    assert np.isnan(read_map(path, allow_nan=True).data).sum() == 1


def test_zero_voxel_size_is_refused(tmp_path):
    path = tmp_path / "nocell.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ones((4, 4, 4), np.float32))
    with pytest.raises(FormatError, match="voxel size"):
        read_map(path)


def test_missing_map(tmp_path):
    with pytest.raises(FormatError, match="no such map"):
        read_map(tmp_path / "absent.mrc")


@pytest.mark.parametrize(("name", "message"),
                         [("empty.pdb", "empty.pdb.*no atoms"), ("empty.cif", "empty.cif")])
def test_empty_structure_file_names_the_file(tmp_path, name, message):
    empty = tmp_path / name
    empty.write_text("")
    with pytest.raises(FormatError, match=message):
        read_structure(empty)


def test_malformed_cif_names_the_file(tmp_path):
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\nloop_\n_atom_site.id\n_atom_site.Cartn_x\n1\n")
    with pytest.raises(CryolabError, match="broken.cif"):
        read_structure(bad)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cryolab.io, "_header_stats", explode)
    with pytest.raises(OSError, match="disk full"):
        write_map(tmp_path / "out.mrc", _random_volume())
    assert list(tmp_path.iterdir()) == []


def test_header_statistics_are_the_maps_own_summed_by_slabs(tmp_path):
    """min, max, mean and rms (the standard deviation) in the header equal numpy's float64
    values, also when the sums run over many slabs (one z plane each here)."""
    vol = _random_volume()
    vol.data[2, 3, 4] = 50.0
    expected = [vol.data.min(), vol.data.max(), vol.data.mean(dtype=np.float64),
                vol.data.std(dtype=np.float64)]
    assert cryolab.io._header_stats(vol.data, slab_values=1) == pytest.approx(expected, rel=1e-6)
    with mrcfile.open(write_map(tmp_path / "stats.mrc", vol)) as mrc:
        h = mrc.header
        assert [float(h.dmin), float(h.dmax), float(h.dmean), float(h.rms)] == pytest.approx(
            expected, rel=1e-6)


def test_write_refuses_nans_and_keeps_the_old_file(tmp_path):
    path = write_map(tmp_path / "keep.mrc", _random_volume())
    before = path.read_bytes()
    vol = _random_volume()
    vol.data[0, 0, 0] = np.nan
    with pytest.raises(FormatError, match="NaN"):
        write_map(path, vol)
    assert path.read_bytes() == before


def test_volume_geometry_round_trip():
    vol = _random_volume()
    idx = np.array([[1.5, 2.0, 3.25], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(vol.index_of(vol.position_of(idx)), idx)
    np.testing.assert_allclose(vol.position_of([[0, 0, 0]])[0], vol.origin[::-1])
    with pytest.raises(FormatError):
        Volume(np.zeros((2, 2)), 1.0, 0.0)
    with pytest.raises(FormatError):
        Volume(np.zeros((2, 2, 2)), (1.0, 0.0, 1.0), 0.0)


def test_copy_of_mirror_map_reads_identically(mirror, tmp_path):
    src = data.fetch("maps/emd_3488.map.gz")
    shutil.copy(src, tmp_path / "emd.map.gz")
    a, b = read_map(src), read_map(tmp_path / "emd.map.gz")
    np.testing.assert_array_equal(a.data, b.data)
    assert a.shape == (100, 100, 100)
    np.testing.assert_allclose(a.voxel_size, 1.05, rtol=1e-5)


# ---------------------------------------------------- placement agreed by every reader


def test_simulated_map_lands_on_its_model_in_every_reader(tmp_path):
    """``simulate-map`` output (an automatic box whose corner is not on the voxel lattice of
    the origin) is placed on the model by gemmi (NSTART), mrcfile (ORIGIN) and cryolab."""
    from cryolab.cli import main

    xyz = write_alanine(tmp_path / "ala.pdb", shift=(43.3, -27.9, 111.7))
    out = tmp_path / "ala.mrc"
    assert main(["simulate-map", str(tmp_path / "ala.pdb"), "--resolution", "4",
                 "--voxel-size", "1.3", "--out", str(out)]) == 0
    ours = read_map(out)
    peak = float(ours.data.max())
    # cryolab: the density sits on the atoms, not 15 Å away
    assert ours.interpolate(xyz).mean() > 5 * ours.interpolate(xyz + [15.0, 0, 0]).mean()
    # gemmi: places the grid by NSTART
    ccp4 = gemmi.read_ccp4_map(str(out))
    ccp4.setup(float("nan"))
    at_atoms = [ccp4.grid.interpolate_value(gemmi.Position(*p)) for p in xyz]
    np.testing.assert_allclose(at_atoms, ours.interpolate(xyz), rtol=1e-5, atol=1e-5 * peak)
    # mrcfile: NSTART × voxel size equals ORIGIN
    with mrcfile.open(out) as mrc:
        nstart = np.array([mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart])
        origin = np.array(mrc.header.origin.tolist())
        voxel = np.array(mrc.voxel_size.tolist())
    assert np.any(nstart != 0)
    np.testing.assert_allclose(nstart * voxel, origin, atol=1e-3)
    np.testing.assert_allclose(origin, ours.origin[::-1], atol=1e-3)


# ---------------------------------------------------------- modes and stable bytes


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = write_map(tmp_path / "new" / "m.mrc", _random_volume())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o777 & ~umask


@pytest.mark.parametrize("name", ["m.mrc", "m.mrc.gz"])
def test_same_volume_gives_the_same_bytes(tmp_path, name, monkeypatch):
    a = write_map(tmp_path / "a" / name, _random_volume())
    monkeypatch.setattr(time, "time", lambda: 2e9)  # a later clock changes nothing
    b = write_map(tmp_path / "b" / name, _random_volume())
    assert a.read_bytes() == b.read_bytes()
    with mrcfile.open(a) as mrc:
        assert int(mrc.header.nlabl) == 1
        assert mrc.header.label[0].decode().strip() == "cryolab"


# ---------------------------------------------------------------- bad structure and maps


def test_nan_coordinate_is_refused(tmp_path):
    path = tmp_path / "nan.pdb"
    path.write_text("ATOM      1  CA  GLY A   1         nan  11.000  12.000  1.00 10.00"
                    "           C\nEND\n")
    with pytest.raises(FormatError, match="non-finite"):
        read_structure(path)


def test_a_2d_image_is_not_a_volume(tmp_path):
    with mrcfile.new(tmp_path / "flat.mrc") as mrc:
        mrc.set_data(np.zeros((8, 8), np.float32))
    with pytest.raises(FormatError, match="not a 3D map"):
        read_map(tmp_path / "flat.mrc")


@pytest.mark.parametrize("field", ["nx", "ny", "nz"])
def test_negative_dimension_in_the_header(tmp_path, field):
    path = write_map(tmp_path / "m.mrc", _random_volume())
    with mrcfile.open(path, "r+", permissive=True) as mrc:
        setattr(mrc.header, field, -4)
    with pytest.raises(FormatError, match="m.mrc"):
        read_map(path)
