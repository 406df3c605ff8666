"""Tests of struc2mapGAN's networks (cryolab.nn.unetpp) and its training glue."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from cryolab import density
from cryolab.apply import condition_channel, generate_map
from cryolab.curate import CuratedPair
from cryolab.degrade import blur_to_resolution
from cryolab.errors import ConfigError
from cryolab.io import Volume
from cryolab.nn.unetpp import Discriminator3D, ResidualBlock, UNetPlusPlus3D
from cryolab.pipelines import struc2map as s2m
from cryolab.train import load_model


def test_generator_shapes_widths_and_init():
    g = UNetPlusPlus3D(base_channels=32)
    x = torch.zeros(1, 1, 16, 16, 16)
    assert g(x).shape == x.shape
    # four levels of 32/64/128/256 channels; 4 + 3 + 2 + 1 nested nodes
    widths = [g.nodes[f"{i}_0"].body[0].out_channels for i in range(4)]
    assert widths == [32, 64, 128, 256]
    assert len(g.nodes) == 10
    # X[0][3] sees X[0][0..2] (3×32) and the upsampled X[1][2] (64)
    assert g.nodes["0_3"].body[0].in_channels == 3 * 32 + 64
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv3d)])
    assert w.std().item() == pytest.approx(0.01, rel=0.05)
    assert abs(w.mean().item()) < 1e-3
    assert g.head.kernel_size == (1, 1, 1)


def test_residual_shortcut_only_changes_channels():
    assert isinstance(ResidualBlock(8, 8).shortcut, torch.nn.Identity)
    conv = ResidualBlock(8, 16).shortcut[0]
    assert conv.kernel_size == (3, 3, 3) and conv.out_channels == 16


def test_discriminator_gives_one_logit_per_cube():
    d = Discriminator3D(base_channels=32)
    assert d(torch.randn(3, 1, 16, 16, 16)).shape == (3, 1)
    sizes = [m.out_features for m in d.classifier if isinstance(m, torch.nn.Linear)]
    assert sizes == [100, 25, 1]
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    norms = [m for m in d.features if isinstance(m, torch.nn.InstanceNorm3d)]
    assert len(norms) == 3


def test_input_augmentation():
    cube = np.random.default_rng(0).random((32, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(s2m.augment_input(cube, np.random.default_rng(1), p=0.0), cube)
    a = s2m.augment_input(cube, np.random.default_rng(2), p=1.0)
    b = s2m.augment_input(cube, np.random.default_rng(2), p=1.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == cube.shape and not np.allclose(a, cube)


def blurred_pair(seed: int = 0) -> CuratedPair:
    """Toy pair: input = sharp random atoms (molmap 2 Å), target = the same at 4 Å."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 14, (60, 3))
    from cryolab.io import Atoms

    atoms = Atoms(xyz, np.full(60, 6), np.full(60, 12.0), np.full(60, "C"))
    grid = density.box_around(xyz, 1.0, 2.0)
    x = density.molmap(atoms, 2.0, on_grid=grid)
    y = density.molmap(atoms, 4.0, on_grid=grid)
    scale = lambda v: v.with_data(v.data / v.data.max())  # noqa: E731
    return CuratedPair(scale(x), scale(y), np.ones(grid.shape, bool), "toy")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks run faster on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = replace(s2m.PROFILES["smoke"], epochs=5, pool_size=8, patches_per_epoch=8,
                  batch_size=4, base_channels=4, lr=2e-3)
    pool = s2m.PatchPool([blurred_pair()], 16, cfg.pool_size, seed=0)
    ckpt = tmp_path_factory.mktemp("gan") / "gan.pt"
    trainer, history = s2m.train_gan(cfg, pool, checkpoint=ckpt, device="cpu", progress=False)
    return cfg, pool, ckpt, trainer, history


def test_gan_learns_a_toy_mapping(trained):
    _, _, _, _, history = trained
    rec = history["reconstruction"]
    assert rec[-1] < 0.7 * rec[0]
    assert all(np.isfinite(history["discriminator"]))


