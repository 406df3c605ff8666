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
