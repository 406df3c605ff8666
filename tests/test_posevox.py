"""Tests of PoseVox (cryolab.nn.posevox): shapes, learning, and checkpoints that load safely."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

from cryolab.errors import ConfigError
from cryolab.nn.posevox import PoseVox
from cryolab.train import Trainer, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_inputs_carry_the_prior_and_the_number_of_views():
    model = PoseVox(grid=16, width=2, depth=2).eval()
    model.prior.fill_(0.25)
    x = model.inputs(torch.zeros(3, 2, 16, 16, 16), torch.tensor([1.0, 2.0, 4.0]))
    assert x.shape == (3, 4, 16, 16, 16)
    assert torch.all(x[:, 2] == 0.25)
    np.testing.assert_allclose(x[:, 3, 0, 0, 0].numpy(), [1.0, 0.5, 0.25])
    assert model(x).shape == (3, 16, 16, 16)
    with pytest.raises(ConfigError, match="PoseVox input"):
        model(torch.zeros(1, 2, 16, 16, 16))
    with pytest.raises(ConfigError, match="divisible"):
        PoseVox(grid=18, depth=2)


def test_learns_to_carve_and_to_erode():
    """From a soft hull that over-estimates a ball by 2 voxels, PoseVox learns the ball."""
    torch.manual_seed(0)
    g = 16
    z, y, x = torch.meshgrid(*(torch.arange(g) - 7.5,) * 3, indexing="ij")
    r = torch.sqrt(x**2 + y**2 + z**2)
    radii = torch.tensor([3.0, 4.0, 5.0, 6.0])
    targets = (r[None] <= radii[:, None, None, None]).float()
    hull = ((radii[:, None, None, None] + 2 - r[None]) / 3).clamp(-1, 1)
    evidence = torch.stack([hull, hull], dim=1)
    model = PoseVox(grid=g, width=4, depth=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    counts = torch.full((4,), 5.0)

    def iou() -> float:
        model.eval()
        with torch.no_grad():
            pred = model(model.inputs(evidence, counts)) > 0
        model.train()
        return float((pred & (targets > 0)).sum() / (pred | (targets > 0)).sum())

    carved = float(((hull >= 0) & (targets > 0)).sum() / ((hull >= 0) | (targets > 0)).sum())
    for _ in range(150):
        loss = F.binary_cross_entropy_with_logits(model(model.inputs(evidence, counts)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert carved < 0.6 and iou() > 0.9


def test_checkpoint_loads_with_weights_only_and_keeps_the_prior(tmp_path):
    torch.manual_seed(1)
    model = PoseVox(grid=16, width=2, depth=1)
    model.prior.copy_(torch.rand(16, 16, 16))
    trainer = Trainer(model, torch.optim.Adam(model.parameters()), lambda t, b: {"loss": 0.0})
    path = trainer.save(tmp_path / "posevox.pt")
    torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and containers
    again = load_model(path, PoseVox)
    assert again.hparams == model.hparams
    torch.testing.assert_close(again.prior, model.prior)
    x = model.inputs(torch.rand(2, 2, 16, 16, 16), torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(again(x), model.eval()(x))


def _tiny_dataset(n: int = 6, n_views: int = 6):
    """Six ellipsoids of random proportions rendered as the chapter renders structures,
    the last two in validation, and a profile that scores them with up to 5 views."""
    from dataclasses import replace

    from cryolab import afm
    from cryolab.pipelines.afm_views import PROFILES, AFMDataset, render_atoms

    cfg = replace(PROFILES["smoke"], n_views=n_views, image_size=32, eval_views=(1, 3, 5),
                  batch_size=3, tip_radius=3.0)
    rng = np.random.default_rng(4)
    rendered = []
    for _ in range(n):
        direction = rng.normal(size=(300, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        xyz = direction * rng.uniform(0, 1, (300, 1)) ** (1 / 3) * rng.uniform(4, 14, 3)
        rendered.append(render_atoms(afm.principal_frame(xyz), np.full(300, 1.7), cfg, rng))
    validation = np.arange(n) >= n - 2
    return AFMDataset.from_rendered([f"blob{k}" for k in range(n)], rendered, validation), cfg


def test_each_method_is_scored_once_and_gives_the_plain_numbers():
    import pandas as pd

    from cryolab import carving
    from cryolab.metrics import iou
    from cryolab.nn.pix2vox import Pix2VoxPP
    from cryolab.nn.posevox import pose_predict
    from cryolab.pipelines.afm_views import (
        CARVING,
        PIX2VOX,
        POSEVOX,
        best_threshold,
        evaluate_network,
        predict,
        predictions,
        structure_scores,
    )

    ds, cfg = _tiny_dataset()
    torch.manual_seed(0)
    pix = Pix2VoxPP(width=4, decoder_width=2, merger_width=8, refiner_width=2,
                    refiner_hidden=32).eval()
    pose = PoseVox(grid=32, width=2, depth=2).eval()
    pix_pred, pose_pred = predictions(pix, ds, cfg), predictions(pose, ds, cfg)
    first = structure_scores(ds, cfg, {PIX2VOX: (pix_pred, 0.4)})
    carried = structure_scores(ds, cfg, {POSEVOX: (pose_pred, 0.5)}, scored=first)
    again = structure_scores(ds, cfg, {PIX2VOX: (pix, 0.4), POSEVOX: (pose, 0.5)})
    pd.testing.assert_frame_equal(carried, again)  # carried over = scored again, row by row
    assert list(dict.fromkeys(carried.method))[2:] == [PIX2VOX, POSEVOX]
    # every score is that of the plain path: carving, the network on the first V views alone,
    # PoseVox on the evidence of those views back-projected on their own
    for (split, v), rows in carried.groupby(["split", "views"]):
        idx = rows.structure.unique()
        views = [ds.views(i).select(range(v)) for i in idx]
        expect = {
            CARVING: [iou(carving.carve(w, ds.centre[i], ds.voxel[i], 32), ds.targets[i])
                      for w, i in zip(views, idx, strict=True)],
            PIX2VOX: [iou(p, ds.targets[i], threshold=0.4) for p, i in
                      zip(predict(pix, ds.images[idx, :v], cfg.batch_size), idx, strict=True)],
            POSEVOX: [iou(p, ds.targets[i], threshold=0.5) for p, i in zip(pose_predict(
                pose, np.stack([carving.backproject(w, ds.centre[i], ds.voxel[i], 32)
                                for w, i in zip(views, idx, strict=True)]), v, cfg.batch_size),
                idx, strict=True)],
        }
        for method, values in expect.items():
            assert rows[rows.method == method].iou.tolist() == values, (method, split, v)
    # a subset of the structures is carried over too; the tables score the kept predictions
    sub = {"validation": np.flatnonzero(ds.validation)[1:]}
    pd.testing.assert_frame_equal(
        structure_scores(ds, cfg, {POSEVOX: (pose, 0.5)}, index=sub, scored=first),
        structure_scores(ds, cfg, {PIX2VOX: (pix, 0.4), POSEVOX: (pose, 0.5)}, index=sub))
    pd.testing.assert_frame_equal(evaluate_network(pix_pred, ds, cfg),
                                  evaluate_network(pix, ds, cfg))
    assert best_threshold(ds, cfg, pose_pred) == best_threshold(ds, cfg, pose)
    with pytest.raises(ConfigError, match="scored table lacks"):
        structure_scores(ds, cfg, {}, index={"validation": np.arange(2)}, scored=first)
    with pytest.raises(ConfigError, match="no 5-view prediction"):
        pose_pred.of("validation", 5, np.arange(1))
