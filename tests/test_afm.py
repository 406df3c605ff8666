"""Tests of the virtual AFM (cryolab.afm) and space carving (cryolab.carving)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from cryolab import afm, carving
from cryolab.errors import ConfigError
from cryolab.metrics import iou


def _blob(rng: np.random.Generator, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Atoms (Å) packed in an ellipsoid with a side lobe (no symmetry), and their radii."""
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    xyz = direction * rng.uniform(0, 1, (n, 1)) ** (1 / 3) * [12.0, 7.0, 5.0]
    xyz[: n // 3] = xyz[: n // 3] * 0.6 + [15.0, 7.0, 0.0]  # the lobe
    return xyz, np.full(n, 1.7)


def test_module_imports_without_torch():
    code = "import sys, cryolab.afm, cryolab.carving; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_grey_dilate_matches_scipy_on_asymmetric_structure():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 20, 17))
    structure = rng.normal(size=(5, 7))
    structure[0, 0] = -np.inf  # outside the footprint
    ours = afm.grey_dilate(image, structure)
    footprint = np.isfinite(structure)
    for k in range(3):
        ref = ndimage.grey_dilation(
            image[k], footprint=footprint, structure=np.where(footprint, structure, 0),
            mode="nearest",
        )
        np.testing.assert_allclose(ours[k], ref, atol=1e-12)


def test_tip_dilation_equals_scipy_grey_dilation():
    rng = np.random.default_rng(1)
    xyz, radii = _blob(rng)
    heights = afm.height_map(xyz, radii, 48, 1.5)
    tip = afm.Tip(radius=12.0, half_angle=15.0)
    profile = afm.tip_profile(tip, 1.5, float(np.ptp(heights)))
    footprint = np.isfinite(profile)
    ref = ndimage.grey_dilation(
        heights, footprint=footprint, structure=np.where(footprint, -profile, 0), mode="nearest"
    )
    np.testing.assert_allclose(afm.tip_dilate(heights, tip, 1.5), ref, atol=1e-12)
    # a finite tip only raises the image, and a sharper tip raises it less
    blunt = afm.tip_dilate(heights, afm.Tip(20.0, 20.0), 1.5)
    sharp = afm.tip_dilate(heights, afm.Tip(5.0, 5.0), 1.5)
    assert np.all(blunt >= sharp - 1e-9) and np.all(sharp >= heights - 1e-9)
    assert blunt.sum() > sharp.sum() > heights.sum()


def test_tip_profile_is_sphere_then_tangent_cone():
    tip = afm.Tip(radius=10.0, half_angle=20.0)
    profile = afm.tip_profile(tip, 1.0, 200.0)
    centre = profile.shape[0] // 2
    along = profile[centre, centre:]
    r = np.arange(len(along), dtype=float)
    r_t = 10 * np.cos(np.deg2rad(20))
    np.testing.assert_allclose(along[r <= r_t], 10 - np.sqrt(100 - r[r <= r_t] ** 2))
    slope = np.diff(along[r > r_t + 1])
    np.testing.assert_allclose(slope, 1 / np.tan(np.deg2rad(20)))  # the cone's flank
    assert np.all(along[np.isfinite(along)] <= 200.0)


def test_sphere_height_matches_analytical_cap():
    radius, pixel, n = 12.0, 0.5, 64
    heights = afm.height_map(np.array([[0.0, 0.0, 30.0]]), np.array([radius]), n, pixel,
                             centre=np.zeros(2))
    u = (np.arange(n) - (n - 1) / 2) * pixel
    d2 = u[:, None] ** 2 + u[None, :] ** 2
    expected = np.where(d2 <= radius**2, radius + np.sqrt(np.clip(radius**2 - d2, 0, None)), 0)
    np.testing.assert_allclose(heights, expected, atol=1e-9)
    assert heights.max() == pytest.approx(2 * radius, abs=0.01)  # rests on the substrate


def test_height_map_is_highest_atom():
    xyz = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    heights = afm.height_map(xyz, np.array([2.0, 1.0]), 9, 1.0, centre=np.zeros(2))
    assert heights[4, 4] == pytest.approx(5 + 1 - (0 - 2))
    assert heights[4, 6] == pytest.approx(np.sqrt(4 - 4) + 2)  # only the big sphere reaches
    assert heights[0, 0] == 0.0


def test_needle_tip_reproduces_raw_height_map():
    rng = np.random.default_rng(2)
    xyz, radii = _blob(rng)
    heights = afm.height_map(xyz, radii, 40, 2.0)
    np.testing.assert_array_equal(afm.tip_dilate(heights, afm.Tip(0.0, 0.0), 2.0), heights)


def test_occupancy_rotates_with_structure():
    rng = np.random.default_rng(3)
    xyz, radii = _blob(rng)
    grid = afm.occupancy_grid(xyz, radii, 24)
    assert 0.05 < grid.mean() < 0.6
    # 90° about z maps x -> y, y -> -x: in (z, y, x) arrays, np.rot90 over axes (1, 2)
    turned = Rotation.from_euler("z", 90, degrees=True).apply(xyz)
    rotated = afm.occupancy_grid(turned, radii, 24)
    expected = np.rot90(grid, k=1, axes=(2, 1))
    assert iou(rotated, expected) > 0.97
    assert iou(rotated, grid) < 0.8  # the check can fail: the blob is not symmetric


def test_occupancy_longest_side_fills_grid():
    rng = np.random.default_rng(4)
    xyz, radii = _blob(rng)
    grid = afm.occupancy_grid(afm.principal_frame(xyz), radii, 32)
    extent = [np.ptp(np.nonzero(grid)[a]) + 1 for a in range(3)]
    assert max(extent) >= 30 and extent[2] == max(extent)  # longest principal axis is x


def test_views_are_reproducible_and_carving_recovers_shape():
    rng = np.random.default_rng(5)
    xyz, radii = _blob(rng)
    xyz = afm.principal_frame(xyz)
    views = afm.afm_views(xyz, radii, 12, np.random.default_rng(9), image_size=48,
                          tip=afm.Tip(3.0, 10.0))
    again = afm.afm_views(xyz, radii, 12, np.random.default_rng(9), image_size=48,
                          tip=afm.Tip(3.0, 10.0))
    np.testing.assert_array_equal(views.images, again.images)
    assert views.images.shape == (12, 48, 48) and views.quaternions.shape == (12, 4)
    target = afm.occupancy_grid(xyz, radii, 24)
    centre, voxel = afm.grid_geometry(xyz, radii, 24)
    few = iou(carving.carve(views, centre, voxel, 24, n_views=1), target)
    many = iou(carving.carve(views, centre, voxel, 24), target)
    assert many > 0.45 and many > few + 0.1
    # the hull contains (nearly) all of the object: carving only over-estimates
    hull = carving.carve(views, centre, voxel, 24, margin=voxel)
    assert (hull & target).sum() / target.sum() > 0.97


def test_rendered_mode_and_bad_input():
    rng = np.random.default_rng(6)
    xyz, radii = _blob(rng)
    shaded = afm.afm_views(xyz, radii, 2, rng, image_size=32, mode="rendered")
    assert shaded.images.min() >= 0 and shaded.images.max() <= 1
    assert np.ptp(shaded.images) > 0.3
    with pytest.raises(ConfigError, match="mode"):
        afm.afm_views(xyz, radii, 2, rng, mode="shaded")
    with pytest.raises(ConfigError, match="half-angle"):
        afm.Tip(10.0, 95.0)


def _write_pdb(path, xyz) -> None:
    lines = [
        f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           C"
        for i, (x, y, z) in enumerate(xyz)
    ]
    path.write_text("\n".join(lines) + "\nEND\n")


def test_cli_writes_images_stack_and_orientations(tmp_path, capsys):
    from cryolab.cli import main

    rng = np.random.default_rng(7)
    pdb = tmp_path / "blob.pdb"
    _write_pdb(pdb, _blob(rng, 150)[0])
    out = tmp_path / "views"
    assert main(["afm", str(pdb), "--views", "4", "--out", str(out), "--image-size", "24"]) == 0
    stack = np.load(out / "views.npy")
    assert stack.shape == (4, 24, 24) and stack.max() > 5  # heights in Å
    assert len(list(out.glob("view_*.png"))) == 4
    rows = (out / "orientations.csv").read_text().splitlines()
    quat = np.array([[float(v) for v in r.split(",")[1:5]] for r in rows[1:]])
    np.testing.assert_allclose(np.linalg.norm(quat, axis=1), 1, atol=1e-6)
    bad = tmp_path / "bad.pdb"
    bad.write_text("not a structure\n")
    assert main(["afm", str(bad), "--views", "2", "--out", str(tmp_path / "no")]) == 2
    assert "bad.pdb" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_split_keeps_each_complex_on_one_side():
    import hashlib

    from cryolab.pipelines.afm_views import split_groups

    groups = [f"G{k // 3}" for k in range(1800)]  # 600 complexes, 3 files each
    val = split_groups(groups, 0.25, seed=0)
    for g in set(groups):
        sides = {v for v, h in zip(val, groups, strict=True) if h == g}
        assert len(sides) == 1
    # about a quarter of the complexes: 150 ± 5 binomial standard deviations (10.6)
    assert abs(val[::3].sum() - 150) < 53
    np.testing.assert_array_equal(val, split_groups(groups, 0.25, seed=0))
    assert not np.array_equal(val, split_groups(groups, 0.25, seed=1))
    # the rule, recomputed with hashlib: SHA-256 of "seed:group", first 8 bytes as a fraction
    for g, v in zip(groups[::3], val[::3], strict=True):
        digest = hashlib.sha256(f"0:{g}".encode()).digest()
        assert v == (int.from_bytes(digest[:8], "big") / 2**64 < 0.25)
    # a set too small to have a validation group below the fraction still gets one
    assert split_groups(["A", "B"], 1e-9, seed=0).sum() == 1


def test_adding_a_structure_moves_no_complex_across_the_split(monkeypatch):
    """The catalogue grows (a new file, in the middle of the sorted names): every complex
    already there keeps its side, and a subset of ``n_structures`` loses at most one row to
    it — the split of a shipped model's training data never moves under its feet."""
    from dataclasses import replace

    import pandas as pd

    from cryolab.pipelines import afm_views as A

    def catalogue(ids: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"name": [f"structures/x/{i}.cif.gz" for i in ids],
                             "pdb_id": ids, "n_atoms": 100, "kind": "structure"})

    old = [f"{k}ABC" for k in range(1, 10)] + [f"{k}XYZ" for k in range(1, 10)]
    new = sorted([*old, "5AAA"])
    cfg = replace(A.PROFILES["book"], val_fraction=0.3)

    def table(ids: list[str], config) -> pd.DataFrame:
        monkeypatch.setattr(A, "find", lambda **_: catalogue(ids))
        return A.structure_table(config)

    before, after = table(old, cfg), table(new, cfg)
    side_before = dict(zip(before.group, A.split_groups(before.group, cfg.val_fraction, 0),
                           strict=True))
    side_after = dict(zip(after.group, A.split_groups(after.group, cfg.val_fraction, 0),
                          strict=True))
    assert 0 < sum(side_before.values()) < len(old)
    assert {g: side_after[g] for g in side_before} == side_before
    small = replace(cfg, n_structures=6)
    chosen_before, chosen_after = set(table(old, small).name), set(table(new, small).name)
    assert len(chosen_before) == len(chosen_after) == 6
    assert len(chosen_before - chosen_after) <= 1


