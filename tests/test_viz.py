"""The interactive 3D viewer's data: maps survive the trip into the page, atoms land on them."""

from __future__ import annotations

import base64
import gzip
import re
import tempfile
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryolab import viz
from cryolab.errors import ConfigError
from cryolab.io import Atoms, Volume

pytest.importorskip("py3Dmol")


def _maps(view) -> list[Volume]:
    """Every map a viewer sends to 3Dmol.js, read back with mrcfile."""
    volumes = []
    for blob in re.findall(r'addVolumetricData\("([A-Za-z0-9+/=]+)","ccp4.gz"', view.write_html()):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "map.mrc"
            path.write_bytes(gzip.decompress(base64.b64decode(blob)))
            with mrcfile.open(path) as mrc:
                size = np.array([mrc.voxel_size.z, mrc.voxel_size.y, mrc.voxel_size.x], float)
                volumes.append(Volume(mrc.data.copy(), size, 0.0))
    return volumes


def _atoms(xyz) -> Atoms:
    xyz = np.atleast_2d(np.asarray(xyz, float))
    n = len(xyz)
    return Atoms(xyz, np.full(n, 6), np.full(n, 12.011), np.array(["C"] * n))


def test_map_values_and_voxel_size_round_trip():
    rng = np.random.default_rng(0)
    volume = Volume(rng.normal(size=(20, 24, 28)).astype(np.float32), (1.5, 1.2, 1.0),
                    (3.0, -2.0, 10.0))
    (shown,) = _maps(viz.molecule_viewer(contours=[viz.Contour(volume, 0.5)], levels=256))
    np.testing.assert_allclose(shown.voxel_size, volume.voxel_size, rtol=1e-6)
    step = np.ptp(volume.data) / 255
    assert np.abs(shown.data - volume.data).max() <= step / 2 + 1e-5  # rounded to 256 levels


def test_atoms_are_moved_into_the_frame_of_the_map():
    """3Dmol.js ignores the MRC origin: voxel [0, 0, 0] is drawn at 0, so an atom on that voxel
    must be written at 0 too (and hydrogens are left out)."""
    origin_zyx = np.array([5.0, -7.0, 12.0])
    volume = Volume(np.zeros((8, 8, 8), np.float32), 2.0, origin_zyx)
    atoms = _atoms([origin_zyx[::-1], origin_zyx[::-1] + (2.0, 4.0, 6.0), (0.0, 0.0, 0.0)])
    atoms.element[2] = "H"
    view = viz.molecule_viewer(atoms, [viz.Contour(volume, 0.5)])
    xyz = re.search(r'addModel\("(.*?)","xyz"', view.write_html()).group(1).split("\\n")
    assert xyz[0] == "2"
    assert [line.split()[1:] for line in xyz[2:4]] == [["0.00", "0.00", "0.00"],
                                                       ["2.00", "4.00", "6.00"]]


def test_large_maps_are_subsampled_to_fit():
    volume = Volume(np.arange(100**3, dtype=np.float32).reshape(100, 100, 100), 1.0, 0.0)
    (shown,) = _maps(viz.molecule_viewer(contours=[viz.Contour(volume)], max_side=64))
    assert max(shown.shape) <= 64
    assert shown.voxel_size[0] == pytest.approx(99 / 63, rel=1e-5)


def test_contours_must_share_one_origin():
    a = Volume(np.zeros((4, 4, 4), np.float32), 1.0, 0.0)
    b = Volume(np.zeros((4, 4, 4), np.float32), 1.0, 3.0)
    with pytest.raises(ConfigError, match="share one origin"):
        viz.molecule_viewer(contours=[viz.Contour(a, 0.5), viz.Contour(b, 0.5)])


def test_interactive_figure_has_its_fallback_alt_text_and_caption(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOLAB_RESULTS_DIR", str(tmp_path))
    fig = viz.isosurface([np.ones((4, 4, 4))], ["x"])
    path = viz.save_figure(fig, "nb", "smoke", "still")
    view = viz.molecule_viewer(_atoms([0.0, 0.0, 0.0]))
    html = viz.interactive_figure(view, "nb", "smoke", "still", alt='a "quoted" alt',
                                  caption="A caption.").data
    png = base64.b64encode(path.read_bytes()).decode()
    assert f'src="data:image/png;base64,{png}"' in html
    assert 'alt="a &quot;quoted&quot; alt"' in html
    assert "<figcaption>A caption." in html and "3dmolviewer_" in html
