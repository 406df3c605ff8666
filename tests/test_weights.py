"""The shipped models (cryolab.weights): they load, their cards tell the truth, and they never
saw their held-out data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryolab import weights
from cryolab.errors import CheckpointError
from cryolab.train import load_model

MAX_BYTES = 8_000_000


def test_every_shipped_model_is_small_has_a_card_and_loads_safely():
    assert "posevox" in weights.available()
    for name in weights.available():
        path = weights.path(name)
        assert path.stat().st_size <= MAX_BYTES
        card = weights.card(name)
        for key in ("model_class", "architecture", "training", "evaluation", "ci_check"):
            assert key in card, (name, key)
        training = card["training"]
        for key in ("profile", "epochs", "seed", "wall_seconds", "hardware", "commit",
                    "cryolab_version", "names"):
            assert key in training, (name, key)
        torch.load(path, map_location="cpu", weights_only=True)
        model = weights.load(name)
        assert type(model).__name__ == card["model_class"].rsplit(".", 1)[1]
        assert sum(p.numel() for p in model.parameters()) == card["architecture"]["parameters"]
    with pytest.raises(CheckpointError, match="no shipped model"):
        weights.path("no-such-model")


def test_posevox_never_saw_the_chapters_validation_structures(mirror):
    """Rebuild chapter 06's split from the catalogue: the card's training names and the
    validation structures are disjoint, and together they are every rendered structure."""
    from cryolab.pipelines.afm_views import PROFILES, split_groups, structure_table

    card = weights.card("posevox")
    cfg = PROFILES[card["training"]["profile"]]
    table = structure_table(cfg)
    table = table[~table["name"].isin(card["training"]["skipped"])]
    validation = split_groups(table["group"].tolist(), cfg.val_fraction, cfg.seed)
    val_names = set(table["name"][validation])
    train_names = set(card["training"]["names"])
    assert not train_names & val_names
    assert train_names | val_names == set(table["name"])
    assert len(val_names) == card["evaluation"]["n_validation"]
    assert set(card["ci_check"]["names"]) <= val_names


def test_posevox_reproduces_its_card_on_the_held_out_sample(mirror):
    """The card's CI numbers: IoU of a few validation structures, re-rendered from scratch,
    within the stated tolerance (0.02 IoU) — a change to the renderer, the back-projection or
    the network that silently breaks the shipped model fails here."""
    from cryolab.pipelines.afm_views import PROFILES, sample_iou

    card = weights.card("posevox")
    check = card["ci_check"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = sample_iou(weights.load("posevox"), check["names"],
                         PROFILES[card["training"]["profile"]], check["views"],
                         check["threshold"], check["sample_seed"])
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(got, check["iou"], atol=check["tolerance"])
    assert check["tolerance"] <= 0.02


def test_posevox_card_claims_what_its_margins_say():
    from cryolab.pipelines.afm_views import AFMVerdict

    ev = weights.card("posevox")["evaluation"]
    verdict = AFMVerdict.from_dict(ev["verdict"])
    assert ev["verdict"]["holds"] == verdict.holds
    assert verdict.beats_mean_shape and verdict.beats_carving_few_views
    for m in verdict.margins:
        assert m.method_iou == pytest.approx(ev["iou"][m.method][str(m.views)])


def test_posevox_claim_holds_over_training_seeds():
    """The card's run-to-run spread: the shipped recipe trained with at least three seeds,
    the shipped model among them, and the claim holds in every run."""
    from cryolab.shape_verdict import AFMVerdict, SeedSpread

    ev = weights.card("posevox")["evaluation"]
    spread = SeedSpread.from_dict(ev["seed_spread"])
    assert len(set(spread.seeds)) >= 3
    assert spread.verdicts[0] == AFMVerdict.from_dict(ev["verdict"])  # the shipped run
    assert spread.holds_in_every_run, spread.describe()
    assert ev["seed_spread"]["holds_in_every_run"] == spread.holds_in_every_run


def test_load_model_rebuilds_the_shipped_file_as_well():
    from cryolab.nn.posevox import PoseVox

    model = load_model(weights.path("posevox"), PoseVox)
    torch.testing.assert_close(model.prior, weights.load("posevox").prior)
    # the prior is the mean training shape in the principal-axes frame: a fraction per voxel,
    # near-certain at the centre (inside almost every training structure: about 0.9 of them),
    # and spread farthest along x (the longest axis), least along z
    prior = model.prior.numpy()
    assert prior.min() >= 0 and prior.max() <= 1 and prior[16, 16, 16] > 0.85
    spread = [float((prior.sum(axis=tuple(b for b in range(3) if b != a)) > 1).sum())
              for a in range(3)]  # (z, y, x)
    assert spread[2] >= spread[1] >= spread[0]


# ------------------------------------------------ chapters 02 and 03: superres and vae

MAP_MODELS = ("superres", "vae")


def _shipped(name):
    if name not in weights.available():
        pytest.skip(f"no shipped {name} model in this tree")
    return weights.card(name)


@pytest.mark.parametrize("name", MAP_MODELS)
def test_map_models_never_saw_a_test_entry_or_a_real_map(name, mirror):
    """Training names vs chapter 02's test split (rebuilt from the catalogue) and vs the five
    real maps and their models: disjoint. The card says which real maps it may be
    evaluated on: all five, since it saw none."""
    from cryolab import superres as sr

    card = _shipped(name)
    cfg = sr.PROFILES[card["training"]["profile"]]
    train, test = sr.split_by_entry(sr.load_entries(), cfg.n_test, cfg.n_train)
    names = set(card["training"]["names"])
    assert names <= {e.name for e in train}
    assert not names & {e.name for e in test}
    assert card["evaluation"]["test_entries"] == [e.pdb_id for e in test]
    real = {n for p in sr.REAL_PAIRS for n in (p.map_name, p.model_name)}
    assert not names & real and card["training"]["real_maps_seen"] == []
    assert set(card["evaluation"]["held_out_real_maps"]) == {p.label for p in sr.REAL_PAIRS}
    assert set(card["evaluation"]["real_maps"]["maps"]) == {p.label for p in sr.REAL_PAIRS}


@pytest.mark.parametrize("name", MAP_MODELS)
def test_map_models_reproduce_their_card_on_the_held_out_sample(name, mirror):
    """The card's CI numbers: RSCC, map–model FSC-0.5 and EMRinger of the shipped model on a
    30 Å cube of EMD-2566 (held out), within the stated tolerances (RSCC 0.02, FSC 0.1 Å,
    EMRinger 0.5: a count statistic that one residue can move)."""
    from cryolab.weights.train import ci_sample

    card = _shipped(name)
    check = card["ci_check"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = ci_sample(name, weights.load(name))
    finally:
        torch.set_num_threads(before)
    for key, tolerance in check["tolerance"].items():
        assert got[key] == pytest.approx(check[key], abs=tolerance), key
    assert check["tolerance"]["rscc"] <= 0.02


def test_the_vae_card_carries_a_calibration_fitted_on_validation_entries():
    card = _shipped("vae")
    unc = card["uncertainty"]
    assert unc["scale"] > 0 and unc["n_samples"] >= 2
    assert set(card["training"]["validation_names"]) <= set(card["training"]["names"])


# ------------------------------------------------------------------- chapter 05: tomogram


@pytest.mark.parametrize("name", ["denoiser", "segmenter"])
def test_tomogram_models_never_saw_their_test_data(name):
    """The shipped tomogram networks trained on simulations only: their training seeds are
    not the held-out seeds of the card nor the chapter's test seeds (999 for the boxes, 4242
    for the whole tomogram), and their registered inputs are simulator templates, never the
    real microtubule crops they are tested on."""
    from cryolab.tomo.particles import REAL_TOMOGRAMS, template_files

    training = weights.card(name)["training"]
    seeds = set(training["simulation_seeds"])
    held_out = set(training["held_out_seeds"])
    assert not seeds & (held_out | {999, 4242})
    assert 999 in held_out
    assert training["names"] and set(training["names"]) <= template_files()
    assert not set(training["names"]) & set(REAL_TOMOGRAMS)


def test_tomogram_models_reproduce_their_cards(mirror):
    """The cards' CI numbers: the shipped denoiser's PSNR and SSIM against the noise-free
    tomogram (its main target) and the segmenter's mean Dice on held-out tomogram 999,
    simulated from scratch, within the stated tolerances (0.05 dB, 0.005 SSIM, 0.01 Dice) — a
    change of the simulator, the scaling or the network that silently breaks the shipped
    models fails here."""
    from cryolab.weights.train import tomo_ci_scores

    den, seg = weights.card("denoiser")["ci_check"], weights.card("segmenter")["ci_check"]
    assert den["seed"] == seg["seed"] and den["truth"] == "noise-free tomogram"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = tomo_ci_scores(weights.load("denoiser"), weights.load("segmenter"), den["seed"])
    finally:
        torch.set_num_threads(before)
    for check, keys in ((den, ("psnr", "ssim")), (seg, ("dice",))):
        for key in keys:
            assert got[key] == pytest.approx(check[key], abs=check["tolerance"][key]), key
    assert den["tolerance"]["psnr"] <= 0.05 and seg["tolerance"]["dice"] <= 0.01


@pytest.mark.parametrize("truth", ["noise-free tomogram", "ideal reconstruction"])
def test_shipped_denoiser_beats_the_best_gaussian_on_held_out_simulations(truth):
    """Against each truth, on the card's held-out tomograms, the shipped denoiser beats the
    Gaussian filter at its best width for that truth, which beats the raw tomogram."""
    ev = weights.card("denoiser")["evaluation"][truth]
    assert ev["shipped U-Net"]["psnr"] > ev["best Gaussian"]["psnr"] > ev["raw tomogram"]["psnr"]


def test_the_shipped_denoiser_is_the_recorded_blend_of_its_heads():
    """The card says what the one output is: a blend of the two heads (noise-free tomogram,
    ideal reconstruction), weights summing to 1 and leaning to the noise-free tomogram, the
    blend the training code folds in; its selection on the validation tomogram (a seed never
    trained or tested on) is recorded, and where Topaz ran, the rule chose the shipped blend."""
    from cryolab.weights.train import TOMO_DENOISER_BLEND, TOMO_TRUTHS

    card = weights.card("denoiser")
    arch = card["architecture"]
    assert arch["heads"] == list(TOMO_TRUTHS) and arch["hparams"]["out_channels"] == 1
    assert arch["blend"] == pytest.approx(list(TOMO_DENOISER_BLEND))
    assert sum(arch["blend"]) == pytest.approx(1.0) and arch["blend"][0] > 0.5
    sel = card["blend_selection"]
    assert sel["seed"] not in set(card["training"]["simulation_seeds"]) | {999, 998, 997, 4242}
    assert sel["shipped"] == pytest.approx(arch["blend"][0])
    if sel["topaz_skipped"] is None:
        assert sel["chosen"] == pytest.approx(sel["shipped"])


# ------------------------------------------------------------------ chapter 01: struc2mapGAN

GANS = [n for n in ("gan", "gan_conditioned") if n in weights.available()]


def test_the_shipped_generator_is_there():
    assert "gan" in GANS


@pytest.mark.parametrize("name", GANS)
def test_gan_reproduces_its_card_on_the_ci_sample(mirror, name):
    """The card's CI numbers: PCC and ChimeraX correlation of the generator's map of the
    EMD-2566 cut-out (3J6B chain 9) against its curated target, within the stated tolerance
    (0.01): a change to curation, molmap, tiling or the network that silently changes the
    shipped generator's maps fails here."""
    from cryolab.weights.train import s2m_ci_scores

    check = weights.card(name)["ci_check"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = s2m_ci_scores(weights.load(name), check["resolution"])
    finally:
        torch.set_num_threads(before)
    for key in ("pcc", "cc_chimerax"):
        assert got[key] == pytest.approx(check[key], abs=check["tolerance"]), key
    assert check["tolerance"] <= 0.01


def test_gan_card_numbers_are_leave_one_map_out_and_never_saw_their_test_map():
    """The card's evaluation is the committed pretrained run's five folds: each fold's
    generator was trained without its test map; the shipped one saw all five maps."""
    import json
    from pathlib import Path

    from cryolab.pipelines.struc2map import MIRROR, LeaveOneMapOut

    card = weights.card("gan")
    assert sorted(card["training"]["maps"]) == sorted(MIRROR)
    assert set(card["training"]["names"]) == {n for p in MIRROR.values()
                                              for n in (p.map, p.model)}
    ev = card["evaluation"]
    for fold in ev["folds"]:
        assert fold["test"] not in fold["train"]
    lomo = LeaveOneMapOut.from_metrics(ev)
    assert lomo.summary() == {k: ev[k] for k in lomo.summary()}
    committed = Path(__file__).resolve().parents[1] / "results" / "01_struc2map_gan" / \
        "pretrained" / "metrics.json"
    assert json.loads(committed.read_text())["lomo"]["folds"] == ev["folds"]
    assert {"5ME2", "6GYN"} <= set(card["generation_seconds"])