# ------------------------------------------------------- back-projection and the box of a hull


def _ball_views(rotations: Rotation, radius: float = 10.0, n: int = 32, pixel: float = 1.0):
    """Needle-tip views of one sphere (an atom of ``radius`` Å) at the origin."""
    return afm.afm_views(np.zeros((1, 3)), np.array([radius]), len(rotations), None,
                         image_size=n, pixel_size=pixel, tip=afm.Tip(0.0, 0.0),
                         rotations=rotations)


def test_backproject_depths_of_a_ball_are_analytical():
    views = _ball_views(Rotation.random(3, random_state=1))
    # grid: 1 Å voxels, so the voxel at the centre lies 10 Å below every top and 10 Å above
    # every substrate (clipped at 3 voxels: +1); a voxel 14 Å above the centre along z
    # pokes out of the ball in every view that looks at it from near +z
    evidence = carving.backproject(views, np.zeros(3), 1.0, size=31, clip=3.0)
    assert evidence.shape == (2, 31, 31, 31) and evidence.dtype == np.float32
    np.testing.assert_allclose(evidence[:, 15, 15, 15], [1.0, 1.0])
    below, above = carving.depths(views, np.zeros(3), 1.0, size=31)
    centre = 15 * 31 * 31 + 15 * 31 + 15
    np.testing.assert_allclose(below[:, centre], 10.0, atol=0.05)  # 2r tall, floor at -r
    np.testing.assert_allclose(above[:, centre], 10.0, atol=1e-9)
    # the sign of the soft hull is the carving test
    hull = carving.carve(views, np.zeros(3), 1.0, size=31)
    np.testing.assert_array_equal(evidence[0] >= 0, hull)
    assert evidence[0][~hull].max() < 0