def test_checkpoint_reloads_the_generator_and_generates_full_maps(trained):
    _, _, ckpt, trainer, _ = trained
    g = load_model(ckpt, UNetPlusPlus3D, name="generator", device="cpu")
    pair = blurred_pair(1)
    a = generate_map(g, pair.input)
    b = generate_map(trainer.models["generator"], pair.input)
    assert a.shape == pair.input.shape
    np.testing.assert_allclose(a.data, b.data, rtol=1e-4, atol=1e-5)
    # a coarser target grid: generated at 1 Å, then resampled onto it
    coarse = Volume(np.zeros((12, 12, 12), np.float32), 1.6, pair.input.origin)
    c = generate_map(g, pair.input, on_grid=coarse)
    assert c.shape == coarse.shape
    np.testing.assert_allclose(c.voxel_size, 1.6)


def test_cli_gan(trained, tmp_path, capsys):
    from cryolab.cli import main
    from cryolab.io import read_map

    _, _, ckpt, _, _ = trained
    import gemmi

    st = gemmi.Structure()
    model, chain = gemmi.Model("1"), gemmi.Chain("A")
    res = gemmi.Residue()
    res.name, res.seqid = "ALA", gemmi.SeqId(1, " ")
    for i, el in enumerate("NCCO"):
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos = f"{el}{i}", gemmi.Element(el), gemmi.Position(i, 0, 0)
        res.add_atom(atom)
    chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    pdb = tmp_path / "ala.pdb"
    st.write_pdb(str(pdb))
    out = tmp_path / "gan.mrc"
    assert main(["simulate-map", str(pdb), "--method", "gan", "--checkpoint", str(ckpt),
                 "--device", "cpu", "--out", str(out)]) == 0
    vol = read_map(out)
    np.testing.assert_allclose(vol.voxel_size, 1.0)
    coarse = tmp_path / "gan_coarse.mrc"
    assert main(["simulate-map", str(pdb), "--method", "gan", "--checkpoint", str(ckpt),
                 "--device", "cpu", "--voxel-size", "1.5", "--out", str(coarse)]) == 0
    np.testing.assert_allclose(read_map(coarse).voxel_size, 1.5)
    fresh = tmp_path / "not_written.mrc"
    # an installation without shipped generators says to give --checkpoint
    from cryolab import weights

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(weights, "available", lambda: [])
        assert main(["simulate-map", str(pdb), "--method", "gan", "--out", str(fresh)]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["simulate-map", str(pdb), "--method", "gan", "--checkpoint",
                 str(tmp_path / "missing.pt"), "--out", str(fresh)]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert not fresh.exists()


def test_evaluate_map_scores_identity_perfectly():
    pair = blurred_pair(2)
    scores = s2m.evaluate_map(pair.target.data, pair.target.data)
    assert scores["pcc"] == pytest.approx(1.0)
    assert scores["ssim"] == pytest.approx(1.0)
    assert scores["cc_chimerax"] == pytest.approx(1.0)
    worse = s2m.evaluate_map(pair.input.data, pair.target.data)
    assert worse["pcc"] < 0.99 and worse["cc_about_mean"] < scores["cc_about_mean"]


def test_paper_profile_is_a_clear_data_error_offline(mirror, monkeypatch, tmp_path):
    import pooch

    from cryolab.errors import DataError

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.setenv("CRYOLAB_PAPER_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="go online"):
        s2m.paper_pairs("val")


def test_lowpass_to_adds_blur_in_quadrature():
    from cryolab.io import Atoms

    one = Atoms(np.array([[10.0, 10.0, 10.0]]), np.array([6]), np.array([12.0]), np.array(["C"]))
    grid = density.box_around(one.xyz, 0.5, 15.0)
    at3 = density.molmap(one, 3.0, on_grid=grid).data
    at6 = density.molmap(one, 6.0, on_grid=grid).data
    blurred = blur_to_resolution(at3, 3.0, 6.0, voxel_size=0.5)
    np.testing.assert_allclose(blurred, at6, atol=1e-3 * at6.max())
    np.testing.assert_array_equal(blur_to_resolution(at3, 3.0, 2.0), at3)


def test_resolution_conditioned_batches_and_generation():
    pool = s2m.PatchPool([blurred_pair()], 16, 4, seed=0, resolutions=[4.0])
    source = pool.batches(4, 4, augment_p=0.0, condition=(3.0, 8.0))
    x, y = next(iter(source(0, np.random.default_rng(0))))
    assert x.shape == (4, 2, 16, 16, 16) and y.shape == (4, 1, 16, 16, 16)
    # the second channel is the input blurred to the drawn resolution, at least the map's own
    x0, x1 = x[:, 0].numpy(), x[:, 1].numpy()
    assert np.all(x1.max(axis=(1, 2, 3)) < x0.max(axis=(1, 2, 3)))
    np.testing.assert_allclose(x1.sum(axis=(1, 2, 3)), x0.sum(axis=(1, 2, 3)), rtol=0.05)
    sharpest = condition_channel(x0[0], 4.0)
    assert x1[0].max() <= sharpest.max() + 1e-6
    g = UNetPlusPlus3D(2, in_channels=2)
    pair = blurred_pair(1)
    with pytest.raises(ConfigError, match="resolution"):
        generate_map(g, pair.input)
    out = generate_map(g, pair.input, resolution=5.0)
    assert out.shape == pair.input.shape
    assert not np.allclose(out.data, generate_map(g, pair.input, resolution=8.0).data)
    with pytest.raises(ConfigError, match="resolutions"):
        s2m.PatchPool([blurred_pair()], 16, 2, seed=0).batches(2, 2, condition=(3.0, 8.0))


# --------------------------------------------------------------- leave one map out


def _fold(test: str, gan: float, sims: float, train: list[str]) -> s2m.FoldResult:
    """A fold whose GAN scores ``gan`` and whose simulators score ``sims`` + a little each."""
    scores = {"GAN": dict.fromkeys(s2m.IMAGE_METRICS, gan)}
    for k, m in enumerate(density.METHODS):
        scores[m] = dict.fromkeys(s2m.IMAGE_METRICS, sims + 0.01 * k)
    return s2m.FoldResult(test, train, 3.2, scores, {"loss": [1.0]}, {"GAN": 1.0})


def test_verdict_against_every_simulator_needs_the_best_one_beaten():
    scores = _fold("a", 0.5, 0.45, []).scores  # simulators 0.45, 0.46, 0.47, 0.48
    assert s2m.Verdict.of(scores, against=density.METHODS) == s2m.Verdict(True, True)
    scores["formfactor"]["pcc"] = 0.51  # one simulator above the GAN on PCC only
    assert s2m.Verdict.of(scores, against=density.METHODS) == s2m.Verdict(False, True)
    assert s2m.Verdict.of(scores).beats_pcc  # against molmap alone it still wins


def test_leave_one_map_out_table_means_wins_and_round_trip():
    maps = ["A", "B", "C"]
    folds = [_fold(t, g, 0.4, [m for m in maps if m != t])
             for t, g in zip(maps, (0.6, 0.3, 0.5), strict=True)]
    lomo = s2m.LeaveOneMapOut(folds)
    assert lomo.wins == 2  # B's GAN (0.3) is below every simulator
    summary = lomo.summary()
    assert (summary["wins_pcc"], summary["wins_cc"], summary["n_folds"]) == (2, 2, 3)
    assert summary["means"]["GAN"]["pcc"] == pytest.approx(np.mean([0.6, 0.3, 0.5]))
    table = lomo.table()
    assert table.loc[("mean", "GAN"), "ssim"] == pytest.approx(summary["means"]["GAN"]["ssim"])
    assert table.loc[("B", "molmap"), "pcc"] == pytest.approx(0.4)
    import json

    record = json.loads(json.dumps(lomo.as_metrics()))  # through a file, as committed
    again = s2m.LeaveOneMapOut.from_metrics(record)
    assert again.summary() == summary
    assert record["verdicts"]["B"] == {"beats_pcc": False, "beats_cc": False}


def test_the_mirror_pairs_are_five_and_zone_maps_use_their_chain(mirror):
    assert len(s2m.MIRROR) == 5
    assert {p.map for p in s2m.MIRROR.values()} <= set(s2m.data_files())
    pair = s2m.MIRROR["EMD-30342"]
    structure = s2m.mirror_structure(pair.model)
    assert [c.name for c in structure[0]] == ["A"]
    # the zone map is ~80% zeros around chain A: curated around that chain, the molmap input
    # and the target agree (placed by the MRC ORIGIN field); with every chain they would not
    curated = s2m.load_pair(pair.map, pair.model)
    inside = curated.mask
    assert np.corrcoef(curated.input.data[inside], curated.target.data[inside])[0, 1] > 0.3


def test_a_fold_never_trains_on_its_test_map(mirror):
    cfg = replace(s2m.PROFILES["smoke"], lomo_folds=("EMD-2566",), lomo_epochs=1)
    pairs = {k: s2m.crop_pair(p, 24) for k, p in s2m.mirror_pairs(["EMD-2566", "EMD-5778",
                                                                      "EMD-3488"]).items()}
    fold, generator, made = s2m.run_fold(cfg, pairs, "EMD-2566")
    assert fold.train == ["EMD-5778", "EMD-3488"] and fold.test == "EMD-2566"
    assert made.shape == pairs["EMD-2566"].target.shape
    assert {"GAN", s2m.MASKED_MOLMAP, *density.METHODS} <= set(fold.scores)
    assert len(fold.history["loss"]) == 1
    # the masked molmap is molmap zeroed outside the curated mask
    assert fold.scores[s2m.MASKED_MOLMAP] != fold.scores["molmap"]


def test_cosine_schedule_ends_at_a_twentieth_of_the_rate():
    cfg = replace(s2m.PROFILES["smoke"], schedule="cosine", lr=1e-3)
    _, optimizers, schedulers = s2m.build_gan(cfg, epochs=4)
    for _ in range(4):
        optimizers["generator"].step()
        schedulers["generator"].step()
    assert optimizers["generator"].param_groups[0]["lr"] == pytest.approx(5e-5)
    with pytest.raises(ConfigError, match="schedule"):
        s2m.build_gan(replace(cfg, schedule="steps"))


def test_cli_gan_uses_the_shipped_generator_without_checkpoint(tmp_path, capsys):
    """Without --checkpoint simulate-map uses cryolab/weights/gan.pt and says so; with
    --resolution, the shipped resolution-conditioned generator when there is one."""
    from cryolab import weights
    from cryolab.cli import main
    from cryolab.io import read_map

    if "gan" not in weights.available():
        pytest.skip("no shipped generator in this checkout")
    pdb = tmp_path / "ala.pdb"
    pdb.write_text(
        "ATOM      1  N   ALA A   1       0.000   0.000   0.000  1.00  0.00           N\n"
        "ATOM      2  CA  ALA A   1       1.458   0.000   0.000  1.00  0.00           C\n"
        "ATOM      3  C   ALA A   1       2.009   1.420   0.000  1.00  0.00           C\n"
        "ATOM      4  O   ALA A   1       1.251   2.390   0.000  1.00  0.00           O\n"
        "ATOM      5  CB  ALA A   1       1.988  -0.773  -1.199  1.00  0.00           C\n"
        "END\n")
    out = tmp_path / "gan.mrc"
    assert main(["simulate-map", str(pdb), "--method", "gan", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "shipped generator 'gan'" in said and "--checkpoint overrides" in said
    made = read_map(out)
    assert made.data.max() > 0 and np.isfinite(made.data).all()
    if "gan_conditioned" in weights.available():
        low = tmp_path / "gan_8A.mrc"
        assert main(["simulate-map", str(pdb), "--method", "gan", "--resolution", "8",
                     "--out", str(low)]) == 0
        assert "'gan_conditioned'" in capsys.readouterr().out
