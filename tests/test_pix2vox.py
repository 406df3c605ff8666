"""Tests of the Pix2Vox++ network (cryolab.nn.pix2vox)."""

from __future__ import annotations

import pytest
import torch

from cryolab.errors import ConfigError
from cryolab.nn.pix2vox import Pix2VoxPP, pix2vox_loss
from cryolab.train import Trainer, load_model

TINY = dict(width=4, decoder_width=2, merger_width=8, refiner_width=2, refiner_hidden=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shapes_and_variable_number_of_views():
    torch.manual_seed(0)
    model = Pix2VoxPP(**TINY).eval()
    for views in (1, 3, 7):
        out = model(torch.rand(2, views, 32, 32))
        assert out["coarse"].shape == out["refined"].shape == (2, 32, 32, 32)
        assert 0 < out["refined"].min() and out["refined"].max() < 1
    assert model(torch.rand(1, 2, 1, 48, 48))["refined"].shape == (1, 32, 32, 32)
    with pytest.raises(ConfigError, match="images must be"):
        model(torch.rand(2, 3, 2, 32, 32))


def test_fusion_is_invariant_to_view_order_and_uses_scores():
    torch.manual_seed(1)
    model = Pix2VoxPP(**TINY)
    for module in model.modules():  # give batch norm the statistics of real inputs
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    with torch.no_grad():
        model(torch.rand(4, 3, 32, 32) * torch.rand(4, 3, 1, 1))
    model.eval()
    x = torch.rand(1, 4, 32, 32) * torch.tensor([0.1, 1.0, 0.5, 2.0])[None, :, None, None]
    with torch.no_grad():
        a = model(x)["coarse"]
        b = model(x[:, [2, 0, 3, 1]])["coarse"]
        # one view repeated gives back that view's own volume: the weights sum to one
        single = model(x[:, :1])["coarse"]
        repeated = model(x[:, [0, 0, 0]])["coarse"]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(single, repeated, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a, single, atol=1e-4)


def test_learns_a_small_set_and_reloads(tmp_path):
    torch.manual_seed(2)
    # two "shapes" whose views differ in brightness: a ball and a slab
    z, y, x = torch.meshgrid(*[torch.linspace(-1, 1, 32)] * 3, indexing="ij")
    targets = torch.stack([(x**2 + y**2 + z**2 < 0.5), (z.abs() < 0.3)]).float()
    images = torch.stack([torch.full((2, 16, 16), 0.2), torch.full((2, 16, 16), 0.9)])
    images = images + 0.05 * torch.rand_like(images)
    model = Pix2VoxPP(**TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def step(trainer: Trainer, batch) -> dict[str, float]:
        loss = pix2vox_loss(trainer.model(batch[0]), batch[1])
        trainer.optimise(loss)
        return {"loss": loss.item()}

    trainer = Trainer(model, opt, step, checkpoint=tmp_path / "p2v.pt", device="cpu")
    history = trainer.fit(lambda epoch, rng: [(images, targets)] * 4, epochs=4, progress=False)
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    model.eval()
    again = load_model(tmp_path / "p2v.pt", Pix2VoxPP, device="cpu")
    assert again.hparams == model.hparams
    with torch.no_grad():
        torch.testing.assert_close(again(images)["refined"], model(images)["refined"])


def test_bad_widths():
    with pytest.raises(ConfigError, match="widths"):
        Pix2VoxPP(width=0)


def test_views_are_decoded_once_for_every_number_of_views():
    import numpy as np

    from cryolab.pipelines.afm_views import predict, predict_views

    torch.manual_seed(2)
    model = Pix2VoxPP(**TINY).eval()
    images = torch.rand(6, 10, 32, 32).numpy()
    with torch.no_grad():
        volumes, scores = model.view_volumes(torch.from_numpy(images[:2]))
        fused = model.fuse(volumes[:, :4], scores[:, :4])["refined"]
        direct = model(torch.from_numpy(images[:2, :4]))["refined"]
    # each view's volume and scores are its own: a prefix fuses to the network on fewer views
    torch.testing.assert_close(fused, direct, rtol=1e-5, atol=1e-6)
    # and the shared path gives the very numbers of one plain forward pass per view count,
    # for full batches and the short last one, above and below SMALL_BATCH views
    many = predict_views(model, images, [1, 3, 8, 10], batch_size=4)
    assert list(many) == [1, 3, 8, 10]
    for v, prob in many.items():
        np.testing.assert_array_equal(prob, predict(model, images[:, :v], batch_size=4))