def test_hull_box_finds_the_atoms_box_from_many_views():
    rng = np.random.default_rng(3)
    xyz, radii = _blob(rng)
    xyz = afm.principal_frame(xyz)
    views = afm.afm_views(xyz, radii, 40, np.random.default_rng(4), image_size=64,
                          tip=afm.Tip(0.0, 0.0))
    centre, voxel = afm.grid_geometry(xyz, radii, 32)
    got_centre, got_voxel = carving.hull_box(views, 32, fine=96)
    step = 64 * views.pixel_size / 96  # Å, the fine grid's
    # the hull holds the object (needle tip, no noise), so its box is at least the atoms' box
    # less two fine voxels (voxel centres and pixels round), and with 40 views hardly more
    np.testing.assert_allclose(got_centre, centre, atol=2 * step)
    assert voxel * 32 - 2 * step <= got_voxel * 32 <= voxel * 32 * 1.08


def test_views_select_keeps_what_belongs_to_each_view():
    views = _ball_views(Rotation.random(4, random_state=2))
    picked = views.select([2, 0])
    np.testing.assert_array_equal(picked.heights, views.heights[[2, 0]])
    np.testing.assert_array_equal(picked.quaternions, views.quaternions[[2, 0]])
    np.testing.assert_array_equal(picked.floors, views.floors[[2, 0]])


