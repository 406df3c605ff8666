"""OME-Zarr writer and reader (cryolab.omezarr), checked against the ome-zarr package's reader
and scikit-image's block means."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from skimage.measure import block_reduce

from cryolab.cli import main
from cryolab.errors import ConfigError
from cryolab.io import Volume, read_map
from cryolab.omezarr import read_omezarr, read_omezarr_labels, write_omezarr

ome_zarr = pytest.importorskip("ome_zarr", reason="the ome-zarr package (extra [dev])")
from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Label, Multiscales, Reader  # noqa: E402


def _nodes(path):
    """The ome-zarr reader's nodes of a store, by name: (level arrays, metadata, specs)."""
    out = {}
    for node in Reader(parse_url(str(path)))():
        if any(isinstance(s, Multiscales) for s in node.specs):
            out[node.metadata["name"]] = (
                [np.asarray(d) for d in node.data], node.metadata,
                {type(s) for s in node.specs})
    return out


@pytest.fixture
def volume():
    rng = np.random.default_rng(1)
    return Volume(rng.normal(size=(20, 33, 42)).astype(np.float32), (6.0, 6.0, 6.0),
                  (-30.0, 12.0, 600.0))


def test_ome_zarr_reader_sees_levels_and_angstrom_transforms(tmp_path, volume):
    path = write_omezarr(tmp_path / "v.zarr", volume, levels=3, chunk=16)
    levels, meta, _ = _nodes(path)["tomogram"]
    assert [a.shape for a in levels] == [(20, 33, 42), (10, 16, 21), (5, 8, 10)]
    np.testing.assert_array_equal(levels[0], volume.data)
    # level 1 is the 2×2×2 block mean (trailing odd planes dropped)
    np.testing.assert_allclose(levels[1], block_reduce(volume.data[:20, :32, :42], 2, np.mean),
                               rtol=1e-6)
    assert [a["unit"] for a in meta["axes"]] == ["angstrom"] * 3
    for level, transforms in enumerate(meta["coordinateTransformations"]):
        scale, shift = transforms[0]["scale"], transforms[1]["translation"]
        assert scale == pytest.approx([6.0 * 2**level] * 3)
        # a block mean's centre lies half a block in from its first voxel
        assert shift == pytest.approx(list(volume.origin + (2**level - 1) / 2 * 6.0))
    # chunked as asked
    import zarr

    assert zarr.open_array(str(path / "0"), mode="r").chunks == (16, 16, 16)


def test_own_reader_round_trips_the_grid(tmp_path, volume):
    path = write_omezarr(tmp_path / "v.zarr", volume)
    again = read_omezarr(path)
    np.testing.assert_array_equal(again.data, volume.data)
    np.testing.assert_allclose(again.voxel_size, volume.voxel_size)
    np.testing.assert_allclose(again.origin, volume.origin)
    half = read_omezarr(path, level=1)
    # the same physical point: voxel centres of level 1 sit between those of level 0
    np.testing.assert_allclose(half.origin, volume.origin + 3.0)
    np.testing.assert_allclose(half.voxel_size, 12.0)


def test_labels_are_ngff_labels(tmp_path, volume):
    atlas = np.random.default_rng(2).integers(0, 5, volume.shape).astype(np.uint16)
    path = write_omezarr(tmp_path / "v.zarr", volume,
                         labels={"atlas": atlas, "ribosome": atlas == 3})
    nodes = _nodes(path)
    assert Label in nodes["atlas"][2] and Label in nodes["ribosome"][2]
    np.testing.assert_array_equal(nodes["atlas"][0][0], atlas)
    np.testing.assert_array_equal(nodes["atlas"][0][1], atlas[:20:2, :32:2, :42:2])
    assert nodes["ribosome"][0][0].dtype == np.uint8
    ours = read_omezarr_labels(path)
    assert ours["atlas"].dtype == np.uint16
    np.testing.assert_array_equal(ours["ribosome"], atlas == 3)


def test_refuses_to_overwrite_and_leaves_nothing_on_error(tmp_path, volume):
    path = write_omezarr(tmp_path / "v.zarr", volume)
    with pytest.raises(ConfigError, match="already exists"):
        write_omezarr(path, volume)
    with pytest.raises(ConfigError, match="label 'bad' has shape"):
        write_omezarr(tmp_path / "w.zarr", volume, labels={"bad": np.zeros((2, 2, 2), int)})
    with pytest.raises(ConfigError, match="must hold integers"):
        write_omezarr(tmp_path / "w.zarr", volume, labels={"f": volume.data})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zarr"]


def test_simulated_tomogram_as_ome_zarr(tmp_path, mirror):
    from test_tomo_simulate import SMALL as TINY

    config = tmp_path / "tiny.yml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "tomo"
    assert main(["simulate-tomo", str(config), "--out", str(out), "--quiet", "--ome-zarr"]) == 0
    zarr_path = out / "tomogram.zarr"
    tomogram = read_map(out / "tomogram.mrc")
    nodes = _nodes(zarr_path)
    np.testing.assert_array_equal(nodes[out.name][0][0], tomogram.data)
    assert nodes[out.name][1]["coordinateTransformations"][0][0]["scale"] == pytest.approx(
        list(tomogram.voxel_size))
    np.testing.assert_array_equal(nodes["atlas"][0][0], read_map(out / "atlas.mrc").data)
    for mask in (out / "masks").glob("*.mrc"):
        np.testing.assert_array_equal(nodes[mask.stem][0][0], read_map(mask).data > 0.5)
    # the command converts an existing folder too
    assert main(["to-ome-zarr", str(out), "--out", str(tmp_path / "again.zarr"),
                 "--levels", "2"]) == 0
    assert len(_nodes(tmp_path / "again.zarr")[out.name][0]) == 2
