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
    # near-certain at the centre (inside almost every training structure: about 0.9 of them),
    # and spread farthest along x (the longest axis), least along z
    prior = model.prior.numpy()
    assert prior.min() >= 0 and prior.max() <= 1 and prior[16, 16, 16] > 0.85
    spread = [float((prior.sum(axis=tuple(b for b in range(3) if b != a)) > 1).sum())
              for a in range(3)]  # (z, y, x)
    assert spread[2] >= spread[1] >= spread[0]