def test_cube_symmetry_turns_every_array_alike():
    from cryolab.pipelines.afm_views import cube_symmetry

    rng = np.random.default_rng(0)
    volume = rng.normal(size=(2, 4, 4, 4))
    target = volume[0] > 0
    seen = set()
    for _ in range(400):
        a, t = cube_symmetry([volume, target], rng)
        np.testing.assert_array_equal(a[0] > 0, t)  # the same transform on both
        assert sorted(a[1].ravel()) == sorted(volume[1].ravel())  # a permutation of voxels
        seen.add(a[0].tobytes())
    assert len(seen) == 48  # all the symmetries of the cube, and no others


# ------------------------------------------------------------ the verdict against baselines


def _scores(diff: np.ndarray, views=(1, 3), base: float = 0.5):
    import pandas as pd

    from cryolab.pipelines.afm_views import CARVING, MEAN_SHAPE

    rows = []
    for v in views:
        for i, d in enumerate(diff):
            rows += [dict(method="net", split="validation", views=v, structure=i, iou=base + d),
                     dict(method=MEAN_SHAPE, split="validation", views=v, structure=i,
                          iou=base),
                     dict(method=CARVING, split="validation", views=v, structure=i,
                          iou=base + d - 0.2 * (v > 2))]
    return pd.DataFrame(rows)


def test_verdict_margins_and_their_bootstrap_interval():
    from cryolab.pipelines.afm_views import CARVING, MEAN_SHAPE, AFMVerdict, verdict

    better = verdict(_scores(np.full(20, 0.1)), "net", n_boot=200)
    for m in better.over(MEAN_SHAPE):  # a constant difference has no spread
        assert m.margin == pytest.approx(0.1) and m.low == pytest.approx(0.1)
        assert m.high == pytest.approx(0.1) and m.beats
    # level with carving at 1 view (same IoU), 0.2 better at 3: not "beats at 1-3 views"
    assert [m.beats for m in better.over(CARVING)] == [False, True]
    assert better.beats_mean_shape and not better.beats_carving_few_views
    assert not better.holds
    assert AFMVerdict.from_dict(better.to_dict()) == better
    assert "beats the mean training shape at 1, 3 views" in better.describe()
    # a difference of ±0.1 on alternate structures: the interval straddles zero
    mixed = verdict(_scores(np.tile([0.1, -0.1], 10)), "net", n_boot=500)
    m = mixed.over(MEAN_SHAPE)[0]
    assert m.low < 0 < m.high and not m.beats
    assert np.std(np.tile([0.1, -0.1], 10)) / np.sqrt(20) * 3 > m.high - m.margin > 0.01


