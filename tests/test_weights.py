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


def test_load_model_rebuilds_the_shipped_file_as_well():
    from cryolab.nn.posevox import PoseVox

    model = load_model(weights.path("posevox"), PoseVox)
    torch.testing.assert_close(model.prior, weights.load("posevox").prior)
    # the prior is the mean training shape in the principal-axes frame: a fraction per voxel,
    # certain at the centre, and spread farthest along x (the longest axis), least along z
    prior = model.prior.numpy()
    assert prior.min() >= 0 and prior.max() <= 1 and prior[16, 16, 16] > 0.9
    spread = [float((prior.sum(axis=tuple(b for b in range(3) if b != a)) > 1).sum())
              for a in range(3)]  # (z, y, x)
    assert spread[2] >= spread[1] >= spread[0]


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