def test_seed_spread_states_margins_over_training_runs():
    from cryolab.shape_verdict import CARVING, MEAN_SHAPE, SeedSpread, verdict

    gains = (0.1, 0.12, 0.14)  # three training runs, each 0.2 above carving at 3 views
    runs = [verdict(_scores(np.full(20, g)), "net", n_boot=100) for g in gains]
    spread = SeedSpread((0, 1, 2), tuple(runs))
    t = spread.table()
    assert t.loc[(MEAN_SHAPE, 1), "margin"] == pytest.approx(0.12)
    assert t.loc[(MEAN_SHAPE, 1), "sd"] == pytest.approx(0.02)  # sample SD of the gains
    assert t.loc[(MEAN_SHAPE, 1), "min"] == pytest.approx(0.1)
    assert t.loc[(MEAN_SHAPE, 3), "runs_beating"] == 3
    assert t.loc[(CARVING, 1), "runs_beating"] == 0  # level with carving at 1 view
    assert not spread.holds_in_every_run
    assert "+0.120 ± 0.020 at 1" in spread.describe()
    assert SeedSpread.from_dict(spread.to_dict()) == spread
    with pytest.raises(ValueError, match="at least two seeds"):
        SeedSpread((0,), (runs[0],))
    other = verdict(_scores(np.full(20, 0.1), views=(1, 5)), "net", n_boot=100)
    with pytest.raises(ValueError, match="same baselines and views"):
        SeedSpread((0, 1), (runs[0], other))


# ----------------------------------------------------- the paper profile takes PDB ids


def test_structure_table_from_pdb_ids(mirror):
    from dataclasses import replace

    from cryolab.pipelines.afm_views import PROFILES, RCSB_PREFIX, structure_table

    catalogue = structure_table(PROFILES["book"])
    known = catalogue["group"].iloc[0]
    table = structure_table(replace(PROFILES["paper"], pdb_ids=(known.lower(), "9ZZZ", known)))
    assert set(table.loc[table.group == known, "name"]) == set(
        catalogue.loc[catalogue.group == known, "name"])  # every registered file of the entry
    assert table.loc[table.group == "9ZZZ", "name"].tolist() == [RCSB_PREFIX + "9ZZZ"]
    assert len(table) == (catalogue.group == known).sum() + 1  # duplicates dropped


# ------------------------------------------------------------------------ afm-reconstruct


def test_afm_reconstruct_writes_the_occupancy_on_the_structures_grid(tmp_path, capsys):
    import json

    import mrcfile
    import torch

    from cryolab.cli import main
    from cryolab.nn.posevox import PoseVox
    from cryolab.train import Trainer

    rng = np.random.default_rng(8)
    pdb = tmp_path / "blob.pdb"
    _write_pdb(pdb, _blob(rng, 200)[0])
    views = tmp_path / "views"
    assert main(["afm", str(pdb), "--views", "6", "--out", str(views), "--image-size", "32"]) == 0
    grid = json.loads((views / "grid.json").read_text())
    torch.manual_seed(0)
    model = PoseVox(width=2, depth=1)
    checkpoint = Trainer(model, torch.optim.Adam(model.parameters()),
                         lambda t, b: {}).save(tmp_path / "tiny.pt")
    out = tmp_path / "occupancy.mrc"
    assert main(["afm-reconstruct", str(views), "--checkpoint", str(checkpoint),
                 "--out", str(out)]) == 0
    assert "grid.json" in capsys.readouterr().out
    with mrcfile.open(out) as mrc:  # placed as every MRC reader places it
        data = mrc.data.copy()
        voxel = float(mrc.voxel_size.x)
        origin = np.array([float(mrc.header.origin[a]) for a in ("x", "y", "z")])
    assert data.shape == (32, 32, 32) and 0 <= data.min() and data.max() <= 1
    assert voxel == pytest.approx(grid["voxel_size_A"], rel=1e-6)
    np.testing.assert_allclose(origin + 15.5 * voxel, grid["centre_A"], atol=1e-3)
    # the same views as one .npy with --orientations, and an explicit --box, give the same map
    again = tmp_path / "again.mrc"
    box = ",".join(map(str, [*grid["centre_A"], grid["voxel_size_A"]]))
    assert main(["afm-reconstruct", str(views / "views.npy"), "--orientations",
                 str(views / "orientations.csv"), "--box", box, "--checkpoint",
                 str(checkpoint), "--out", str(again)]) == 0
    with mrcfile.open(again) as mrc:
        np.testing.assert_allclose(mrc.data, data, atol=1e-6)
    # never overwrites silently; bad input is one line naming the file, and leaves nothing
    assert main(["afm-reconstruct", str(views), "--checkpoint", str(checkpoint),
                 "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    short = tmp_path / "short.csv"
    short.write_text("\n".join((views / "orientations.csv").read_text().splitlines()[:3]))
    bad_out = tmp_path / "bad.mrc"
    assert main(["afm-reconstruct", str(views / "views.npy"), "--orientations", str(short),
                 "--checkpoint", str(checkpoint), "--out", str(bad_out)]) == 2
    err = capsys.readouterr().err
    assert "short.csv" in err and "2 orientations for 6 views" in err
    assert err.count("\n") == 1 and not bad_out.exists()
    assert main(["afm-reconstruct", str(views), "--box", "1,2,3", "--checkpoint",
                 str(checkpoint), "--out", str(bad_out)]) == 2
    assert "--box" in capsys.readouterr().err and not bad_out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["blob.pdb", "views", "tiny.pt", "occupancy.mrc", "again.mrc", "short.csv"])


def test_afm_reconstruct_with_the_shipped_weights_beats_carving(mirror, tmp_path, capsys):
    """The structures the shipped PoseVox never saw (the card's CI sample), 5 noisy views each
    from `cryolab afm`, reconstructed without --checkpoint: on average better than carving the
    same views and than the mean training shape at its best threshold on these structures."""
    import mrcfile

    from cryolab import weights
    from cryolab.cli import main
    from cryolab.data import fetch
    from cryolab.io import atoms_of, read_structure

    prior = weights.load("posevox").prior.numpy()  # the mean training shape
    threshold = weights.card("posevox")["architecture"]["threshold"]
    ours, carved, mean_shape = [], [], []
    for k, name in enumerate(weights.card("posevox")["ci_check"]["names"]):
        views, out = tmp_path / f"views{k}", tmp_path / f"occupancy{k}.mrc"
        assert main(["afm", name, "--views", "5", "--noise", "1", "--out", str(views)]) == 0
        assert main(["afm-reconstruct", str(views), "--out", str(out)]) == 0
        assert "shipped weights 'posevox'" in capsys.readouterr().out
        atoms = atoms_of(read_structure(fetch(name)), hydrogens=False)
        xyz, radii = afm.principal_frame(atoms.xyz), afm.vdw_radii(atoms.element)
        target = afm.occupancy_grid(xyz, radii, 32)
        centre, voxel = afm.grid_geometry(xyz, radii, 32)
        heights = np.load(views / "views.npy")
        rows = np.loadtxt(views / "orientations.csv", delimiter=",", skiprows=1)
        seen = afm.AFMViews(heights, heights, rows[:, 1:5], rows[:, 8], float(rows[0, 9]))
        carved.append(iou(carving.carve(seen, centre, voxel, 32), target))
        with mrcfile.open(out) as mrc:
            ours.append(iou(mrc.data, target, threshold=threshold))
        mean_shape.append(max(iou(prior, target, threshold=t) for t in (0.3, 0.4, 0.5, 0.6)))
    assert np.mean(ours) > np.mean(carved) and np.mean(ours) > np.mean(mean_shape), (
        ours, carved, mean_shape)
